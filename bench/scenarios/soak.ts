// 5. Soak: 10 minutes of single-event load at half the highest sustainable end-to-end rate (from
// --rate, else this run's end-to-end result, else the latest standard run's, else the profile's default). Every process's RSS
// (ingest, worker) and Redis's used_memory are sampled; after the warm-up each one's level (the
// median of a minute's samples) must stay within 10 % of its level in the first minute after it.
// The soak topology keeps everything Redis holds per event 1 minute (bench/lib/topology.ts), so
// Redis is in its steady state after the warm-up. Each series' slope after the warm-up (least
// squares) is reported and drawn: Node RSS in one chart, Redis used_memory beside it.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { RESULTS_DIR } from '../lib/paths.ts';
import { rssBytes } from '../lib/proc-stats.ts';
import { scrape, sum } from '../lib/prom.ts';
import { outstanding, usedMemory } from '../lib/redis-stats.ts';
import { redisMemoryByFamily } from '../../core/index.ts';
import { drain, int, ms, singlePayload, statusText } from './common.ts';
import { merchantInstance } from './fixtures.ts';
import { SOAK_RETENTION } from '../lib/topology.ts';
import type { RunContext, Scenario, ScenarioOutput, TimeChart } from './types.ts';

const TOLERANCE = 0.1;
/** Samples per level: a minute. */
const LEVEL_WINDOW_S = 60;

interface SoakSample {
  atS: number;
  ingestRss: number;
  workerRss: number;
  loadgenRss: number;
  redisUsedMemory: number;
  backlog: number;
  committed: number;
}

function soakRate(ctx: RunContext): { rate: number; source: string } {
  if (ctx.options.rate) return { rate: ctx.options.rate, source: '--rate' };
  // this run's end-to-end result first (the machine as it is now), else the latest standard run's
  const now = ctx.shared.get('e2e-sustained') as number | undefined;
  if (now) return { rate: Math.max(100, Math.round(now / 2 / 100) * 100), source: `half of ${int(now)}/s (this run's end to end)` };
  const file = join(RESULTS_DIR, 'latest-standard.json');
  if (existsSync(file)) {
    try {
      const r = JSON.parse(readFileSync(file, 'utf8')) as {
        scenarios?: { id: string; data?: { sustainedRate?: number | null; keptUpRate?: number | null } }[];
      };
      const d = r.scenarios?.find((s) => s.id === 'end-to-end')?.data;
      const e2e = d?.sustainedRate ?? d?.keptUpRate;
      if (e2e) return { rate: Math.max(100, Math.round(e2e / 2 / 100) * 100), source: `half of ${int(e2e)}/s (bench/results/latest-standard.json)` };
    } catch {
      // fall through
    }
  }
  return { rate: ctx.profile.soak.defaultRate, source: 'profile default (no standard run found)' };
}

