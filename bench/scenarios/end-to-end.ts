// e. End to end: `rill ingest`, one `rill worker --stages validate,risk,ledger` and one `rill sink`
// under open-loop load at rising rates, twice: single-event posts (one HTTP request per event), then
// batched posts (`e2e.batchSize` events per POST /v1/transactions/batch, as a payment platform's
// own services would send). Rates are events/s. A rate is sustained when ingest answers every
// request 2xx at ≥ 97 % of the offered rate with p99 ≤ 20 ms, the sink commits ≥ 90 % of it while
// it lasts, the backlog at the end is under a second's worth, and the pipeline drains after.
// Reports the highest sustained rate with ingest and end-to-end latency (ingest → sink batch, per
// row from Postgres; and ingest → commit from the sink's histogram), per-stage rates, where the CPU
// went per process (µs per event), and Redis's command time. At the end, with every transaction
// settled: Redis bytes per transaction by key family and a projection of Redis after a day.
import { setTimeout as delay } from 'node:timers/promises';
import { P99_LIMIT_MS } from '../profiles.ts';
import type { LoadJob, LoadResult } from '../load/protocol.ts';
import type { BenchInstance, RunningIngest, RunningWorker } from '../lib/instance.ts';
import type { Merchant } from '../lib/payload.ts';
import { CpuWindow } from '../lib/proc-stats.ts';
import { byLabel, histogramQuantile, scrape, sum } from '../lib/prom.ts';
import type { Sample } from '../lib/prom.ts';
import { backendPids, rowCount, rowLatenciesUs } from '../lib/pg-stats.ts';
import { redisMemoryByFamily } from '../../core/index.ts';
import { projectMemory, readRetention } from '../lib/memory-projection.ts';
import { commandDelta, commandStats, laneKeys, outstanding } from '../lib/redis-stats.ts';
import type { CommandDelta } from '../lib/redis-stats.ts';
import { postgresSink, stageOrder } from '../lib/topology.ts';
import { drain, int, ms, pct, singlePayload, statusText, summarizeUs, usPer } from './common.ts';
import { merchantInstance } from './fixtures.ts';
import type { Comparison, LatencyFigure, RunContext, Scenario, ScenarioOutput } from './types.ts';
import { compare } from './types.ts';

export const E2E_TARGET_RATE = 11_800;

/** The processes whose CPU is measured, in the table's order. */
const CPU_PROCESSES = [
  { key: 'ingest', label: 'ingest' },
  { key: 'worker', label: 'worker (3 stages)' },
  { key: 'sink', label: 'sink' },
  { key: 'redis', label: 'Redis' },
  { key: 'postgres', label: 'Postgres' },
  { key: 'loadgen', label: 'load generator' },
] as const;

/** The rates the Redis memory projection is made for: a modest platform, and the target. */
const PROJECTION_RATES = [1_000, E2E_TARGET_RATE] as const;

interface Step {
  rate: number;
  /** Kept up and ingest p99 within the ceiling: sustained. */
  pass: boolean;
  /** Kept up: every request 2xx at the offered rate, committed as fast, no backlog left (any latency). */
  keptUp: boolean;
  why: string[];
  load: LoadResult;
  committedPerSec: number;
  backlogAtEnd: number;
  drained: boolean;
  drainMs: number;
  e2eMs: { p50: number; p99: number; p999: number; count: number } | null;
  e2eCommitMs: { p50: number | null; p99: number | null };
  stageRates: Record<string, number>;
  cpu: { cores: Record<string, number>; machineBusy: number };
  redisCommands: CommandDelta[];
}

interface LadderData {
  steps: Step[];
  sustainedRate: number | null;
  sustainedCommittedPerSec: number | null;
  keptUpRate: number | null;
  keptUpCommittedPerSec: number | null;
}

interface Setup {
  inst: BenchInstance;
  merchants: Merchant[];
  ingest: RunningIngest;
  /** The stages (`rill worker --stages …`). */
  worker: RunningWorker;
  /** The Postgres sink (`rill sink`), a process of its own so its CPU is its own. */
  sink: RunningWorker;
  sinkName: string;
  pgBackends: number[];
}

/** How events are posted: one per request, or `size` per batch request. */
type Posting = { kind: 'single' } | { kind: 'batch'; size: number };

