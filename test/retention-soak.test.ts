// A CI-size soak of Redis as the hot tier: payins posted through the real pipeline (ingest →
// validate → risk → ledger → Postgres sink) at a steady few hundred a second, with windows of
// seconds (transactions and settled hot 4s, the intermediate topics trimmed once acknowledged,
// risk:<tx> records kept for the risk stage's redelivery horizon of ~11 s). After the first
// window, the run's own footprint in Redis (MEMORY USAGE of its lane streams and risk records,
// not the shared server's used_memory, which other tests move) stays flat while rows keep
// arriving in Postgres; at the end every accepted payin is a row, once.
//
// Not asserted (other families, reported with t.diagnostic): the ledger's per-transaction
// records and the refundable-payins buckets (whose buckets are at least a minute wide).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import type { RillProcess } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { SHIPPED_TOPOLOGY, WITHOUT_WEBHOOKS, writeTopology } from './helpers/topology-file.ts';
import { merchantIds } from './helpers/transactions.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { createApiKey } from '../core/api-keys.ts';
import { redeliveryHorizon } from '../core/retention/horizon.ts';
import type { Topology } from '../core/topology/schema.ts';

/** Posted per second (a batch of BATCH every TICK_MS, merchants in turn). */
const BATCH = 30;
const TICK_MS = 100;
/** The first window: the hot topics and the risk records fill up to their steady level. */
const WARM_UP_MS = 14_000;
/** Measured after the warm-up. */
const MEASURE_MS = 24_000;
const SAMPLE_MS = 2_000;
/** Posting pauses while more than this many entries wait in the pipeline (a slow box: a bounded backlog, not a growing one). */
const MAX_BACKLOG = 1_000;

let inst: TestInstance;
let ingest: TestIngest;
let worker: RillProcess;
let topology: Topology;

before(async () => {
  inst = await createInstance('soak');
  const t = writeTopology(
    {
      ...WITHOUT_WEBHOOKS,
      'topics.transactions.retention': { hot: '4s', max_bytes: '64mb' },
      'topics.settled.retention': { hot: '4s', max_bytes: '64mb' },
      'stages.risk.config.features': false,
      'stages.risk.config.per_minute_count': 1_000_000,
      'stages.risk.config.per_minute_amount': 1_000_000_000_000,
      'stages.risk.config.per_hour_count': 1_000_000,
      'stages.risk.config.per_hour_amount': 1_000_000_000_000,
      'stages.risk.retry': { attempts: 2, base: '10ms', factor: 2, max: '100ms', jitter: 'full' },
      'stages.risk.visibility_timeout': '3s',
      'stages.risk.lease_ttl': '1s',
      'ingest.rate_limit': { per_second: 100_000, burst: 100_000 },
    },
    SHIPPED_TOPOLOGY,
  );
  topology = t.topology;
  ingest = await startTestIngest(inst, { topology });
  worker = spawnRill(['worker', '--consumer', 'soak'], { ...inst.vars, RILL_TOPOLOGY: t.path });
});
after(async () => {
  await worker?.kill('SIGTERM');
  await ingest?.server.close();
  await inst?.cleanup();
});

interface Sample {
  at: number;
  streams: number;
  riskRecords: number;
  riskCount: number;
  other: Record<string, number>;
  rows: number;
  posted: number;
}

