// Merchant webhooks end to end: endpoints registered through the API, transactions posted
// through ingest, the whole shipped pipeline (webhook-events stage, webhooks sink) in-process,
// and a receiver that verifies every delivery with the standardwebhooks reference library.
// N transactions per merchant → exactly N events per subscribed endpoint, in each merchant's
// order, every signature valid; a merchant cannot see or change another's endpoints, deliveries
// or events; a rotated secret signs beside the old one during the grace period; a merchant
// mistake is transaction.failed with its failure_code, a dead letter transaction.dead_lettered.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { WebhookReceiver } from './helpers/webhook-receiver.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { createApiKey } from '../core/api-keys.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { startWorker } from '../cli/start-worker.ts';
import { runRill } from './helpers/rill-process.ts';
import { entryArgs } from '../core/entry.ts';
import { partitionOf } from '../core/partition.ts';
import { deadLetterFields } from '../core/dead-letter/record.ts';
import type { Worker } from '../cli/start-worker.ts';

const N = 15;
const A = 'm_wh_a';
const B = 'm_wh_b';

let inst: TestInstance;
let ingest: TestIngest;
let worker: Worker;
let receiver: WebhookReceiver;
const keys: Record<string, string> = {};
const before_ = process.env.RILL_WEBHOOKS_ALLOW_HTTP;

before(async () => {
  process.env.RILL_WEBHOOKS_ALLOW_HTTP = '1'; // the receiver is http://127.0.0.1
  inst = await createInstance('whpipe');
  receiver = new WebhookReceiver();
  await receiver.start();
  ingest = await startTestIngest(inst);
  keys[A] = await createApiKey(inst.pool, { merchantId: A });
  keys[B] = await createApiKey(inst.pool, { merchantId: B });
  worker = await startWorker({
    env: inst.env,
    topology: ingest.topology,
    registry: createRegistry({ defaults: false }),
    logger: createLogger(process.env.LOG_LEVEL || 'silent'),
  });
});
after(async () => {
  await worker?.stop();
  await ingest?.server.close();
  await receiver?.close();
  await inst?.cleanup();
  if (before_ === undefined) delete process.env.RILL_WEBHOOKS_ALLOW_HTTP;
  else process.env.RILL_WEBHOOKS_ALLOW_HTTP = before_;
});

