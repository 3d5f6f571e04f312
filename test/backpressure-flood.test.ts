// Overload end to end: with no worker running, a flood of posts drives the pipeline past max_lag;
// ingest starts answering 503 (problem+json, Retry-After) before touching Redis, and /readyz says
// why. Then a worker drains the pipeline: every accepted id, and only those, lands in Postgres
// exactly once, and once the lag is back under resume_lag ingest accepts again.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import type { RillProcess } from './helpers/rill-process.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { waitFor } from './helpers/wait.ts';
import { createApiKey } from '../core/api-keys.ts';
import { scanPrefix, startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';

const MAX_LAG = 2000;
const RESUME_LAG = 500;
const INTERVAL_MS = 50;
const CONCURRENCY = 50;
/** How long the flood goes on after the first 503, to show the 202s stopped. */
const KEEP_FLOODING_MS = 500;

let inst: TestInstance;
let ingest: TestIngest;
let worker: RillProcess | undefined;

before(async () => {
  inst = await createInstance('bp-flood');
});
after(async () => {
  await worker?.kill('SIGTERM');
  await ingest?.server.close();
  await inst?.cleanup();
});

async function metric(name: string, labels = ''): Promise<number | undefined> {
  const text = await (await fetch(`${ingest.url}/metrics`)).text();
  const m = new RegExp(`^${name}${labels.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

test('flooded without a worker: 503s past max_lag, nothing lost, accepting again once drained', async (t) => {
  const { path } = writeTopology({
    'ingest.backpressure.max_lag': MAX_LAG,
    'ingest.backpressure.resume_lag': RESUME_LAG,
    'ingest.backpressure.check_interval': `${INTERVAL_MS}ms`,
    'ingest.backpressure.retry_after': '2s',
    'ingest.rate_limit.per_second': 1_000_000,
    'ingest.rate_limit.burst': 1_000_000,
    'sinks.postgres.max_wait': '50ms',
  });
  ingest = await startTestIngest(inst, { topology: path });
  const merchants = merchantIds(20);
  const keys = new Map<string, string>();
  for (const m of merchants) keys.set(m, await createApiKey(inst.pool, { merchantId: m }));
  // the refunds and chargebacks of the mix name payins ingest must know (no ledger here)
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    ingest.topology,
    Array.from({ length: 100_000 }, (_, i) => sampleBody(i, merchants)),
  );
  const post = (i: number) => {
    const body = sampleBody(i, merchants);
    return fetch(`${ingest.url}/v1/transactions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.get(body.merchant_id)}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  };

  // 1. flood until shedding starts, and a while longer
  const accepted = new Set<string>();
  let shed = 0;
  let acceptedAtFirstShed = 0;
  let firstShedAt = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (!firstShedAt || performance.now() - firstShedAt < KEEP_FLOODING_MS) {
        assert.ok(next < 100_000, 'shedding never started');
        const res = await post(next++);
        if (res.status === 202) {
          accepted.add(((await res.json()) as { id: string }).id);
          continue;
        }
        const problem = (await res.json()) as Record<string, unknown>;
        assert.equal(res.status, 503, JSON.stringify(problem));
        assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
        assert.equal(problem.status, 503);
        assert.match(String(problem.type), /overloaded/);
        assert.equal(res.headers.get('retry-after'), '2');
        if (!firstShedAt) {
          firstShedAt = performance.now();
          acceptedAtFirstShed = accepted.size;
        }
        shed++;
      }
    }),
  );
  const perMs = acceptedAtFirstShed / (firstShedAt - t0);
  t.diagnostic(
    `${acceptedAtFirstShed} accepted in ${Math.round(firstShedAt - t0)} ms (${Math.round(perMs * 1000)}/s) before the first 503; ` +
      `${accepted.size} accepted and ${shed} shed in all`,
  );
  assert.ok(shed > 0);
  assert.ok(accepted.size > MAX_LAG, 'shedding starts only past max_lag');
  // the sampler looks every 50 ms: allow a few intervals of accepts, plus the requests in flight
  const overshoot = accepted.size - MAX_LAG;
  assert.ok(overshoot <= perMs * 5 * INTERVAL_MS + CONCURRENCY, `overshoot ${overshoot} past max_lag at ${Math.round(perMs * 1000)}/s`);
  // once shedding, only requests already past the gate could still be accepted
  assert.ok(accepted.size - acceptedAtFirstShed <= CONCURRENCY, `${accepted.size - acceptedAtFirstShed} accepted after the first 503`);
  assert.equal((await scanPrefix(inst.redis, inst.env.prefix)).entries, accepted.size, 'a 503 appended nothing');

  // 2. operators see it: /readyz, gauges, the request counter
  const ready = await fetch(`${ingest.url}/readyz`);
  assert.equal(ready.status, 503);
  assert.match(ready.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(ready.headers.get('retry-after'), '2');
  assert.match(String(((await ready.json()) as { detail: string }).detail), /Shedding load: \d+ entries waiting in the pipeline/);
  assert.equal(await metric('rill_ingest_shedding'), 1);
  await waitFor('the waiting gauge to count every accepted entry', async () => (await metric('rill_pipeline_waiting_entries')) === accepted.size, 5_000);
  assert.equal(await metric('rill_ingest_requests_total', '{route="/v1/transactions",status="503"}'), shed);

  // 3. a worker drains it: exactly the accepted ids, once each
  worker = spawnRill(['worker', '--consumer', 'w1'], { ...inst.vars, RILL_TOPOLOGY: path });
  await waitFor(
    'every accepted id in Postgres',
    async () => {
      const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
      return Number(rows[0]!.n) >= accepted.size;
    },
    120_000,
    100,
  );
  const { rows } = await inst.pool.query<{ id: string }>('SELECT id FROM transactions');
  assert.equal(rows.length, accepted.size, 'no duplicates');
  assert.deepEqual(new Set(rows.map((r) => r.id)), accepted);

  // 4. back under resume_lag: accepting again
  await waitFor('readyz 200', async () => (await fetch(`${ingest.url}/readyz`)).status === 200, 30_000);
  assert.equal(await metric('rill_ingest_shedding'), 0);
  const again = await post(next++);
  assert.equal(again.status, 202, await again.text());
  assert.equal(await worker.kill('SIGTERM'), 0, worker.output());
});