/** MEMORY USAGE of the run's own keys by family: every lane stream, and (by SCAN) every per-partition key. */
async function footprint(redis: Redis, prefix: string): Promise<Pick<Sample, 'streams' | 'riskRecords' | 'riskCount' | 'other'>> {
  const lanes = Object.entries(topology.topics).flatMap(([topic, t]) =>
    Array.from({ length: t.partitions }, (_, p) => topology.priorities.map((l) => inst.keys.lane(topic, p, l.name))).flat(),
  );
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:{*`, 'COUNT', 10_000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  const laneSet = new Set(lanes);
  const rest = keys.filter((k) => !laneSet.has(k));
  const pipe = redis.pipeline();
  for (const k of [...lanes, ...rest]) pipe.call('MEMORY', 'USAGE', k);
  const sizes = ((await pipe.exec()) ?? []).map(([, v]) => Number(v ?? 0));
  const out = { streams: 0, riskRecords: 0, riskCount: 0, other: {} as Record<string, number> };
  lanes.forEach((_, i) => (out.streams += sizes[i]!));
  rest.forEach((k, i) => {
    const family = /^[^{]*\{\d+\}:([^:]+)/.exec(k)?.[1] ?? 'unknown';
    const size = sizes[lanes.length + i]!;
    if (family === 'risk') {
      out.riskRecords += size;
      out.riskCount++;
    } else out.other[family] = (out.other[family] ?? 0) + size;
  });
  return out;
}

async function rows(): Promise<number> {
  const { rows: r } = await inst.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM transactions');
  return Number(r[0]!.n);
}

test('Redis holds a flat footprint after the first window while rows keep arriving; every payin a row, once', async (t) => {
  const horizon = redeliveryHorizon(topology.stages.risk!);
  assert.ok(horizon < WARM_UP_MS, `the risk records' horizon (${horizon} ms) ends within the warm-up`);
  const merchants = merchantIds(16);
  const keyOf = new Map<string, string>();
  for (const m of merchants) keyOf.set(m, await createApiKey(inst.pool, { merchantId: m }));

  let accepted = 0;
  let tick = 0;
  const post = async (): Promise<void> => {
    const merchant = merchants[tick % merchants.length]!;
    const body = Array.from({ length: BATCH }, (_, i) => ({
      type: 'payin',
      merchant_id: merchant,
      amount: 1_000 + ((tick * BATCH + i) % 4_000),
      currency: 'EUR',
      reference: `soak-${tick}-${i}`,
    }));
    tick++;
    const res = await fetch(`${ingest.url}/v1/transactions/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keyOf.get(merchant)}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as { results: { status: string }[] };
    assert.equal(res.status, 202, JSON.stringify(json));
    accepted += json.results.filter((r) => r.status === 'accepted').length;
  };

  // the worker up and every group there (the backlog check below counts groups' lag): a first round through
  for (let i = 0; i < merchants.length; i++) await post();
  await waitFor('the first round in Postgres', async () => (await rows()) === accepted, 60_000, 100);

  // the load: a steady rate from its own clock, pausing while the pipeline is behind
  let stop = false;
  const load = (async () => {
    const start = Date.now();
    const first = tick;
    while (!stop) {
      if (tick % 5 === 0) while (!stop && (await outstanding(inst.redis, inst.keys, topology)) > MAX_BACKLOG) await sleep(50);
      await post();
      const due = start + (tick - first) * TICK_MS - Date.now();
      if (due > 0) await sleep(due);
    }
  })();

  const warmUntil = Date.now() + WARM_UP_MS;
  const samples: Sample[] = [];
  const end = warmUntil + MEASURE_MS;
  for (let next = warmUntil; next <= end; next += SAMPLE_MS) {
    const wait = next - Date.now();
    if (wait > 0) await sleep(wait);
    samples.push({ at: Date.now(), ...(await footprint(inst.redis, inst.env.prefix)), rows: await rows(), posted: accepted });
  }
  stop = true;
  await load;

  const mb = (b: number) => (b / 1024 ** 2).toFixed(2);
  for (const s of samples) {
    const others = Object.entries(s.other)
      .map(([k, v]) => `${k} ${mb(v)}`)
      .join(', ');
    t.diagnostic(
      `+${s.at - warmUntil} ms: streams ${mb(s.streams)} MB, risk ${s.riskCount} records ${mb(s.riskRecords)} MB, rows ${s.rows}/${s.posted}; ${others}`,
    );
  }
  const held = samples.map((s) => s.streams + s.riskRecords);
  const half = Math.floor(held.length / 2);
  const firstMax = Math.max(...held.slice(0, half));
  const secondMax = Math.max(...held.slice(half));
  const postedInMeasure = samples.at(-1)!.posted - samples[0]!.posted;
  t.diagnostic(
    `held: first half max ${mb(firstMax)} MB, second half max ${mb(secondMax)} MB; ${postedInMeasure} payins posted while measured, ${samples[0]!.posted} before`,
  );
  // untrimmed, what is held would grow with everything posted: by more than half while measured, so past the bound below
  assert.ok(postedInMeasure > 0.5 * samples[0]!.posted, 'enough posted while measured for growth to show');
  assert.ok(secondMax <= 1.5 * firstMax, `flat: ${mb(secondMax)} MB late against ${mb(firstMax)} MB early`);
  const mid = samples[half]!.rows;
  assert.ok(samples[0]!.rows < mid && mid < samples.at(-1)!.rows, 'rows keep arriving');

  // drained: every accepted payin is a row, once
  await waitFor('the pipeline drained', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000, 100);
  const { rows: r } = await inst.pool.query<{ n: string; ids: string; ok: string }>(
    "SELECT count(*)::text AS n, count(DISTINCT id)::text AS ids, count(*) FILTER (WHERE status = 'succeeded')::text AS ok FROM transactions",
  );
  assert.deepEqual(r[0], { n: String(accepted), ids: String(accepted), ok: String(accepted) });
});
