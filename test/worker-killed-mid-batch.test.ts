// A worker killed with SIGKILL mid-batch (once by the fault hook right after the sink's COMMIT and
// before its XACK, once from outside while batches are in flight) and restarted → still exactly N
// rows, none twice. The second run takes over the first's pending entries through XAUTOCLAIM; the
// third resumes its own pending entries first.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { EventAppender } from '../ingest/append/index.ts';

const N = 30_000;
let inst: TestInstance;

before(async () => {
  inst = await createInstance('killed');
});
after(async () => {
  await inst?.cleanup();
});

async function rowCount(): Promise<number> {
  const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
  return Number(rows[0]!.n);
}

test('SIGKILL mid-batch, twice, then a restart: exactly N rows, none twice', async (t) => {
  const { path, topology } = writeTopology({
    'stages.validate.batch': 200,
    'stages.validate.visibility_timeout': '1s',
    'sinks.postgres.batch_rows': 1000,
    'sinks.postgres.max_wait': '50ms',
    'sinks.postgres.visibility_timeout': '1s',
  });
  const vars = { ...inst.vars, RILL_TOPOLOGY: path };
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(50);
  // the refunds and chargebacks of the mix name payins ingest must know
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    topology,
    Array.from({ length: N }, (_, i) => sampleBody(i, merchants)),
  );
  let sum = 0n;
  const ids = new Set<string>();
  for (let i = 0; i < N; i += 1_000) {
    const outs = await Promise.all(
      Array.from({ length: 1_000 }, (_, j) => {
        const body = sampleBody(i + j, merchants);
        sum += BigInt(body.amount);
        return appender.append(body);
      }),
    );
    for (const o of outs) ids.add(o.id);
  }
  assert.equal(ids.size, N);

  // 1. the sink's third COMMIT is followed by SIGKILL before its XACK
  const first = spawnRill(['worker', '--consumer', 'first'], { ...vars, RILL_FAULT: 'sink-after-commit:3' });
  assert.equal(await first.exited, 'SIGKILL', first.output());
  const afterFirst = await rowCount();
  assert.ok(afterFirst >= 1 && afterFirst < N, `the first run committed some rows, not all (${afterFirst})`);

  // 2. another consumer reclaims what the first left pending, and is killed while batches flow
  const second = spawnRill(['worker', '--consumer', 'second'], vars);
  await waitFor('the second run to commit more rows', async () => (await rowCount()) > afterFirst, 60_000, 5);
  await second.kill('SIGKILL');
  const afterSecond = await rowCount();
  assert.ok(afterSecond < N, `killed before the end (${afterSecond} of ${N})`);

  // 3. the second consumer restarts: its own pending entries first, then the rest
  const third = spawnRill(['worker', '--consumer', 'second'], vars);
  await waitFor('all rows', async () => (await rowCount()) >= N, 120_000, 100);
  await waitFor('every group caught up', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);
  assert.equal(await third.kill('SIGTERM'), 0, third.output());

  const { rows } = await inst.pool.query<{ n: string; d: string; s: string; redelivered: string }>(
    `SELECT count(*) AS n, count(DISTINCT id) AS d, sum(amount)::text AS s,
            count(*) FILTER (WHERE attempts > 1) AS redelivered FROM transactions`,
  );
  assert.equal(Number(rows[0]!.n), N);
  assert.equal(Number(rows[0]!.d), N);
  assert.equal(BigInt(rows[0]!.s), sum);
  const { rows: idRows } = await inst.pool.query<{ id: string }>('SELECT id FROM transactions');
  assert.deepEqual(new Set(idRows.map((r) => r.id)), ids);
  t.diagnostic(`rows after kill 1: ${afterFirst}, after kill 2: ${afterSecond}, rows from redelivered entries: ${rows[0]!.redelivered}`);
});
