// The risk stage's review flow end to end, through the real pipeline (ingest → validate → risk →
// ledger → sink) in this process: a held transaction is `in_review` (with its reasons), the
// merchant's later events go through meanwhile, rules changed in Redis apply without a restart
// and are recorded, an operator approves over HTTP (→ succeeded in Postgres, money moved) or
// declines (→ failed), a decision is made once, and merchant keys cannot decide.
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { SHIPPED_TOPOLOGY, writeTopology } from './helpers/topology-file.ts';
import { waitFor } from './helpers/wait.ts';
import { startWorker } from '../cli/start-worker.ts';
import type { Worker } from '../cli/start-worker.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { createApiKey } from '../core/api-keys.ts';
import type { TransactionView } from '../core/transaction-view.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { setRules } from '../processors/risk/rules.ts';

const M = 'merchant_review';
let inst: TestInstance;
let ingest: TestIngest;
let worker: Worker;
let merchantKey: string;
let operatorKey: string;

/**
 * An operator key. `rill keys create --scope operator` comes with the console's branch; until then
 * this test writes the row itself (its own schema: the 001 CHECK that knows only merchant and tap
 * is dropped here, nowhere else).
 */
async function operatorApiKey(): Promise<string> {
  await inst.pool.query('ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_scope_check');
  const keyId = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  await inst.pool.query('INSERT INTO api_keys (key_id, secret_hash, merchant_id, scope) VALUES ($1, $2, NULL, $3)', [
    keyId,
    createHash('sha256').update(secret).digest(),
    'operator',
  ]);
  return `rk_${keyId}_${secret}`;
}