function loadJob(s: Setup, posting: Posting, rate: number, seed: string): Pick<LoadJob, 'path' | 'rate' | 'payload'> {
  if (posting.kind === 'single') return { path: '/v1/transactions', rate, payload: singlePayload(s.merchants, seed) };
  return {
    path: '/v1/transactions/batch',
    rate: rate / posting.size,
    payload: { kind: 'batch', mix: 'default', merchants: s.merchants, batchSize: posting.size, idempotency: true, seed },
  };
}

async function runStep(ctx: RunContext, s: Setup, posting: Posting, rate: number, seed: string): Promise<Step> {
  const E = ctx.profile.e2e;
  const t = s.inst.topology.summary;
  const why: string[] = [];
  const cs0 = await commandStats(ctx.redis);
  const cpu = new CpuWindow({
    ingest: [s.ingest.child.pid],
    worker: [s.worker.child.pid],
    sink: [s.sink.child.pid],
    loadgen: [ctx.loadgen.pid],
    ...(ctx.redisPid ? { redis: [ctx.redisPid] } : {}),
    ...(s.pgBackends.length ? { postgres: s.pgBackends } : {}),
  });
  const t0 = Date.now();
  // a scrape when the recorded window opens, one when it closes
  let atWarm: { at: number; m: Sample[]; sink: Sample[] } | undefined;
  const warmScrape = delay(E.warmupMs).then(async () => {
    const [m, sink] = await Promise.all([scrape(s.worker.metricsUrl), scrape(s.sink.metricsUrl)]);
    atWarm = { at: Date.now(), m, sink };
  });
  const load = await ctx.loadgen.run(
    { origin: s.ingest.url, mode: 'open', concurrency: 256, durationMs: E.stepMs, warmupMs: E.warmupMs, ...loadJob(s, posting, rate, seed) },
    (_done, elapsed) => ctx.progress.update(0, `${int(rate)}/s: ${Math.round(elapsed / 1000)} s`),
  );
  await warmScrape;
  const endAt = Date.now();
  const [atEnd, sinkAtEnd] = await Promise.all([scrape(s.worker.metricsUrl), scrape(s.sink.metricsUrl)]);
  const backlogAtEnd = await outstanding(ctx.redis, s.inst.prefix, t);
  const cores = cpu.end();
  const redisCommands = commandDelta(cs0, await commandStats(ctx.redis));
  const windowS = (endAt - atWarm!.at) / 1000;
  const committedPerSec = (sum(sinkAtEnd, 'rill_sink_rows_total') - sum(atWarm!.sink, 'rill_sink_rows_total')) / windowS;
  const stageRates: Record<string, number> = {};
  const a = byLabel(atEnd, 'rill_stage_events_total', 'stage');
  const b = byLabel(atWarm!.m, 'rill_stage_events_total', 'stage');
  for (const st of stageOrder(t)) stageRates[st] = ((a[st] ?? 0) - (b[st] ?? 0)) / windowS;
  stageRates[s.sinkName] = committedPerSec;

  let drained = true;
  let drainMs = 0;
  try {
    drainMs = await drain(ctx, s.inst, E.drainTimeoutMs, undefined, (left) => ctx.progress.update(0, `${int(rate)}/s: draining ${int(left)}`));
  } catch {
    drained = false;
    drainMs = E.drainTimeoutMs;
  }
  const afterDrain = await scrape(s.sink.metricsUrl);
  const from = new Date(t0 + E.warmupMs).toISOString();
  const to = new Date(endAt).toISOString();
  const us = await rowLatenciesUs(ctx.pg, s.inst.schema, `ingested_at >= '${from}' AND ingested_at <= '${to}'`);
  const e2e = us.length ? summarizeUs(us).summary : null;
  const q = (p: number) => {
    const v = histogramQuantile(atWarm!.sink, afterDrain, 'rill_end_to_end_latency_seconds', p);
    return v === undefined ? null : v * 1000;
  };

  const failed = load.requests - load.ok;
  if (failed) why.push(`${failed} requests not 2xx (${statusText(load)})`);
  if (load.dropped) why.push(`${load.dropped} requests could not be sent in time`);
  if (load.eventsPerSec < 0.97 * rate) why.push(`ingest achieved ${int(load.eventsPerSec)}/s`);
  if (committedPerSec < 0.9 * rate) why.push(`sink committed ${int(committedPerSec)}/s`);
  if (backlogAtEnd > Math.max(rate, 5_000)) why.push(`backlog ${int(backlogAtEnd)} at the end`);
  if (!drained) why.push(`did not drain in ${Math.round(E.drainTimeoutMs / 1000)} s`);
  const keptUp = why.length === 0;
  if (load.latencyMs.p99 > P99_LIMIT_MS) why.push(`ingest p99 ${ms(load.latencyMs.p99)} ms > ${P99_LIMIT_MS} ms`);
  return {
    rate,
    pass: why.length === 0,
    keptUp,
    why,
    load,
    committedPerSec,
    backlogAtEnd,
    drained,
    drainMs,
    e2eMs: e2e ? { p50: e2e.p50, p99: e2e.p99, p999: e2e.p999, count: e2e.count } : null,
    e2eCommitMs: { p50: q(0.5), p99: q(0.99) },
    stageRates,
    cpu: cores,
    redisCommands,
  };
}

