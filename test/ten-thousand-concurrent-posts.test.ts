// 10,000 transactions posted concurrently over HTTP (all four types, 50 merchants), processed by
// a real worker process → exactly 10,000 rows, no duplicate id, the posted sum of amounts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import type { RillProcess } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { ENGINE_TOPOLOGY } from './helpers/topology-file.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { createApiKey } from '../core/api-keys.ts';

const N = 10_000;
const CONCURRENCY = 200;
let inst: TestInstance;
let ingest: TestIngest;
let worker: RillProcess;

before(async () => {
  inst = await createInstance('tenk');
  // the engine topology (validate → sink): any mix of types flows straight through
  ingest = await startTestIngest(inst, { topology: ENGINE_TOPOLOGY });
  worker = spawnRill(['worker', '--consumer', 'w1'], { ...inst.vars, RILL_TOPOLOGY: ENGINE_TOPOLOGY });
});

after(async () => {
  await worker?.kill('SIGTERM');
  await ingest?.server.close();
  await inst?.cleanup();
});

test('10,000 concurrent posts land as exactly 10,000 rows with the posted sum', async (t) => {
  const merchants = merchantIds(50);
  const keys = new Map<string, string>();
  for (const m of merchants) keys.set(m, await createApiKey(inst.pool, { merchantId: m }));
  // the refunds and chargebacks of the mix name payins ingest must know
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    ingest.topology,
    Array.from({ length: N }, (_, i) => sampleBody(i, merchants)),
  );

  let next = 0;
  let postedSum = 0n;
  const ids = new Set<string>();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < N) {
        const body = sampleBody(next++, merchants);
        const res = await fetch(`${ingest.url}/v1/transactions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${keys.get(body.merchant_id)}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        const json = (await res.json()) as { id: string; status: string };
        assert.equal(res.status, 202, JSON.stringify(json));
        assert.equal(json.status, 'accepted');
        ids.add(json.id);
        postedSum += BigInt(body.amount);
      }
    }),
  );
  const postedMs = performance.now() - started;
  assert.equal(ids.size, N, 'every post got its own id');

  await waitFor(
    'all rows in Postgres',
    async () => {
      const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
      return Number(rows[0]!.n) >= N;
    },
    120_000,
    100,
  );
  const totalMs = performance.now() - started;
  await waitFor('every group caught up', async () => (await outstanding(inst.redis, inst.keys, ingest.topology)) === 0);

  const { rows } = await inst.pool.query<{ n: string; distinct_ids: string; sum: string; types: string; merchants: string }>(
    `SELECT count(*) AS n, count(DISTINCT id) AS distinct_ids, sum(amount)::text AS sum,
            count(DISTINCT type) AS types, count(DISTINCT merchant_id) AS merchants FROM transactions`,
  );
  const r = rows[0]!;
  assert.equal(Number(r.n), N);
  assert.equal(Number(r.distinct_ids), N);
  assert.equal(BigInt(r.sum), postedSum);
  assert.equal(Number(r.types), 4);
  assert.equal(Number(r.merchants), 50);
  const { rows: idRows } = await inst.pool.query<{ id: string }>('SELECT id FROM transactions');
  assert.deepEqual(new Set(idRows.map((x) => x.id)), ids, 'the rows are exactly the accepted ids');
  const { rows: st } = await inst.pool.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM transactions GROUP BY status');
  assert.deepEqual(
    st.map((x) => [x.status, Number(x.n)]),
    [['succeeded', N]],
  );

  t.diagnostic(`posted ${N} in ${(postedMs / 1000).toFixed(2)} s (${Math.round(N / (postedMs / 1000))} req/s at concurrency ${CONCURRENCY})`);
  t.diagnostic(`all ${N} in Postgres after ${(totalMs / 1000).toFixed(2)} s (${Math.round(N / (totalMs / 1000))} events/s end to end)`);
});
