// SIGTERM while batches are in flight: the worker stops reading, settles and acknowledges what it
// holds, and exits 0 within the bound, leaving nothing pending under its name.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { EventAppender } from '../ingest/append/index.ts';

let inst: TestInstance;
before(async () => {
  inst = await createInstance('graceful');
});
after(async () => {
  await inst?.cleanup();
});

async function rowCount(): Promise<number> {
  const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
  return Number(rows[0]!.n);
}

test('SIGTERM mid-load: exit 0, nothing left pending, the rest finishes on restart', async () => {
  const N = 30_000;
  const { path, topology } = writeTopology({ 'sinks.postgres.batch_rows': 2000, 'sinks.postgres.max_wait': '1s' });
  const vars = { ...inst.vars, RILL_TOPOLOGY: path };
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(20);
  // the refunds and chargebacks of the mix name payins ingest must know
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    topology,
    Array.from({ length: N }, (_, i) => sampleBody(i, merchants)),
  );
  for (let i = 0; i < N; i += 1_000) await Promise.all(Array.from({ length: 1_000 }, (_, j) => appender.append(sampleBody(i + j, merchants))));

  const worker = spawnRill(['worker', '--consumer', 'g1'], vars);
  await waitFor('some rows', async () => (await rowCount()) > 0, 60_000, 5);
  const started = Date.now();
  assert.equal(await worker.kill('SIGTERM'), 0, worker.output());
  const stopMs = Date.now() - started;
  assert.ok(stopMs < 15_000, `stopped within the bound (${stopMs} ms)`);

  // nothing is pending in any group after a clean stop: only lag (never-read entries) remains
  const pipe = inst.redis.pipeline();
  const streams: string[] = [];
  for (const [topic, tc] of Object.entries(topology.topics)) {
    for (let p = 0; p < tc.partitions; p++) for (const lane of topology.priorities) streams.push(inst.keys.lane(topic, p, lane.name));
  }
  const group = (s: string) => (s.includes(':transactions:') ? 'validate' : 'postgres');
  for (const s of streams) pipe.xpending(s, group(s));
  const pending = ((await pipe.exec()) ?? []).reduce((n, [err, v]) => (err ? n : n + Number((v as [number])[0])), 0);
  assert.equal(pending, 0, 'no entry left pending after SIGTERM');
  const rowsAtStop = await rowCount();
  assert.ok(rowsAtStop < N, `stopped mid-load (${rowsAtStop} of ${N})`);

  const again = spawnRill(['worker', '--consumer', 'g1'], vars);
  await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 120_000);
  assert.equal(await again.kill('SIGTERM'), 0);
  const { rows } = await inst.pool.query<{ n: string; d: string }>('SELECT count(*) AS n, count(DISTINCT id) AS d FROM transactions');
  assert.equal(Number(rows[0]!.n), N);
  assert.equal(Number(rows[0]!.d), N);
});