/** One ladder of rates for one way of posting: its comparisons, figures and tables. */
async function ladder(
  ctx: RunContext,
  setup: Setup,
  posting: Posting,
  startRate: number,
  progress: [number, number],
): Promise<ScenarioOutput & { data: LadderData }> {
  const E = ctx.profile.e2e;
  const what = posting.kind === 'single' ? 'single-event posts' : `batches of ${posting.size}`;
  const suffix = posting.kind === 'single' ? '' : '-batch';
  // climb while the pipeline keeps up (whatever the latency), then one step between the last rate
  // kept up and the first one not; sustained = the highest rate kept up with ingest p99 ≤ 20 ms
  const steps: Step[] = [];
  let lastUp: Step | undefined;
  let firstDown: Step | undefined;
  let rate = startRate;
  const planned = E.maxSteps + (E.bisect ? 1 : 0);
  const go = async (r: number) => {
    ctx.progress.update(progress[0] + (progress[1] - progress[0]) * (steps.length / planned), `${what}: ${int(r)}/s`);
    const s = await runStep(ctx, setup, posting, r, `${ctx.runId}-e${posting.kind}${steps.length}`);
    steps.push(s);
    ctx.progress.say(
      `  end to end, ${what}, at ${int(r)}/s: ${s.pass ? 'sustained' : s.keptUp ? `kept up, but ${s.why.join('; ')}` : `not kept up (${s.why.join('; ')})`}`,
    );
    return s;
  };
  for (let n = 0; n < E.maxSteps; n++) {
    const s = await go(rate);
    if (s.keptUp) {
      lastUp = s;
      rate = Math.round((rate * E.growth) / 100) * 100;
    } else {
      firstDown = s;
      if (!s.drained || lastUp || rate <= 200) break;
      rate = Math.max(100, Math.round(rate / 2 / 100) * 100); // the start was too high: halve
    }
  }
  if (E.bisect && lastUp && firstDown?.drained && firstDown.rate - lastUp.rate >= 400) {
    await go(Math.round((lastUp.rate + firstDown.rate) / 2 / 100) * 100);
  }
  const pick = (ok: (s: Step) => boolean) => steps.filter(ok).sort((x, y) => y.rate - x.rate)[0];
  const lastPass = pick((s) => s.pass);
  const highestUp = pick((s) => s.keptUp);
  const firstFail = steps.filter((s) => !s.keptUp).sort((x, y) => x.rate - y.rate)[0];

  const best = lastPass;
  const comparisons: Comparison[] = [
    compare({
      id: `e2e-rate${suffix}`,
      title: `End to end: sustained events/s into Postgres (${what})`,
      scenario: 'end-to-end',
      rill: { label: `Rill, ingest p99 ≤ ${P99_LIMIT_MS} ms`, value: best ? best.committedPerSec : null, unit: 'events/s' },
      ...(highestUp && highestUp !== best ? { alt: { label: 'Rill, kept up (any p99)', value: highestUp.committedPerSec, unit: 'events/s' } } : {}),
      target: { kind: 'min', value: E2E_TARGET_RATE, text: `≥ ${int(E2E_TARGET_RATE)}/s` },
      note: best
        ? `offered ${int(best.rate)}/s`
        : highestUp
          ? `no rate kept ingest p99 ≤ ${P99_LIMIT_MS} ms; the pipeline kept up with ${int(highestUp.committedPerSec)}/s (offered ${int(highestUp.rate)}/s, ingest p99 ${ms(highestUp.load.latencyMs.p99)} ms)`
          : 'no rate tried was kept up with',
    }),
    compare({
      id: `e2e-ingest-p99${suffix}`,
      title: `End to end: ingest p99 at the sustained rate (${what})`,
      scenario: 'end-to-end',
      rill: { label: 'ingest p99', value: best ? best.load.latencyMs.p99 : null, unit: 'ms' },
      target: { kind: 'max', value: P99_LIMIT_MS, text: `≤ ${P99_LIMIT_MS} ms` },
    }),
  ];
  const latency: LatencyFigure[] = [];
  const shown = best ?? highestUp;
  if (shown && !best) {
    latency.push({
      label: `e2e${suffix} ingest @${int(shown.rate)}/s (kept up)`,
      who: 'rill',
      p50: shown.load.latencyMs.p50,
      p99: shown.load.latencyMs.p99,
      p999: shown.load.latencyMs.p999,
      p99Limit: P99_LIMIT_MS,
    });
    if (shown.e2eMs)
      latency.push({
        label: `e2e${suffix} to Postgres @${int(shown.rate)}/s (kept up)`,
        who: 'rill',
        p50: shown.e2eMs.p50,
        p99: shown.e2eMs.p99,
        p999: shown.e2eMs.p999,
      });
  }
  if (best) {
    latency.push({
      label: `e2e${suffix} ingest @${int(best.rate)}/s`,
      who: 'rill',
      p50: best.load.latencyMs.p50,
      p99: best.load.latencyMs.p99,
      p999: best.load.latencyMs.p999,
      p99Limit: P99_LIMIT_MS,
    });
    if (best.e2eMs)
      latency.push({ label: `e2e${suffix} to Postgres @${int(best.rate)}/s`, who: 'rill', p50: best.e2eMs.p50, p99: best.e2eMs.p99, p999: best.e2eMs.p999 });
  }
  const problems: string[] = [];
  const lost = steps.filter((s) => s.drained && s.e2eMs && s.load.events > 0 && s.e2eMs.count < s.load.events);
  for (const s of lost) problems.push(`end to end (${what}) at ${s.rate}/s: ${s.load.events} accepted in the window, ${s.e2eMs!.count} rows in Postgres`);
  const cpuRow = (s: Step) =>
    `${Object.entries(s.cpu.cores)
      .map(([k, v]) => `${k} ${v}${k === 'other' ? '' : ` (${Math.round((v / Math.max(1, s.load.eventsPerSec)) * 1e6)} µs/event)`}`)
      .join(', ')}; machine ${Math.round(s.cpu.machineBusy * 100)} % busy`;
  return {
    comparisons,
    latency,
    tables: [
      {
        title: `Rates tried (open loop, ${what}; events/s)`,
        columns: [
          'offered/s',
          'ingest /s',
          'committed /s',
          'ingest p50',
          'ingest p99',
          'ingest p99.9',
          'e2e p50',
          'e2e p99',
          'commit p50',
          'commit p99',
          'backlog at end',
          'drain s',
          'sustained',
        ],
        rows: steps.map((s) => [
          int(s.rate),
          int(s.load.eventsPerSec),
          int(s.committedPerSec),
          ms(s.load.latencyMs.p50),
          ms(s.load.latencyMs.p99),
          ms(s.load.latencyMs.p999),
          ms(s.e2eMs?.p50),
          ms(s.e2eMs?.p99),
          ms(s.e2eCommitMs.p50),
          ms(s.e2eCommitMs.p99),
          int(s.backlogAtEnd),
          Math.round(s.drainMs / 100) / 10,
          s.pass ? 'yes' : s.keptUp ? `kept up; ${s.why.join('; ')}` : `no: ${s.why.join('; ')}`,
        ]),
        note: "e2e: ingest → the sink batch that wrote the row (processed_at − ingested_at, every row of the window, HdrHistogram). commit: ingest → COMMIT from the sink's rill_end_to_end_latency_seconds histogram (bucketed).",
      },
      ...(shown
        ? [
            {
              title: `${what}, at ${int(shown.rate)}/s${best ? '' : ' (kept up, not sustained)'}: events/s per stage and CPU`,
              columns: ['', ...Object.keys(shown.stageRates)],
              rows: [['events/s', ...Object.values(shown.stageRates).map((v) => int(v))]],
              note: `CPU (cores): ${cpuRow(shown)}`,
            },
            {
              title: `${what}, at ${int(shown.rate)}/s: Redis command time (all clients)`,
              columns: ['command', 'calls', 'ms', 'µs/call', 'share'],
              rows: shown.redisCommands.map((c) => [c.command, int(c.calls), int(c.ms), c.usPerCall, `${Math.round(c.share * 100)} %`]),
            },
          ]
        : []),
      ...(firstFail ? [{ title: `${what}, at ${int(firstFail.rate)}/s (not kept up): CPU`, columns: ['CPU (cores)'], rows: [[cpuRow(firstFail)]] }] : []),
      {
        title: `CPU per event by process (${what}; µs of CPU per event ingested, every rate tried)`,
        columns: ['offered/s', 'ingest /s', ...CPU_PROCESSES.map((p) => p.label), 'all measured', 'other (cores)', 'machine busy'],
        rows: steps.map((s) => {
          const per = (k: string) => (s.cpu.cores[k] === undefined ? '–' : usPer(s.cpu.cores[k], s.load.eventsPerSec));
          const measured = CPU_PROCESSES.reduce((n, p) => n + (s.cpu.cores[p.key] ?? 0), 0);
          return [
            int(s.rate),
            int(s.load.eventsPerSec),
            ...CPU_PROCESSES.map((p) => per(p.key)),
            usPer(measured, s.load.eventsPerSec),
            s.cpu.cores.other ?? null,
            pct(s.cpu.machineBusy),
          ];
        }),
        note: "Cores busy over the recorded window (after the warm-up) ÷ events/s ingested, from /proc. worker = the three stages, sink = rill sink, Postgres = the sink's backends, Redis = the whole server (other clients of a shared Redis included). other = cores busy with anything else on the machine: the noise.",
      },
    ],
    data: {
      steps,
      sustainedRate: best?.rate ?? null,
      sustainedCommittedPerSec: best?.committedPerSec ?? null,
      keptUpRate: highestUp?.rate ?? null,
      keptUpCommittedPerSec: highestUp?.committedPerSec ?? null,
    },
    problems,
  };
}

