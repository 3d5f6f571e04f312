// 5. Soak: 10 minutes of single-event load at half the highest sustainable end-to-end rate (from
// --rate, else the latest standard run's result, else the profile's default). Every process's RSS
// (ingest, worker) and Redis's used_memory are sampled; after the warm-up each must stay within
// 10 % of its level at the end of the warm-up. The soak topology keeps topics and idempotency
// records 1 minute (bench/lib/topology.ts), so Redis is in its steady state after the warm-up.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { RESULTS_DIR } from '../lib/paths.ts';
import { rssBytes } from '../lib/proc-stats.ts';
import { scrape, sum } from '../lib/prom.ts';
import { outstanding, usedMemory } from '../lib/redis-stats.ts';
import { drain, int, ms, singlePayload, statusText } from './common.ts';
import { merchantInstance } from './fixtures.ts';
import { SOAK_RETENTION } from '../lib/topology.ts';
import type { RunContext, Scenario, ScenarioOutput } from './types.ts';

const TOLERANCE = 0.1;

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
  const file = join(RESULTS_DIR, 'latest-standard.json');
  if (existsSync(file)) {
    try {
      const r = JSON.parse(readFileSync(file, 'utf8')) as { scenarios?: { id: string; data?: { sustainedRate?: number | null; keptUpRate?: number | null } }[] };
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
        ctx.progress.update((Date.now() - t0) / durationMs, `${int(rate)}/s, ${last.atS} s: ingest ${mb(last.ingestRss)}, worker ${mb(last.workerRss)}, Redis ${mb(last.redisUsedMemory)}, backlog ${int(last.backlog)}`);
        await delay(S.sampleMs);
      }
    })();
    const load = await ctx.loadgen.run({ origin: ingest.url, path: '/v1/transactions', mode: 'open', rate, concurrency: 256, durationMs, warmupMs: 0, payload: singlePayload(merchants, `${ctx.runId}-soak`) });
    running = false;
    await sampler;
    await drain(ctx, inst, 120_000).catch(() => undefined);

    const base = samples.find((s) => s.atS * 1000 >= warmupMs) ?? samples[0]!;
    const after = samples.filter((s) => s.atS >= base.atS);
    const series = ['ingestRss', 'workerRss', 'redisUsedMemory'] as const;
    const checks = series.map((k) => {
      const dev = Math.max(...after.map((s) => Math.abs(s[k] - base[k]) / Math.max(1, base[k])));
      const end = after[after.length - 1]![k];
      return { series: k, atWarmup: base[k], end, max: Math.max(...after.map((s) => s[k])), maxDeviation: dev, pass: dev <= TOLERANCE };
    });
    const problems = load.requests - load.ok ? [`soak: ${load.requests - load.ok} requests not accepted (${statusText(load)})`] : [];
    const redisGrowth = after[after.length - 1]!.redisUsedMemory - base.redisUsedMemory;
    const accepted = load.ok;
    const perEvent = accepted ? redisGrowth / (accepted * (1 - base.atS * 1000 / durationMs)) : 0;
    return {
      comparisons: checks.map((c) => ({
        id: `soak-${c.series}`, title: `Soak: ${c.series} within ${TOLERANCE * 100} % of its post-warm-up level`, scenario: 'soak' as const,
        rill: { label: c.series, value: Math.round(c.maxDeviation * 1000) / 10, unit: '% max deviation' },
        target: { kind: 'max' as const, value: TOLERANCE * 100, text: `≤ ${TOLERANCE * 100} %` },
        met: c.pass,
      })),
      latency: [{ label: `soak ingest @${int(rate)}/s`, who: 'rill', p50: load.latencyMs.p50, p99: load.latencyMs.p99, p999: load.latencyMs.p999 }],
      tables: [
        {
          title: `Soak at ${int(rate)}/s for ${Math.round(durationMs / 1000)} s (rate: ${source})`,
          columns: ['series', 'after warm-up', 'at the end', 'max', 'max deviation', 'within 10 %'],
          rows: checks.map((c) => [c.series, mb(c.atWarmup), mb(c.end), mb(c.max), `${(c.maxDeviation * 100).toFixed(1)} %`, c.pass ? 'yes' : 'no']),
          note: `Ingest: ${int(load.rps)}/s achieved, p50 ${ms(load.latencyMs.p50)} ms, p99 ${ms(load.latencyMs.p99)} ms (${statusText(load)}). Redis grew ${mb(redisGrowth)} after the warm-up, ~${int(perEvent)} bytes per accepted event (topics and idempotency records kept ${SOAK_RETENTION} here; with the shipped 7 days and 24 h Redis holds that much more).`,
        },
        {
          title: 'Samples',
          columns: ['s', 'ingest RSS', 'worker RSS', 'loadgen RSS', 'Redis used_memory', 'backlog', 'committed'],
          rows: samples.map((s) => [s.atS, mb(s.ingestRss), mb(s.workerRss), mb(s.loadgenRss), mb(s.redisUsedMemory), int(s.backlog), int(s.committed)]),
        },
      ],
      data: { rate, rateSource: source, durationMs, warmupMs, load, samples, checks, redisBytesPerEvent: perEvent },
      problems,
    };
  },
};

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
