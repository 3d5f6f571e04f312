// a. Single-event HTTP ingest: POST /v1/transactions with a merchant key and an Idempotency-Key
// (auth, validation, idempotency, rate-limit bucket and append: the full path), at fixed
// concurrencies (closed loop: req/s and latency), then at fixed rates (open loop) to find the
// highest sustainable rate: every request answered 2xx, ≥ 97 % of the offered rate achieved,
// p99 ≤ 20 ms. Baseline: a bare node:http handler doing the same XADD, same bodies, same concurrency.
import { P99_LIMIT_MS } from '../profiles.ts';
import type { LoadJob, LoadResult } from '../load/protocol.ts';
import { spawnScript } from '../lib/procs.ts';
import { CpuWindow } from '../lib/proc-stats.ts';
import { commandDelta, commandStats, deletePrefix } from '../lib/redis-stats.ts';
import { int, loadProblems, ms, ratio, singlePayload, statusText, usPer } from './common.ts';
import { ingestFixture } from './fixtures.ts';
import type { Comparison, LatencyFigure, Scenario, ScenarioOutput, Table } from './types.ts';
import { compare, ratioTarget } from './types.ts';

export interface SustainableRate {
  rate: number;
  result: LoadResult;
}

export const ingestSingle: Scenario = {
  id: 'ingest-single',
  title: 'a. Single-event HTTP ingest',
  async run(ctx): Promise<ScenarioOutput> {
    const P = ctx.profile.ingest;
    const fx = await ingestFixture(ctx);
    const problems: string[] = [];
    const bare = spawnScript('bare-http-xadd', 'baselines/bare-http-xadd', ['--prefix', `${fx.inst.prefix}:bare`], {
      env: { REDIS_URL: ctx.redisUrl },
      cpuProf: ctx.cpuProfDir ? { dir: ctx.cpuProfDir, name: 'bare-http-xadd' } : undefined,
    });
    try {
      const barePort = (JSON.parse(await bare.waitForLine(/^\{"port"/, 30_000)) as { port: number }).port;
      const bareUrl = `http://127.0.0.1:${barePort}`;
      const closed = (origin: string, c: number, seed: string): LoadJob => ({
        origin,
        path: '/v1/transactions',
        mode: 'closed',
        concurrency: c,
        durationMs: P.durationMs,
        warmupMs: P.warmupMs,
        payload: singlePayload(fx.merchants, seed),
      });
      const steps = P.concurrencies.length * 2 + P.searchFactors.length + 1;
      let step = 0;
      const tick = (what: string) => ctx.progress.update(step++ / steps, what);
      const redisPids = ctx.redisPid ? [ctx.redisPid] : [];

      // warm both servers up (JIT, key cache, connections)
      tick('warming up');
      await ctx.loadgen.run({ ...closed(fx.ingest.url, 50, `${ctx.runId}-warm`), durationMs: P.warmupMs * 2, warmupMs: 0 });
      await ctx.loadgen.run({ ...closed(bareUrl, 50, `${ctx.runId}-warmbare`), durationMs: P.warmupMs * 2, warmupMs: 0 });

      const rows: Table['rows'] = [];
      const latency: LatencyFigure[] = [];
      const runs: Record<string, unknown>[] = [];
      let atRatio: { rill: LoadResult; bare: LoadResult } | undefined;
      let commands: ReturnType<typeof commandDelta> = [];
      let best = 0;
      for (const c of P.concurrencies) {
        await deletePrefix(ctx.redis, fx.inst.prefix); // no backlog from the last run (ingest would shed load past max_lag)
        tick(`Rill at c=${c}`);
        const cs0 = await commandStats(ctx.redis);
        const cpuR = new CpuWindow({ ingest: [fx.ingest.child.pid], loadgen: [ctx.loadgen.pid], redis: redisPids });
        const rill = await ctx.loadgen.run(closed(fx.ingest.url, c, `${ctx.runId}-a${c}`));
        const cpuRill = cpuR.end();
        if (c === P.ratioConcurrency) commands = commandDelta(cs0, await commandStats(ctx.redis));
        problems.push(...loadProblems(`ingest c=${c}`, rill));
        tick(`bare node:http at c=${c}`);
        const cpuB = new CpuWindow({ bare: [bare.pid], loadgen: [ctx.loadgen.pid], redis: redisPids });
        const base = await ctx.loadgen.run(closed(bareUrl, c, `${ctx.runId}-b${c}`));
        const cpuBare = cpuB.end();
        best = Math.max(best, rill.rps);
        if (c === P.ratioConcurrency) atRatio = { rill, bare: base };
        rows.push([
          c,
          int(rill.rps),
          ms(rill.latencyMs.p50),
          ms(rill.latencyMs.p99),
          ms(rill.latencyMs.p999),
          int(base.rps),
          ms(base.latencyMs.p50),
          ms(base.latencyMs.p99),
          ratio(rill.rps / base.rps),
          cpuRill.cores.ingest ?? null,
          usPer(cpuRill.cores.ingest, rill.rps),
          usPer(cpuBare.cores.bare, base.rps),
          usPer(cpuRill.cores.redis, rill.rps),
          usPer(cpuBare.cores.redis, base.rps),
          cpuRill.cores.other ?? null,
        ]);
        latency.push({ label: `ingest c=${c}`, who: 'rill', p50: rill.latencyMs.p50, p99: rill.latencyMs.p99, p999: rill.latencyMs.p999 });
        latency.push({ label: `bare c=${c}`, who: 'baseline', p50: base.latencyMs.p50, p99: base.latencyMs.p99, p999: base.latencyMs.p999 });
        runs.push({ concurrency: c, rill, bare: base, cpu: { rill: cpuRill, bare: cpuBare } });
      }

      // the highest sustainable rate: open loop at shares of the best closed-loop throughput
      const searchRows: Table['rows'] = [];
      const search: Record<string, unknown>[] = [];
      let sustainable: SustainableRate | undefined;
      for (const f of P.searchFactors) {
        const rate = Math.max(100, Math.round((best * f) / 100) * 100);
        await deletePrefix(ctx.redis, fx.inst.prefix);
        tick(`open loop at ${int(rate)}/s`);
        const r = await ctx.loadgen.run({
          origin: fx.ingest.url,
          path: '/v1/transactions',
          mode: 'open',
          rate,
          concurrency: 256,
          durationMs: P.searchStepMs,
          warmupMs: 1_000,
          payload: singlePayload(fx.merchants, `${ctx.runId}-s${rate}`),
        });
        const failed = r.requests - r.ok + r.dropped;
        const ok = failed === 0 && r.rps >= 0.97 * rate && r.latencyMs.p99 <= P99_LIMIT_MS;
        if (ok && (!sustainable || rate > sustainable.rate)) sustainable = { rate, result: r };
        searchRows.push([int(rate), int(r.rps), ms(r.latencyMs.p50), ms(r.latencyMs.p99), ms(r.latencyMs.p999), statusText(r), ok ? 'yes' : 'no']);
        search.push({ rate, sustainable: ok, result: r });
        if (!ok) break;
      }
      if (sustainable) {
        const s = sustainable.result.latencyMs;
        latency.push({ label: `ingest @${int(sustainable.rate)}/s`, who: 'rill', p50: s.p50, p99: s.p99, p999: s.p999, p99Limit: P99_LIMIT_MS });
      }
      await deletePrefix(ctx.redis, fx.inst.prefix);
      ctx.shared.set('ingest-sustainable', sustainable?.rate);
      ctx.shared.set('ingest-best', best);

      const comparisons: Comparison[] = [
        compare({
          id: 'ingest-vs-bare',
          title: `Full ingest vs bare node:http + XADD (c=${P.ratioConcurrency})`,
          scenario: 'ingest-single',
          rill: { label: 'Rill ingest', value: atRatio?.rill.rps ?? null, unit: 'req/s' },
          baseline: { label: 'bare node:http + XADD', value: atRatio?.bare.rps ?? null, unit: 'req/s' },
          target: ratioTarget(0.7),
        }),
      ];
      return {
        comparisons,
        latency,
        tables: [
          {
            title: 'Closed loop: fixed concurrency',
            columns: [
              'concurrency',
              'Rill req/s',
              'p50 ms',
              'p99 ms',
              'p99.9 ms',
              'bare req/s',
              'bare p50',
              'bare p99',
              'Rill ÷ bare',
              'ingest CPU (cores)',
              'ingest CPU µs/req',
              'bare CPU µs/req',
              'Redis µs/req (Rill)',
              'Redis µs/req (bare)',
              'other (cores)',
            ],
            rows,
            note: 'Rill: bearer key, JSON validation, Idempotency-Key, rate-limit bucket and XADD in one Lua script. Bare: JSON.parse and XADD. CPU µs per request = cores busy ÷ req/s: what a request costs, whatever else the machine was doing; `other` = cores busy outside the measured processes.',
          },
          {
            title: `Open loop: fixed rate (sustainable = all 2xx, ≥ 97 % achieved, p99 ≤ ${P99_LIMIT_MS} ms)`,
            columns: ['offered/s', 'achieved/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'answers', 'sustainable'],
            rows: searchRows,
            note: "Latency counted from each request's scheduled send time (no coordinated omission).",
          },
          {
            title: `Redis command time during the c=${P.ratioConcurrency} run (all clients)`,
            columns: ['command', 'calls', 'ms', 'µs/call', 'share'],
            rows: commands.map((c) => [c.command, int(c.calls), int(c.ms), c.usPerCall, `${Math.round(c.share * 100)} %`]),
          },
        ],
        data: { runs, search, sustainableRate: sustainable?.rate ?? null, bestClosedRps: best, redisCommands: commands },
        problems,
      };
    } finally {
      await bare.stop();
    }
  },
};