/**
 * Redis bytes per transaction by key family once every transaction is settled (nothing in flight),
 * and the projection after a day at 1,000/s and at the target rate with this topology's retention.
 */
async function memoryByFamily(ctx: RunContext, inst: BenchInstance): Promise<{ tables: ScenarioOutput['tables']; data: Record<string, unknown> }> {
  const t = inst.topology.summary;
  await drain(ctx, inst, ctx.profile.e2e.drainTimeoutMs).catch(() => undefined);
  const transactions = await rowCount(ctx.pg, inst.schema);
  const report = await redisMemoryByFamily(ctx.redis, inst.prefix, { topics: Object.keys(t.topics), memorySamples: 0, samplesPerFamily: 200 });
  const retention = readRetention(inst.topology.path);
  const laneEntries: Record<string, number[]> = {};
  for (const topic of Object.keys(t.topics)) {
    const pipe = ctx.redis.pipeline();
    for (const key of laneKeys(inst.prefix, t, topic)) pipe.xlen(key);
    laneEntries[topic] = ((await pipe.exec()) ?? []).map(([err, n]) => (err ? 0 : Number(n)));
  }
  const rows = projectMemory(report, transactions, retention, PROJECTION_RATES, laneEntries);
  const total = PROJECTION_RATES.map((_, i) => rows.reduce((n, r) => n + r.projected[i]!, 0));
  const perTx = rows.reduce((n, r) => n + r.bytesPerTx, 0);
  const gb = (b: number) => (b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(1)} GB` : `${(b / 1024 ** 2).toFixed(1)} MB`);
  const held = (s: number | null) =>
    s === null ? '–' : s >= 86_400 ? `${+(s / 86_400).toFixed(1)} d` : s >= 3600 ? `${+(s / 3600).toFixed(1)} h` : `${Math.round(s)} s`;
  return {
    tables: [
      {
        title: `Redis bytes per transaction by key family (${int(transactions)} transactions settled, nothing in flight)`,
        columns: [
          'family',
          'grows with',
          'keys',
          'entries / fields',
          'bytes',
          'bytes per tx',
          'held (≤ 1 d)',
          ...PROJECTION_RATES.map((r) => `after a day at ${int(r)}/s`),
          'basis',
        ],
        rows: [
          ...rows.map((r) => [
            r.family,
            r.kind,
            int(r.keys),
            r.entries === null ? '–' : int(r.entries),
            int(r.bytes),
            r.bytesPerTx.toFixed(1),
            held(r.heldS),
            ...r.projected.map(gb),
            r.basis,
          ]),
          [
            'total',
            '',
            int(report.keys),
            '',
            int(report.bytes),
            perTx.toFixed(1),
            '',
            ...total.map(gb),
            `server used_memory now ${gb(report.usedMemory)} (every prefix)`,
          ],
        ],
        note: `MEMORY USAGE (exact) of up to 200 keys per family, extrapolated by the family's key count (core/redis-memory.ts, also in \`rill status\`). The projection: rate × how long a transaction's bytes stay (its topic's hot window or max_age, a record's TTL; at most the day) × bytes per transaction now, capped by max_len/max_bytes; per-merchant state (${ctx.profile.merchants} bench merchants) as measured. Retention from ${inst.topology.path.split('/').pop()} (the shipped topology.yaml's).`,
      },
    ],
    data: { transactions, report, projection: rows, projectedTotal: Object.fromEntries(PROJECTION_RATES.map((r, i) => [r, total[i]])) },
  };
}

