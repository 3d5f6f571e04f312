// b. Batch ingest: POST /v1/transactions/batch, NDJSON, events per request and requests in flight
// from the profile, each event with its idempotency_key: events/s. Baseline: the Redis ceiling on
// this machine, redis-benchmark -P 16 XADD of the same entry. When the batch endpoint is not there
// (404), the scenario says so and reports the ceiling alone.
import type { XaddResult } from '../baselines/redis-xadd.ts';
import { lastJsonLine, runToEnd, spawnScript } from '../lib/procs.ts';
import { CpuWindow } from '../lib/proc-stats.ts';
import { commandDelta, commandStats, deletePrefix } from '../lib/redis-stats.ts';
import { batchAvailable, int, loadProblems, ms, statusText, usPer } from './common.ts';
import { ingestFixture } from './fixtures.ts';
import type { Comparison, Scenario, ScenarioOutput } from './types.ts';
import { compare, ratioTarget } from './types.ts';

export async function xaddCeiling(ctx: Parameters<Scenario['run']>[0]): Promise<XaddResult> {
  const cached = ctx.shared.get('xadd') as XaddResult | undefined;
  if (cached) return cached;
  const P = ctx.profile.xadd;
  const out = await runToEnd(
    spawnScript(
      'redis-xadd',
      'baselines/redis-xadd',
      ['--key', `rillbench:${ctx.runId}:xadd`, '--requests', String(P.requests), '--clients', String(P.clients), '--pipeline', String(P.pipeline)],
      {
        env: { REDIS_URL: ctx.redisUrl },
      },
    ),
    300_000,
  );
  const r = lastJsonLine<XaddResult>(out);
  ctx.shared.set('xadd', r);
  return r;
}

export const ingestBatch: Scenario = {
  id: 'ingest-batch',
  title: 'b. Batch ingest',
  async run(ctx): Promise<ScenarioOutput> {
    const P = ctx.profile.batch;
    ctx.progress.update(0.05, 'redis-benchmark XADD -P 16');
    const xadd = await xaddCeiling(ctx);
    const fx = await ingestFixture(ctx);
    const available = await batchAvailable(ctx, fx.ingest.url, fx.merchants[0]!);
    const xaddTable = {
      title: 'Redis ceiling: redis-benchmark XADD',
      columns: ['requests', 'clients', 'pipeline', 'entry bytes', 'XADD/s', 'p50 ms', 'p99 ms'],
      rows: [[int(xadd.requests), xadd.clients, xadd.pipeline, xadd.payloadBytes, int(xadd.rps), xadd.p50Ms, xadd.p99Ms]],
    };
    const baseline = { label: 'redis-benchmark XADD -P 16', value: xadd.rps, unit: 'XADD/s' };
    if (!available) {
      return {
        status: 'skipped',
        reason: 'POST /v1/transactions/batch answers 404: the batch endpoint is not in this build; only the Redis ceiling was measured',
        comparisons: [
          compare({
            id: 'batch-vs-xadd',
            title: 'Batch ingest vs the Redis XADD ceiling',
            scenario: 'ingest-batch',
            rill: { label: 'Rill batch ingest', value: null, unit: 'events/s' },
            baseline,
            target: ratioTarget(0.3),
            note: 'batch endpoint not available',
          }),
        ],
        latency: [],
        tables: [xaddTable],
        data: { xadd, batchEndpoint: false },
        problems: [],
      };
    }
    await deletePrefix(ctx.redis, fx.inst.prefix);
    ctx.progress.update(0.3, `batches of ${P.batchSize}, ${P.concurrency} in flight`);
    const cs0 = await commandStats(ctx.redis);
    const cpu = new CpuWindow({ ingest: [fx.ingest.child.pid], loadgen: [ctx.loadgen.pid], redis: ctx.redisPid ? [ctx.redisPid] : [] });
    const r = await ctx.loadgen.run({
      origin: fx.ingest.url,
      path: '/v1/transactions/batch',
      mode: 'closed',
      concurrency: P.concurrency,
      durationMs: P.durationMs,
      warmupMs: P.warmupMs,
      payload: { kind: 'batch', mix: 'default', merchants: fx.merchants, batchSize: P.batchSize, idempotency: true, seed: `${ctx.runId}-batch` },
    });
    const cores = cpu.end();
    const commands = commandDelta(cs0, await commandStats(ctx.redis));
    await deletePrefix(ctx.redis, fx.inst.prefix);
    const problems = loadProblems('batch ingest', r);
    const expected = r.ok * P.batchSize;
    if (r.events < expected) problems.push(`batch ingest: ${expected - r.events} of ${expected} events in 2xx answers were not accepted`);
    const comparisons: Comparison[] = [
      compare({
        id: 'batch-vs-xadd',
        title: 'Batch ingest vs the Redis XADD ceiling',
        scenario: 'ingest-batch',
        rill: { label: 'Rill batch ingest', value: r.eventsPerSec, unit: 'events/s' },
        baseline,
        target: ratioTarget(0.3),
      }),
    ];
    return {
      comparisons,
      latency: [{ label: `batch of ${P.batchSize}`, who: 'rill', p50: r.latencyMs.p50, p99: r.latencyMs.p99, p999: r.latencyMs.p999 }],
      tables: [
        xaddTable,
        {
          title: 'Rill batch ingest',
          columns: [
            'events/request',
            'in flight',
            'requests/s',
            'events/s',
            'p50 ms',
            'p99 ms',
            'answers',
            'ingest CPU',
            'ingest CPU µs/event',
            'Redis CPU',
            'Redis µs/event',
            'other (cores)',
          ],
          rows: [
            [
              P.batchSize,
              P.concurrency,
              Math.round(r.rps * 10) / 10,
              int(r.eventsPerSec),
              ms(r.latencyMs.p50),
              ms(r.latencyMs.p99),
              statusText(r),
              cores.cores.ingest ?? null,
              usPer(cores.cores.ingest, r.eventsPerSec),
              cores.cores.redis ?? null,
              usPer(cores.cores.redis, r.eventsPerSec),
              cores.cores.other ?? null,
            ],
          ],
        },
        {
          title: 'Redis command time during the batch run',
          columns: ['command', 'calls', 'ms', 'µs/call', 'share'],
          rows: commands.map((c) => [c.command, int(c.calls), int(c.ms), c.usPerCall, `${Math.round(c.share * 100)} %`]),
        },
      ],
      data: { xadd, batch: r, cpu: cores, redisCommands: commands },
      problems,
    };
  },
};