export const soak: Scenario = {
  id: 'soak',
  title: 'Soak: memory at half the sustainable rate',
  async run(ctx): Promise<ScenarioOutput> {
    const S = ctx.profile.soak;
    const durationMs = ctx.options.durationMs ?? S.durationMs;
    const warmupMs = Math.min(S.warmupMs, Math.floor(durationMs / 3));
    const { rate, source } = soakRate(ctx);
    const { inst, merchants } = await merchantInstance(ctx, 'soak', 'soak');
    const [ingest, worker] = await Promise.all([inst.startIngest(), inst.startWorker()]);
    const samples: SoakSample[] = [];
    const t0 = Date.now();
    let running = true;
    const sampler = (async () => {
      while (running) {
        const m = await scrape(worker.metricsUrl);
        samples.push({
          atS: Math.round((Date.now() - t0) / 1000),
          ingestRss: rssBytes(ingest.child.pid) ?? 0,
          workerRss: rssBytes(worker.child.pid) ?? 0,
          loadgenRss: rssBytes(ctx.loadgen.pid) ?? 0,
          redisUsedMemory: await usedMemory(ctx.redis),
          backlog: await outstanding(ctx.redis, inst.prefix, inst.topology.summary),
          committed: sum(m, 'rill_sink_rows_total'),
        });
        const last = samples[samples.length - 1]!;
        ctx.progress.update(
          (Date.now() - t0) / durationMs,
          `${int(rate)}/s, ${last.atS} s: ingest ${mb(last.ingestRss)}, worker ${mb(last.workerRss)}, Redis ${mb(last.redisUsedMemory)}, backlog ${int(last.backlog)}`,
        );
        await delay(S.sampleMs);
      }
    })();
    const load = await ctx.loadgen.run({
      origin: ingest.url,
      path: '/v1/transactions',
      mode: 'open',
      rate,
      concurrency: 256,
      durationMs,
      warmupMs: 0,
      payload: singlePayload(merchants, `${ctx.runId}-soak`),
    });
    running = false;
    await sampler;
    await drain(ctx, inst, 120_000).catch(() => undefined);
    // which families hold Redis's memory at the end (the retention is a minute: what grows is what outlives it)
    const families = await redisMemoryByFamily(ctx.redis, inst.prefix, { topics: Object.keys(inst.topology.summary.topics), samplesPerFamily: 100 });

    // a level is the median of a minute's samples: a leak moves it, a GC cycle does not (a single
    // sample swings ±15 % with V8's heap). The level in the first minute after the warm-up is the
    // base; every later minute's level must stay within the tolerance of it.
    const after = samples.filter((s) => s.atS * 1000 >= warmupMs);
    const minutes: SoakSample[][] = [];
    for (const s of after) (minutes[Math.floor((s.atS - after[0]!.atS) / LEVEL_WINDOW_S)] ??= []).push(s);
    const series = ['ingestRss', 'workerRss', 'redisUsedMemory'] as const;
    const checks = series.map((k) => {
      const levels = minutes.filter((m) => m.length).map((m) => median(m.map((s) => s[k])));
      const base = levels[0]!;
      const dev = Math.max(...levels.map((l) => Math.abs(l - base) / Math.max(1, base)));
      const sampleDev = Math.max(...after.map((s) => Math.abs(s[k] - base) / Math.max(1, base)));
      return {
        series: k,
        atWarmup: base,
        end: levels[levels.length - 1]!,
        levels,
        max: Math.max(...after.map((s) => s[k])),
        maxDeviation: dev,
        maxSampleDeviation: sampleDev,
        pass: dev <= TOLERANCE,
      };
    });
    const fits = Object.fromEntries(FIT_KEYS.map((k) => [k, fitLine(after.map((x) => [x.atS, x[k]] as [number, number]))])) as Record<FitKey, Fit | undefined>;
    const warmS = Math.round(warmupMs / 1000);
    const toMb = (v: number) => v / 1024 / 1024;
    const line = (k: FitKey, label: string): TimeChart['series'][number] => {
      const f = fits[k];
      return {
        label,
        points: samples.map((x) => [x.atS, toMb(x[k])]),
        ...(f && after.length
          ? {
              fit: {
                from: after[0]!.atS,
                to: after[after.length - 1]!.atS,
                slope: toMb(f.slope),
                intercept: toMb(f.intercept),
                text: slopeText(f.slope, rate),
              },
            }
          : {}),
      };
    };
    const charts: TimeChart[] = [
      {
        title: `Soak at ${int(rate)}/s: Node RSS`,
        unit: 'MB',
        xUnit: 's',
        series: [line('ingestRss', 'ingest'), line('workerRss', 'worker'), line('loadgenRss', 'load generator')],
        markers: [{ x: warmS, label: 'warm-up' }],
      },
      {
        title: `Soak at ${int(rate)}/s: Redis used_memory`,
        unit: 'MB',
        xUnit: 's',
        series: [line('redisUsedMemory', 'used_memory')],
        markers: [{ x: warmS, label: 'warm-up' }],
      },
    ];
    const problems = load.requests - load.ok ? [`soak: ${load.requests - load.ok} requests not accepted (${statusText(load)})`] : [];
    const redis = checks.find((c) => c.series === 'redisUsedMemory')!;
    const redisGrowth = redis.end - redis.atWarmup;
    const accepted = load.ok;
    const perEvent = accepted ? redisGrowth / (accepted * (1 - warmupMs / durationMs)) : 0;
    // what Redis holds per event in the steady state: its level over a retention's worth of events
    const heldPerEvent = redis.atWarmup / Math.max(1, rate * 60);
    return {
      comparisons: checks.map((c) => ({
        id: `soak-${c.series}`,
        title: `Soak: ${c.series} within ${TOLERANCE * 100} % of its post-warm-up level (per-minute medians)`,
        scenario: 'soak' as const,
        rill: { label: c.series, value: Math.round(c.maxDeviation * 1000) / 10, unit: '% max deviation' },
        target: { kind: 'max' as const, value: TOLERANCE * 100, text: `≤ ${TOLERANCE * 100} %` },
        met: c.pass,
      })),
      charts,
      latency: [{ label: `soak ingest @${int(rate)}/s`, who: 'rill', p50: load.latencyMs.p50, p99: load.latencyMs.p99, p999: load.latencyMs.p999 }],
      tables: [
        {
          title: `Soak at ${int(rate)}/s for ${Math.round(durationMs / 1000)} s (rate: ${source})`,
          columns: [
            'series',
            'level after warm-up',
            'level per minute',
            'level at the end',
            'largest level deviation',
            'largest single sample',
            'slope after warm-up',
            'within 10 %',
          ],
          rows: checks.map((c) => [
            c.series,
            mb(c.atWarmup),
            `${c.levels.map((l) => mb(l).replace(' MB', '')).join(' · ')} MB`,
            mb(c.end),
            `${(c.maxDeviation * 100).toFixed(1)} %`,
            `${mb(c.max)} (${(c.maxSampleDeviation * 100).toFixed(1)} %)`,
            fits[c.series] ? slopeText(fits[c.series]!.slope, rate) : '–',
            c.pass ? 'yes' : 'no',
          ]),
          note: `Ingest: ${int(load.rps)}/s achieved, p50 ${ms(load.latencyMs.p50)} ms, p99 ${ms(load.latencyMs.p99)} ms (${statusText(load)}). Redis grew ${mb(redisGrowth)} after the warm-up, ~${int(perEvent)} bytes per accepted event. In the steady state Redis holds ~${int(heldPerEvent)} bytes per event of the last ${SOAK_RETENTION} (four topics' entries, idempotency, risk and ledger records, refundable payins); with the shipped retention (7 days of transactions and settled, 1 day of the rest, 24 h idempotency, 7 days of ledger records, 180 days of payins) size Redis for rate × that.`,
        },
        {
          title: `Redis memory by key family at the end of the soak (drained; ${SOAK_RETENTION} retention)`,
          columns: ['family', 'grows with', 'keys', 'entries / fields', 'bytes', 'longest TTL'],
          rows: families.families.map((f) => [
            f.family,
            f.kind,
            int(f.keys),
            f.entries === null ? '–' : int(f.entries),
            mb(f.bytes),
            f.ttlMs === null ? '–' : `${Math.round(f.ttlMs / 1000)} s`,
          ]),
          note: `core/redis-memory.ts (as \`rill status\` shows it); ${mb(families.bytes)} in ${int(families.keys)} keys of this instance, server used_memory ${mb(families.usedMemory)}.`,
        },
        {
          title: 'Samples',
          columns: ['s', 'ingest RSS', 'worker RSS', 'loadgen RSS', 'Redis used_memory', 'backlog', 'committed'],
          rows: samples.map((s) => [s.atS, mb(s.ingestRss), mb(s.workerRss), mb(s.loadgenRss), mb(s.redisUsedMemory), int(s.backlog), int(s.committed)]),
        },
      ],
      data: {
        rate,
        rateSource: source,
        durationMs,
        warmupMs,
        load,
        samples,
        checks,
        redisBytesPerEvent: perEvent,
        slopesAfterWarmup: fits,
        redisByFamily: families,
      },
      problems,
    };
  },
};

const FIT_KEYS = ['ingestRss', 'workerRss', 'loadgenRss', 'redisUsedMemory'] as const;
type FitKey = (typeof FIT_KEYS)[number];
type Fit = { slope: number; intercept: number };

/** Least-squares line through the points (undefined with fewer than two distinct x). */
function fitLine(points: readonly [number, number][]): Fit | undefined {
  const n = points.length;
  if (n < 2) return undefined;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  const sxx = points.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  if (!sxx) return undefined;
  const slope = points.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0) / sxx;
  return { slope, intercept: my - slope * mx };
}

/** A slope in bytes/s as MB per minute and bytes per event. */
function slopeText(bytesPerS: number, rate: number): string {
  return `${bytesPerS >= 0 ? '+' : ''}${((bytesPerS * 60) / 1024 / 1024).toFixed(2)} MB/min (${Math.round(bytesPerS / Math.max(1, rate))} B/event)`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