export const endToEnd: Scenario = {
  id: 'end-to-end',
  title: 'e. End to end (HTTP → validate → risk → ledger → Postgres)',
  async run(ctx): Promise<ScenarioOutput> {
    const E = ctx.profile.e2e;
    const { inst, merchants } = await merchantInstance(ctx, 'e2e');
    const t = inst.topology.summary;
    const sinkName = postgresSink(t)?.name ?? 'postgres';
    const [ingest, worker, sinkProc] = await Promise.all([
      inst.startIngest(),
      inst.startWorker({ stages: stageOrder(t) }),
      inst.startWorker({ sinkOnly: true }),
    ]);
    // warm up (JIT, key cache, partitions, the sink's connection), then start from an empty pipeline
    ctx.progress.update(0.02, 'warming up');
    await ctx.loadgen.run({
      origin: ingest.url,
      path: '/v1/transactions',
      mode: 'open',
      rate: E.startRate,
      concurrency: 256,
      durationMs: Math.max(1_000, E.warmupMs),
      payload: singlePayload(merchants, `${ctx.runId}-e2ew`),
    });
    await drain(ctx, inst, E.drainTimeoutMs);
    const pgBackends = await backendPids(ctx.pg, `rill-sink-${sinkName}`).catch(() => []);
    const setup: Setup = { inst, merchants, ingest, worker, sink: sinkProc, sinkName, pgBackends };

    const single = await ladder(ctx, setup, { kind: 'single' }, E.startRate, [0.05, 0.5]);
    ctx.shared.set('e2e-sustained', single.data.sustainedRate ?? single.data.keptUpRate);
    const batched = await ladder(ctx, setup, { kind: 'batch', size: E.batchSize }, E.batchStartRate, [0.5, 0.97]);
    ctx.progress.update(0.98, 'Redis memory by key family');
    const memory = await memoryByFamily(ctx, inst);
    return {
      comparisons: [...single.comparisons, ...batched.comparisons],
      latency: [...(single.latency ?? []), ...(batched.latency ?? [])],
      tables: [...(single.tables ?? []), ...(batched.tables ?? []), ...memory.tables],
      // the single-event ladder's figures stay at the top level (the soak reads them)
      data: { ...single.data, batched: batched.data, redisMemory: memory.data },
      problems: [...(single.problems ?? []), ...(batched.problems ?? [])],
    };
  },
};