async function api(merchant: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; type: string }> {
  const res = await fetch(ingest.url + path, {
    method,
    headers: { authorization: `Bearer ${keys[merchant]}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {}, type: res.headers.get('content-type') ?? '' };
}

test("N transactions → exactly N signed events per endpoint, in each merchant's order; isolation; rotation", async () => {
  const endpoints: Record<string, { id: string; secret: string; path: string }> = {};
  for (const m of [A, B]) {
    const path = `/hooks/${m}`;
    const r = await api(m, 'POST', '/v1/webhook_endpoints', {
      url: receiver.base + path,
      event_types: ['transaction.succeeded', 'transaction.failed', 'transaction.dead_lettered', 'webhook.test'],
      description: `${m} test`,
    });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    assert.match(String(r.json.secret), /^whsec_[A-Za-z0-9+/]+=*$/);
    endpoints[m] = { id: String(r.json.id), secret: String(r.json.secret), path };
    receiver.expect(path, String(r.json.secret));
  }
  // the secret is shown once: never in a read
  const read = await api(A, 'GET', `/v1/webhook_endpoints/${endpoints[A]!.id}`);
  assert.equal(read.status, 200);
  assert.equal(read.json.secret, undefined);
  assert.equal(JSON.stringify(read.json).includes(endpoints[A]!.secret.slice(6)), false);

  // isolation: B sees and changes nothing of A's
  const aId = endpoints[A]!.id;
  for (const [method, path, body] of [
    ['GET', `/v1/webhook_endpoints/${aId}`],
    ['PATCH', `/v1/webhook_endpoints/${aId}`, { enabled: false }],
    ['DELETE', `/v1/webhook_endpoints/${aId}`],
    ['GET', `/v1/webhook_endpoints/${aId}/deliveries`],
    ['POST', `/v1/webhook_endpoints/${aId}/rotate_secret`],
    ['POST', `/v1/webhook_endpoints/${aId}/test`],
    ['POST', `/v1/webhook_endpoints/${aId}/recover`, { since: '2020-01-01T00:00:00Z' }],
  ] as [string, string, unknown?][]) {
    const r = await api(B, method, path, body);
    assert.equal(r.status, 404, `${method} ${path} by another merchant`);
    assert.match(r.type, /application\/problem\+json/);
  }
  const listB = await api(B, 'GET', '/v1/webhook_endpoints');
  assert.deepEqual(
    (listB.json.data as { id: string }[]).map((e) => e.id),
    [endpoints[B]!.id],
  );

  // N payins per merchant, posted one after another: each merchant's order is the posting order
  const posted: Record<string, string[]> = { [A]: [], [B]: [] };
  for (let i = 0; i < N; i++) {
    for (const m of [A, B]) {
      const r = await api(m, 'POST', '/v1/transactions', { type: 'payin', merchant_id: m, amount: 100 + i, currency: 'EUR', reference: `r${i}` });
      assert.equal(r.status, 202);
      posted[m]!.push(String(r.json.id));
    }
  }
  await waitFor('every event delivered', () => receiver.ok(endpoints[A]!.path).length >= N && receiver.ok(endpoints[B]!.path).length >= N, 60_000);
  for (const m of [A, B]) {
    const got = receiver.on(endpoints[m]!.path);
    assert.equal(got.length, N, `${m}: exactly N deliveries`);
    assert.deepEqual(
      got.map((d) => (d.event.data as { id: string }).id),
      posted[m],
      `${m}: in the merchant's order`,
    );
    for (const d of got) {
      assert.deepEqual(d.verifiedBy, [endpoints[m]!.secret], 'valid Standard Webhooks signature');
      assert.equal(d.event.type, 'transaction.succeeded');
      assert.equal(d.id, d.event.id);
      assert.equal((d.event.data as { merchant_id: string }).merchant_id, m);
    }
  }
  // the delivery log: N delivered, each with its status code and latency
  await waitFor('the attempt log', async () => {
    const r = await api(A, 'GET', `/v1/webhook_endpoints/${aId}/deliveries?limit=100`);
    return (r.json.data as unknown[]).length === N ? r : undefined;
  });
  const log = (await api(A, 'GET', `/v1/webhook_endpoints/${aId}/deliveries?limit=100`)).json.data as {
    status: string;
    attempts: { status_code: number; latency_ms: number }[];
  }[];
  assert.equal(log.filter((d) => d.status === 'delivered').length, N);
  assert.ok(log.every((d) => d.attempts.length === 1 && d.attempts[0]!.status_code === 200 && d.attempts[0]!.latency_ms >= 0));

  // rotation: the new secret signs, the old one too during the grace period (two signatures)
  const rot = await api(A, 'POST', `/v1/webhook_endpoints/${aId}/rotate_secret`);
  assert.equal(rot.status, 200);
  const fresh = String(rot.json.secret);
  assert.notEqual(fresh, endpoints[A]!.secret);
  receiver.expect(endpoints[A]!.path, endpoints[A]!.secret, fresh);
  // the deliverer reads endpoints through a one-second cache: wait until it signs with both
  const signedByBoth = async () => {
    const t = await api(A, 'POST', `/v1/webhook_endpoints/${aId}/test`);
    assert.equal(t.status, 202);
    const d = await waitFor('the test event', () => receiver.on(endpoints[A]!.path).find((x) => x.id === t.json.event_id));
    return d.verifiedBy.length === 2 ? d : undefined;
  };
  const both = await waitFor('a test event signed with both secrets', signedByBoth, 20_000, 300);
  assert.equal(String(both.headers['webhook-signature']).split(' ').length, 2);
  assert.equal(both.event.type, 'webhook.test');

  // redeliver: an event of A's, by id; B cannot
  const first = receiver.on(endpoints[A]!.path)[0]!;
  assert.equal((await api(B, 'POST', `/v1/events/${first.id}/redeliver`)).status, 404);
  const re = await api(A, 'POST', `/v1/events/${first.id}/redeliver`);
  assert.equal(re.status, 202);
  assert.equal(re.json.queued, 1);
  await waitFor('the redelivery', () => receiver.on(endpoints[A]!.path).filter((d) => d.id === first.id).length === 2);
  assert.equal(receiver.on(endpoints[B]!.path).length, N, "B received nothing of A's");

  // recover: everything of A's since a time comes again, in order (the events recorded for A)
  const recorded = (await inst.pool.query<{ id: string }>('SELECT id FROM webhook_events WHERE merchant_id = $1 ORDER BY created_at, id', [A])).rows.map(
    (r) => r.id,
  );
  const seenA = receiver.on(endpoints[A]!.path).length;
  const rec = await api(A, 'POST', `/v1/webhook_endpoints/${aId}/recover`, { since: '2020-01-01T00:00:00Z' });
  assert.equal(rec.status, 202);
  assert.equal(rec.json.queued, recorded.length);
  await waitFor('the recovery', () => receiver.on(endpoints[A]!.path).length === seenA + recorded.length);
  assert.deepEqual(
    receiver
      .on(endpoints[A]!.path)
      .slice(seenA)
      .map((d) => d.id),
    recorded,
  );
  assert.equal((await api(A, 'POST', `/v1/webhook_endpoints/${aId}/recover`, { since: 'yesterday' })).status, 400);

  // the operators' CLI: list, deliveries, redeliver; bad input is one line and exit 1
  const list = await runRill(['webhooks', 'list'], inst.vars);
  assert.equal(list.code, 0, list.output);
  assert.ok(list.output.includes(aId) && list.output.includes(endpoints[B]!.id));
  assert.equal(list.output.includes(endpoints[A]!.secret.slice(6)) || list.output.includes('/hooks/'), false, 'no secret, no URL path');
  const dl = await runRill(['webhooks', 'deliveries', endpoints[B]!.id, '--limit', '100'], inst.vars);
  assert.equal(dl.code, 0, dl.output);
  assert.equal(
    dl.output
      .trim()
      .split('\n')
      .filter((l) => l.includes('\tdelivered\t')).length,
    N,
  );
  const before = receiver.on(endpoints[B]!.path).length;
  const redo = await runRill(['webhooks', 'redeliver', receiver.on(endpoints[B]!.path)[0]!.id], inst.vars);
  assert.equal(redo.code, 0, redo.output);
  assert.match(redo.output, /queued 1 delivery/);
  await waitFor('the CLI redelivery', () => receiver.on(endpoints[B]!.path).length === before + 1);
  const bad = await runRill(['webhooks', 'redeliver', 'evt_nope'], inst.vars);
  assert.equal(bad.code, 1);
  assert.equal(bad.output.trim().split('\n').length, 1);
  assert.match(bad.output, /no webhook event evt_nope/);

  // a merchant mistake (a currency validate refuses) → transaction.failed with its failure_code
  const zar = await api(B, 'POST', '/v1/transactions', { type: 'payin', merchant_id: B, amount: 100, currency: 'ZAR' });
  assert.equal(zar.status, 202);
  const failed = await waitFor('the failed event', () => receiver.on(endpoints[B]!.path).find((d) => d.event.type === 'transaction.failed'));
  assert.equal((failed.event.data as { id: string }).id, zar.json.id);
  assert.equal((failed.event.data as { failure_code: string }).failure_code, 'currency_not_allowed');
  assert.deepEqual(failed.verifiedBy, [endpoints[B]!.secret]);
  // its data is the transaction as GET /v1/transactions/:id shows it, field for field (processed_at
  // aside: the webhook stage's moment, not the sink's commit)
  const shown = await waitFor('the failed transaction in Postgres', async () => {
    const r = await api(B, 'GET', `/v1/transactions/${zar.json.id}`);
    return r.status === 200 && r.json.status === 'failed' ? r.json : undefined;
  });
  const { processed_at: sentAt, ...sent } = failed.event.data as Record<string, unknown>;
  const { processed_at: committedAt, ...committed } = shown;
  assert.deepEqual(sent, committed);
  assert.equal(typeof sentAt, 'string');
  assert.equal(typeof committedAt, 'string');

  // a dead letter (what a stage writes after its last attempt) → transaction.dead_lettered
  const p = partitionOf(B, ingest.topology.topics.transactions!.partitions);
  const tx = { id: 'tx_dead_1', merchant_id: B, type: 'payin', amount: 5, currency: 'EUR', ingested_at: Date.now() };
  const raw = {
    stream: inst.keys.lane('validated', p, 'normal'),
    partition: p,
    lane: 'normal',
    id: '1-1',
    fields: entryArgs({ txId: tx.id, event: JSON.stringify(tx) }),
    deliveries: 4,
  };
  await inst.redis.xadd(inst.keys.deadLetter('risk', p), '*', ...deadLetterFields('risk', raw, new Error('risk store unreachable'), Date.now()));
  const dead = await waitFor('the dead_lettered event', () => receiver.on(endpoints[B]!.path).find((d) => d.event.type === 'transaction.dead_lettered'));
  assert.equal((dead.event.data as { id: string }).id, tx.id);
  assert.equal((dead.event.data as { status: string }).status, 'dead_lettered');
  assert.equal((dead.event.data as { failure_reason: string }).failure_reason, 'risk: risk store unreachable');
  assert.deepEqual(dead.verifiedBy, [endpoints[B]!.secret]);
});
