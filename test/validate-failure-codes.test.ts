// The validate stage: events breaking a business rule (a currency this deployment does not settle,
// an amount over its type's limit, a refund or chargeback without reference) are a merchant's
// mistake, not a dead letter: they reach Postgres as rows `failed` with a stable failure_code and
// the reason; the rest reach Postgres as succeeded. Nothing valid or invalid is dead-lettered.
// What validate does dead-letter is an entry it cannot read (a body that is not JSON, a missing
// field): with the reason, once, indexed by its tx id when it has one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { deadLetters, outstanding } from './helpers/pipeline.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { ENGINE_TOPOLOGY } from './helpers/topology-file.ts';
import { entryArgs } from '../core/entry.ts';
import type { FailureCode } from '../core/failure-codes.ts';
import { partitionOf } from '../core/partition.ts';
import { loadTopology } from '../core/topology/load.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { startWorker } from '../cli/start-worker.ts';
import type { Worker } from '../cli/start-worker.ts';
import type { TransactionBody } from '../ingest/validation.ts';

let inst: TestInstance;
let worker: Worker | undefined;
const topology = loadTopology(ENGINE_TOPOLOGY);
const partitions = topology.topics[topology.ingest.topic]!.partitions;

before(async () => {
  inst = await createInstance('validate');
});
after(async () => {
  await worker?.stop();
  await inst?.cleanup();
});

const startOnce = async () => {
  worker ??= await startWorker({ env: inst.env, topology, registry: createRegistry(), logger: createLogger('silent') });
};
const drained = () => waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);

test('invalid events end failed with their failure_code and reason, nothing dead-lettered; valid ones succeed', async () => {
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(10);
  const goodCount = 996;
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    topology,
    Array.from({ length: goodCount }, (_, i) => sampleBody(i, merchants)),
  );
  const bad: [TransactionBody, FailureCode, RegExp][] = [
    [{ ...sampleBody(0, merchants), currency: 'ZAR' }, 'currency_not_allowed', /^validate: currency ZAR is not accepted$/],
    [{ ...sampleBody(1, merchants), type: 'payout', amount: 50_000_001 }, 'amount_too_large', /^validate: amount 50000001 exceeds the payout limit/],
    [{ ...sampleBody(2, merchants), type: 'refund', reference: undefined }, 'reference_missing', /^validate: a refund needs a reference/],
    // two rules broken: the first one's code, every one in the reason
    [
      { ...sampleBody(3, merchants), type: 'chargeback', reference: undefined, currency: 'ZAR' },
      'currency_not_allowed',
      /^validate: currency ZAR is not accepted; a chargeback needs a reference/,
    ],
  ];
  const badIds = new Map<string, [FailureCode, RegExp]>();
  const goodIds = new Set<string>();
  for (const [body, code, why] of bad) badIds.set((await appender.append(body)).id, [code, why]);
  for (let i = 0; i < goodCount; i++) goodIds.add((await appender.append(sampleBody(i, merchants))).id);

  await startOnce();
  await drained();

  const { rows } = await inst.pool.query<{ id: string; status: string; failure_code: string | null; failure_reason: string | null }>(
    'SELECT id, status, failure_code, failure_reason FROM transactions',
  );
  assert.equal(rows.length, goodCount + bad.length, 'every event once, as a row');
  assert.deepEqual(new Set(rows.map((r) => r.id)), new Set([...goodIds, ...badIds.keys()]));
  for (const r of rows) {
    const expected = badIds.get(r.id);
    if (!expected) {
      assert.deepEqual([r.status, r.failure_code, r.failure_reason], ['succeeded', null, null], r.id);
      continue;
    }
    assert.equal(r.status, 'failed', r.id);
    assert.equal(r.failure_code, expected[0], r.id);
    assert.match(r.failure_reason ?? '', expected[1]);
  }
  assert.equal((await deadLetters(inst.redis, inst.keys, 'validate', partitions)).length, 0, 'nothing dead-lettered');
  for (let p = 0; p < partitions; p++) assert.equal(await inst.redis.hlen(inst.keys.deadLetterIndex(p)), 0);
});

test('entries validate cannot read are dead-lettered with the reason, once; the others flow', async () => {
  const M = 'm_unreadable';
  const p = partitionOf(M, partitions);
  const lane = inst.keys.lane(topology.ingest.topic, p, 'normal');
  const rowsBefore = Number((await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions')).rows[0]!.n);
  const readable = { id: 'tx_readable_1', type: 'payin', merchant_id: M, amount: 10, currency: 'EUR', ingested_at: Date.now(), status: 'accepted' };
  await inst.redis.xadd(lane, '*', ...entryArgs({ txId: 'tx_unreadable_json', event: '{"type": "payin", oops' }));
  await inst.redis.xadd(lane, '*', 'ev', JSON.stringify({ ...readable, id: 'tx_no_tx_field' })); // no tx field
  await inst.redis.xadd(lane, '*', ...entryArgs({ txId: readable.id, event: JSON.stringify(readable) }));
  await startOnce();
  await drained();

  const dead = await deadLetters(inst.redis, inst.keys, 'validate', partitions);
  assert.equal(dead.length, 2);
  const byMessage = new Map(dead.map((d) => [d.get('message')!, d]));
  const notJson = byMessage.get('entry body is not JSON');
  assert.ok(notJson, [...byMessage.keys()].join(' | '));
  assert.equal(notJson.get('tx'), 'tx_unreadable_json');
  assert.equal(notJson.get('ev'), '{"type": "payin", oops', 'the body kept as it was');
  const noTx = byMessage.get('entry lacks the tx field');
  assert.ok(noTx, [...byMessage.keys()].join(' | '));
  assert.equal(JSON.parse(noTx.get('ev')!).id, 'tx_no_tx_field');
  for (const d of dead) {
    assert.equal(d.get('stage'), 'validate');
    assert.equal(d.get('origin_stream'), lane);
    assert.match(d.get('origin_id')!, /^\d+-\d+$/);
  }
  // the dead-letter index knows the one with a tx id, for status lookups
  const index = await inst.redis.hgetall(inst.keys.deadLetterIndex(p));
  assert.deepEqual(Object.keys(index), ['tx_unreadable_json']);
  assert.equal(JSON.parse(index.tx_unreadable_json!).stage, 'validate');
  // the readable one went on
  const { rows } = await inst.pool.query<{ id: string; status: string }>('SELECT id, status FROM transactions WHERE id = $1', [readable.id]);
  assert.deepEqual(rows, [{ id: readable.id, status: 'succeeded' }]);
  const rowsAfter = Number((await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions')).rows[0]!.n);
  assert.equal(rowsAfter, rowsBefore + 1);
});
