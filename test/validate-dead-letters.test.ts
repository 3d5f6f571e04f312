// The validate stage: events breaking a business rule (a currency this deployment does not settle,
// an amount over its type's limit, a refund without reference) go to the stage's dead-letter
// stream with the reason; the rest reach Postgres. Every event ends in exactly one place.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { deadLetters, outstanding } from './helpers/pipeline.ts';
import { merchantIds, sampleBody } from './helpers/transactions.ts';
import { ENGINE_TOPOLOGY } from './helpers/topology-file.ts';
import { loadTopology } from '../core/topology/load.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { EventAppender } from '../ingest/append.ts';
import { startWorker } from '../cli/worker.ts';
import type { Worker } from '../cli/worker.ts';
import type { TransactionBody } from '../ingest/validation.ts';

let inst: TestInstance;
let worker: Worker | undefined;
before(async () => {
  inst = await createInstance('validate');
});
after(async () => {
  await worker?.stop();
  await inst?.cleanup();
});

test('invalid events are dead-lettered with their reason; valid ones reach Postgres', async () => {
  const topology = loadTopology(ENGINE_TOPOLOGY);
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(10);
  const bad: [TransactionBody, RegExp][] = [
    [{ ...sampleBody(0, merchants), currency: 'ZAR' }, /currency ZAR is not accepted/],
    [{ ...sampleBody(1, merchants), type: 'payout', amount: 50_000_001 }, /exceeds the payout limit/],
    [{ ...sampleBody(2, merchants), type: 'refund', reference: undefined }, /refund needs a reference/],
    [{ ...sampleBody(3, merchants), type: 'chargeback', reference: undefined, currency: 'ZAR' }, /chargeback needs a reference/],
  ];
  const goodCount = 996;
  const badIds = new Map<string, RegExp>();
  const goodIds = new Set<string>();
  for (const [body, why] of bad) badIds.set((await appender.append(body)).id, why);
  for (let i = 0; i < goodCount; i++) goodIds.add((await appender.append(sampleBody(i, merchants))).id);

  worker = await startWorker({ env: inst.env, topology, registry: createRegistry(), logger: createLogger('silent') });
  await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);

  const { rows } = await inst.pool.query<{ id: string }>('SELECT id FROM transactions');
  assert.deepEqual(new Set(rows.map((r) => r.id)), goodIds);
  const partitions = topology.topics[topology.ingest.topic]!.partitions;
  const dead = await deadLetters(inst.redis, inst.keys, 'validate', partitions);
  assert.equal(dead.length, bad.length);
  for (const d of dead) {
    const why = badIds.get(d.get('tx')!);
    assert.ok(why, `dead letter ${d.get('tx')} is one of the bad events`);
    assert.match(d.get('message')!, why);
    assert.equal(d.get('error'), 'ValidationError');
    assert.equal(d.get('stage'), 'validate');
    assert.equal(d.get('attempts'), '1');
    assert.match(d.get('origin_id')!, /^\d+-\d+$/);
    assert.equal(JSON.parse(d.get('ev')!).id, d.get('tx'));
  }
  // the partition's dead-letter index knows each one, for status lookups
  const indexed = new Map<string, string>();
  for (let p = 0; p < partitions; p++) for (const [tx, v] of Object.entries(await inst.redis.hgetall(inst.keys.deadLetterIndex(p)))) indexed.set(tx, v);
  assert.deepEqual(new Set(indexed.keys()), new Set(badIds.keys()));
  for (const v of indexed.values()) assert.equal(JSON.parse(v).stage, 'validate');
});
