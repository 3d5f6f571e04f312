// Accepted transactions land in the right partition and lane stream, once per Idempotency-Key,
// however many copies of the request race.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { fieldsToMap } from '../core/entry.ts';
import type { TransactionEvent } from '../core/event.ts';
import { partitionOf } from '../core/partition.ts';
import { createApiKey } from '../core/api-keys.ts';
import { scanPrefix, startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { IngestKeys } from '../ingest/keys.ts';
import { TX_ID_PATTERN } from '../core/tx-id.ts';
import { PAYIN_ACCEPTED, payinBucket } from '../core/payins.ts';

const M = 'merchant_idem';

describe('ingest appends', () => {
  let inst: TestInstance;
  let ingest: TestIngest;
  let key: string;

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${ingest.url}/v1/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  /** The entries of one stream, as [entry id, fields]. */
  const entries = async (stream: string) => (await inst.redis.xrange(stream, '-', '+')).map(([id, f]) => [id, fieldsToMap(f)] as const);

  before(async () => {
    inst = await createInstance('ingest-idem');
    ingest = await startTestIngest(inst);
    key = await createApiKey(inst.pool, { merchantId: M });
  });

  after(async () => {
    await ingest?.server.close();
    await inst?.cleanup();
  });

  test('happy path: 202 with a tx id, one entry in the partition and lane stream', async () => {
    const body = {
      type: 'payin',
      merchant_id: M,
      amount: 1999,
      currency: 'EUR',
      reference: 'order-17',
      occurred_at: '2024-05-01T12:00:00.250+02:00',
      metadata: { channel: 'web', 'cart.id': 'c-9' },
    };
    const before = Date.now();
    const res = await post(body);
    assert.equal(res.status, 202);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(res.headers.get('idempotent-replayed'), null);
    const answer = (await res.json()) as { id: string; status: string };
    assert.equal(answer.status, 'accepted');
    assert.match(answer.id, TX_ID_PATTERN);
    assert.equal(res.headers.get('location'), `/v1/transactions/${answer.id}`);

    const partition = partitionOf(M, ingest.topology.topics.transactions!.partitions);
    const stream = inst.keys.lane('transactions', partition, 'normal');
    const got = await entries(stream);
    assert.equal(got.length, 1);
    const fields = got[0]![1];
    assert.deepEqual([...fields.keys()].sort(), ['ev', 'tx']);
    assert.equal(fields.get('tx'), answer.id);
    const ev = JSON.parse(fields.get('ev')!) as TransactionEvent;
    assert.ok(ev.ingested_at >= before && ev.ingested_at <= Date.now());
    assert.deepEqual(ev, { ...body, id: answer.id, ingested_at: ev.ingested_at, status: 'accepted' });
    // besides the stream, only the merchant's rate-limit bucket and its refundable-payins bucket
    // (the payin registered as accepted, for its refunds to name), in the same partition slot
    const bucket = new IngestKeys(inst.env.prefix).rateLimit(partition, M);
    const payins = inst.keys.payins(partition, M, payinBucket(answer.id, ingest.topology.refunds.hot).name);
    assert.deepEqual(await scanPrefix(inst.redis, inst.env.prefix), { keys: [bucket, payins, stream].sort(), entries: 1 });
    assert.deepEqual(await inst.redis.hgetall(payins), { [answer.id]: PAYIN_ACCEPTED });
    assert.ok((await inst.redis.pttl(payins)) > 0, 'the payins bucket expires with the refund window');
  });

  test('each type goes to its priority lane', async () => {
    const partition = partitionOf(M, ingest.topology.topics.transactions!.partitions);
    const want = { chargeback: 'critical', refund: 'critical', payout: 'high', payin: 'normal' } as const;
    for (const [type, lane] of Object.entries(want)) {
      const stream = inst.keys.lane('transactions', partition, lane);
      const n = await inst.redis.xlen(stream);
      const res = await post({ type, merchant_id: M, amount: 5, currency: 'GBP' });
      assert.equal(res.status, 202);
      const { id } = (await res.json()) as { id: string };
      assert.equal(await inst.redis.xlen(stream), n + 1, `${type} → ${lane}`);
      const last = await inst.redis.xrevrange(stream, '+', '-', 'COUNT', 1);
      assert.equal(fieldsToMap(last[0]![1]).get('tx'), id);
    }
  });

  test('50 concurrent posts with one Idempotency-Key append once', async () => {
    const body = { type: 'payout', merchant_id: M, amount: 250_000, currency: 'USD', reference: 'payout-race' };
    const stream = inst.keys.lane('transactions', partitionOf(M, ingest.topology.topics.transactions!.partitions), 'high');
    const before = await inst.redis.xlen(stream);
    const idem = { 'idempotency-key': 'race-key-0001' };

    const responses = await Promise.all(Array.from({ length: 50 }, () => post(body, idem)));
    const answers = await Promise.all(responses.map(async (r) => ({ status: r.status, replayed: r.headers.get('idempotent-replayed'), text: await r.text() })));
    assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([202]));
    assert.equal(new Set(answers.map((a) => a.text)).size, 1, 'one identical answer for all');
    assert.equal(answers.filter((a) => a.replayed === 'true').length, 49);
    assert.equal(answers.filter((a) => a.replayed === null).length, 1);
    const { id } = JSON.parse(answers[0]!.text) as { id: string };
    assert.match(id, TX_ID_PATTERN);
    assert.equal(await inst.redis.xlen(stream), before + 1);
    const ours = (await entries(stream)).filter(([, f]) => f.get('tx') === id);
    assert.equal(ours.length, 1);

    // the same request with its fields in another order and other whitespace is the same request
    const reordered = `{ "reference": "payout-race", "currency": "USD", "amount": 250000, "merchant_id": "${M}", "type": "payout" }`;
    const again = await post(reordered, idem);
    assert.equal(again.status, 202);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(((await again.json()) as { id: string }).id, id);

    // same key, different body: 409, nothing appended
    const conflict = await post({ ...body, amount: 250_001 }, idem);
    assert.equal(conflict.status, 409);
    assert.match(conflict.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const p = (await conflict.json()) as { status: number; type: string };
    assert.equal(p.status, 409);
    assert.match(p.type, /idempotency-conflict/);
    assert.equal(await inst.redis.xlen(stream), before + 1);

    // the record lives in the merchant's partition and expires with the topology's TTL
    const record = inst.keys.idempotency(partitionOf(M, 8), M, 'race-key-0001');
    const ttl = await inst.redis.pttl(record);
    assert.ok(ttl > 0 && ttl <= ingest.topology.ingest.idempotency_ttl, `pttl ${ttl}`);
  });

  test('Idempotency-Keys are per merchant', async () => {
    const other = await createApiKey(inst.pool, { merchantId: 'merchant_other' });
    const idem = { 'idempotency-key': 'shared-key' };
    const a = await post({ type: 'refund', merchant_id: M, amount: 10, currency: 'USD' }, idem);
    const b = await fetch(`${ingest.url}/v1/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${other}`, ...idem },
      body: JSON.stringify({ type: 'refund', merchant_id: 'merchant_other', amount: 99, currency: 'USD' }),
    });
    assert.equal(a.status, 202);
    assert.equal(b.status, 202);
    assert.equal(b.headers.get('idempotent-replayed'), null);
    assert.notEqual(((await a.json()) as { id: string }).id, ((await b.json()) as { id: string }).id);
  });

  test('accepted events are counted by topic and lane', async () => {
    const text = await (await fetch(`${ingest.url}/metrics`)).text();
    assert.match(text, /rill_events_accepted_total\{topic="transactions",lane="high"\} 2\b/);
    assert.match(text, /rill_events_accepted_total\{topic="transactions",lane="normal"\} 2\b/);
    assert.match(text, /rill_ingest_requests_total\{route="\/v1\/transactions",status="202"\} \d+/);
    assert.match(text, /rill_ingest_requests_total\{route="\/v1\/transactions",status="409"\} 1\b/);
  });
});