const call = async (method: string, path: string, key: string, body?: unknown) => {
  const res = await fetch(`${ingest.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};
const post = async (body: Record<string, unknown>) => {
  const r = await call('POST', '/v1/transactions', merchantKey, { merchant_id: M, currency: 'EUR', ...body });
  assert.equal(r.status, 202, JSON.stringify(r.json));
  return r.json.id as string;
};
const view = async (id: string) =>
  (await call('GET', `/v1/transactions/${id}`, merchantKey)).json as unknown as TransactionView & { risk_rules_version?: number };
const statusOf = async (id: string) => (await view(id)).status;

before(async () => {
  inst = await createInstance('risk-review');
  // every payin is held (review at 0) until the rules change; rules are re-read every 50 ms
  const { topology } = writeTopology(
    {
      'stages.risk.config.thresholds': { default: { review: 101, block: 101 }, payin: { review: 0, block: 101 } },
      'stages.risk.config.rules_poll_ms': 50,
      'stages.risk.config.features': true,
    },
    SHIPPED_TOPOLOGY,
  );
  ingest = await startTestIngest(inst, { topology });
  worker = await startWorker({ env: inst.env, topology, registry: createRegistry(), logger: createLogger('silent'), leaderJobs: false });
  merchantKey = await createApiKey(inst.pool, { merchantId: M });
  operatorKey = await operatorApiKey();
});

after(async () => {
  await worker?.stop();
  await ingest?.server.close();
  await inst?.cleanup();
});

test('held for review, approved over HTTP: in_review, then succeeded in Postgres; later events are not held up', async () => {
  const held = await post({ type: 'payin', amount: 5_000, reference: 'held-1' });
  await waitFor('the payin held for review', async () => (await statusOf(held)) === 'in_review');
  const v = await view(held);
  assert.equal(typeof v.risk_score, 'number');
  assert.ok(Array.isArray(v.risk_reasons));

  // listed for operators, not for merchants
  const list = await call('GET', '/v1/reviews', operatorKey);
  assert.equal(list.status, 200);
  assert.deepEqual(
    (list.json.data as { id: string }[]).map((e) => e.id),
    [held],
  );
  assert.equal((await call('GET', '/v1/reviews', merchantKey)).status, 403);
  assert.equal((await call('POST', `/v1/reviews/${held}/approve`, merchantKey)).status, 403);

  // new rules (no restart): payins are allowed from now on, under version 1
  await setRules(inst.redis, inst.keys, { thresholds: { default: { review: 101, block: 101 } } });
  const ok = await waitFor('a payin through under the new rules', async () => {
    const id = await post({ type: 'payin', amount: 2_000, reference: 'later' });
    await waitFor('the later payin decided', async () => ['succeeded', 'in_review'].includes(await statusOf(id)));
    return (await statusOf(id)) === 'succeeded' ? id : undefined;
  });
  const row = await inst.pool.query(`SELECT status, risk_rules_version FROM ${inst.env.pgSchema}.transactions WHERE id = $1`, [ok]);
  assert.deepEqual(row.rows[0], { status: 'succeeded', risk_rules_version: 1 });
  assert.equal(await statusOf(held), 'in_review', 'the held payin still waits, the later one went through');

  const approved = await call('POST', `/v1/reviews/${held}/approve`, operatorKey, { note: 'known customer' });
  assert.equal(approved.status, 200, JSON.stringify(approved.json));
  assert.equal(approved.json.status, 'accepted');
  await waitFor('the approved payin in Postgres', async () => (await statusOf(held)) === 'succeeded');
  const wallet = await inst.pool.query(`SELECT balance FROM ${inst.env.pgSchema}.wallets WHERE merchant_id = $1 AND currency = 'EUR'`, [M]);
  assert.equal(Number(wallet.rows[0]!.balance), 5_000 + 2_000 * (await okCount()));
  // decided once
  assert.equal((await call('POST', `/v1/reviews/${held}/approve`, operatorKey)).status, 404);
  assert.equal((await call('POST', `/v1/reviews/${held}/decline`, operatorKey)).status, 404);
});

test('declined over HTTP: failed in Postgres with the reason, no money moved', async () => {
  await setRules(inst.redis, inst.keys, { thresholds: { default: { review: 101, block: 101 }, payin: { review: 0, block: 101 } } });
  const id = await waitFor('a payin held under the stricter rules', async () => {
    const tx = await post({ type: 'payin', amount: 7_777, reference: 'to-decline' });
    await waitFor('the payin decided', async () => ['succeeded', 'in_review'].includes(await statusOf(tx)));
    return (await statusOf(tx)) === 'in_review' ? tx : undefined;
  });
  const before = await inst.pool.query(`SELECT COALESCE(sum(balance), 0)::bigint AS b FROM ${inst.env.pgSchema}.wallets WHERE merchant_id = $1`, [M]);
  const declined = await call('POST', `/v1/reviews/${id}/decline`, operatorKey, { note: 'stolen card' });
  assert.equal(declined.status, 200);
  assert.deepEqual([declined.json.status, declined.json.failure_code], ['failed', 'risk_declined']);
  await waitFor('the declined payin in Postgres', async () => (await statusOf(id)) === 'failed');
  const row = await view(id);
  assert.equal(row.failure_code, 'risk_declined');
  assert.match(row.failure_reason ?? '', /declined in review .*stolen card/);
  const after = await inst.pool.query(`SELECT COALESCE(sum(balance), 0)::bigint AS b FROM ${inst.env.pgSchema}.wallets WHERE merchant_id = $1`, [M]);
  assert.equal(after.rows[0]!.b, before.rows[0]!.b);
  assert.equal((await call('POST', '/v1/reviews/tx_unknown/approve', operatorKey)).status, 404);
});

/** Succeeded payins of 2,000 (the "later" ones; a retry of the waitFor above may have sent more). */
async function okCount(): Promise<number> {
  const r = await inst.pool.query(
    `SELECT count(*)::int AS n FROM ${inst.env.pgSchema}.transactions WHERE merchant_id = $1 AND reference = 'later' AND status = 'succeeded'`,
    [M],
  );
  return r.rows[0]!.n as number;
}
