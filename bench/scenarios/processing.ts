// c. Processing: events/s through the default topology's stages, each stage alone (a backlog of
// the profile's size, one `rill worker --stages <stage>` draining it), then the three together in
// one `rill worker --stages validate,risk,ledger` on a second backlog. Timed by the output
// streams' entry ids (Redis's clock at each XADD), so process start-up is not counted.
// Baseline: a BullMQ chain of three queues, concurrency 100, no-op work, the same events.
// Leaves both backlogs in the `settled` topic for the sink scenario.
import type { Redis } from 'ioredis';
import type { BenchInstance } from '../lib/instance.ts';
import { lastJsonLine, runToEnd, spawnScript } from '../lib/procs.ts';
import { CpuWindow } from '../lib/proc-stats.ts';
import { byLabel, scrape, sum } from '../lib/prom.ts';
import type { Sample } from '../lib/prom.ts';
import { commandDelta, commandStats, deadLetters, entryTimeRange, laneKeys, totalLength } from '../lib/redis-stats.ts';
import { stageOrder } from '../lib/topology.ts';
import { drain, int, ms, preload, ratio, usPer } from './common.ts';
import { merchantInstance } from './fixtures.ts';
import type { Comparison, RunContext, Scenario, ScenarioOutput, Table } from './types.ts';
import { compare, ratioTarget } from './types.ts';

export interface SettledBacklog {
  inst: BenchInstance;
  rows: number;
}

interface BullResult {
  eventsPerSec: number;
  events: number;
  completed: number;
  ms: number;
  concurrency: number;
  addBulkPerSec: number;
}

function batches(samples: readonly Sample[], stage: string): number {
  return sum(samples, 'rill_stage_batch_duration_seconds_count', { stage });
}

function meanBatchMs(samples: readonly Sample[], stage: string): number {
  const count = sum(samples, 'rill_stage_batch_duration_seconds_count', { stage });
  return count ? (sum(samples, 'rill_stage_batch_duration_seconds_sum', { stage }) / count) * 1000 : 0;
}

async function outputCount(redis: Redis, inst: BenchInstance, topic: string): Promise<number> {
  return totalLength(redis, laneKeys(inst.prefix, inst.topology.summary, topic));
}

export const processing: Scenario = {
  id: 'processing',
  title: 'c. Processing (validate → risk → ledger)',
  async run(ctx: RunContext): Promise<ScenarioOutput> {
    const N = ctx.profile.processing.events;
    const timeout = Math.max(60_000, N * 2);
    const problems: string[] = [];
    const { inst, merchants } = await merchantInstance(ctx, 'proc');
    const t = inst.topology.summary;
    const order = stageOrder(t);
    const redisPids = ctx.redisPid ? [ctx.redisPid] : [];
    const ingest = await inst.startIngest();

    // 1. each stage alone on a backlog of N
    ctx.progress.update(0.02, 'backlog');
    await preload(ctx, ingest.url, merchants, N, `${ctx.runId}-p1`, 'backlog');
    const isolated: Record<string, unknown>[] = [];
    const rows: Table['rows'] = [];
    const stageRates: Record<string, number> = {};
    let i = 0;
    for (const stage of order) {
      const out = t.stages[stage]!.output!;
      const outKeys = laneKeys(inst.prefix, t, out);
      const before = await totalLength(ctx.redis, outKeys);
      const dl0 = await deadLetters(ctx.redis, inst.prefix, t);
      const since = Date.now();
      ctx.progress.update(0.1 + (0.5 * i++) / order.length, `${stage} alone`);
      const w = await inst.startWorker({ stages: [stage] });
      const cpu = new CpuWindow({ worker: [w.child.pid], redis: redisPids });
      const cs0 = await commandStats(ctx.redis);
      const wallMs = await drain(ctx, inst, timeout, [stage], (left) =>
        ctx.progress.update(0.1 + (0.5 * (i - 1 + (N - Math.min(N, left)) / N)) / order.length, `${stage} alone: ${int(left)} left`),
      );
      const cores = cpu.end();
      const commands = commandDelta(cs0, await commandStats(ctx.redis), 8);
      const metrics = await scrape(w.metricsUrl);
      await w.child.stop();
      const appended = (await totalLength(ctx.redis, outKeys)) - before;
      const dead = (await deadLetters(ctx.redis, inst.prefix, t)) - dl0;
      if (dead) problems.push(`${stage}: ${dead} events dead-lettered`);
      const range = await entryTimeRange(ctx.redis, outKeys, since);
      const batchMs = meanBatchMs(metrics, stage);
      const spanMs = range ? range.last - range.first + batchMs : wallMs;
      const rate = ((appended + dead) / Math.max(1, spanMs)) * 1000;
      stageRates[stage] = rate;
      const outcomes = byLabel(metrics, 'rill_stage_events_total', 'outcome', { stage });
      rows.push([
        stage,
        int(appended + dead),
        int(rate),
        int((appended + dead) / Math.max(1, batches(metrics, stage))),
        ms(batchMs),
        int(spanMs),
        cores.cores.worker ?? null,
        usPer(cores.cores.worker, (appended + dead) / (wallMs / 1000)),
        usPer(cores.cores.redis, (appended + dead) / (wallMs / 1000)),
        cores.cores.other ?? null,
        Object.entries(outcomes)
          .map(([k, v]) => `${k}: ${int(v)}`)
          .join(', '),
      ]);
      isolated.push({
        stage,
        events: appended + dead,
        eventsPerSec: rate,
        spanMs,
        wallMs,
        meanBatchMs: batchMs,
        cpu: cores,
        outcomes,
        redisCommands: commands,
      });
    }

    // 2. the three stages together, one worker process, on a second backlog of N
    ctx.progress.update(0.62, 'second backlog');
    await preload(ctx, ingest.url, merchants, N, `${ctx.runId}-p2`, 'second backlog');
    await ingest.child.stop();
    const firstTopic = t.stages[order[0]!]!.output!;
    const lastTopic = t.stages[order[order.length - 1]!]!.output!;
    const lastBefore = await outputCount(ctx.redis, inst, lastTopic);
    const mark = Date.now();
    ctx.progress.update(0.7, `${order.join(' → ')} in one worker`);
    const w = await inst.startWorker({ stages: order });
    const cpu = new CpuWindow({ worker: [w.child.pid], redis: redisPids });
    const cs0 = await commandStats(ctx.redis);
    const wallMs = await drain(ctx, inst, timeout, order, (left) =>
      ctx.progress.update(0.7 + 0.15 * (1 - Math.min(1, left / (N * order.length))), `chain: ${int(left)} left`),
    );
    const chainCpu = cpu.end();
    const chainCommands = commandDelta(cs0, await commandStats(ctx.redis));
    const chainMetrics = await scrape(w.metricsUrl);
    await w.child.stop();
    const startRange = await entryTimeRange(ctx.redis, laneKeys(inst.prefix, t, firstTopic), mark);
    const endRange = await entryTimeRange(ctx.redis, laneKeys(inst.prefix, t, lastTopic), mark);
    const chainEvents = (await outputCount(ctx.redis, inst, lastTopic)) - lastBefore;
    if (chainEvents !== N) problems.push(`chain: ${chainEvents} of ${N} events reached ${lastTopic}`);
    const chainSpan = startRange && endRange ? endRange.last - startRange.first + meanBatchMs(chainMetrics, order[0]!) : wallMs;
    const chainRate = (chainEvents / Math.max(1, chainSpan)) * 1000;
    const chainOutcomes = byLabel(chainMetrics, 'rill_stage_events_total', 'stage');
    const chainStages = order.map((st) => {
      const n = batches(chainMetrics, st);
      return {
        stage: st,
        events: chainOutcomes[st] ?? 0,
        batches: n,
        eventsPerBatch: n ? (chainOutcomes[st] ?? 0) / n : 0,
        meanBatchMs: meanBatchMs(chainMetrics, st),
      };
    });
    ctx.shared.set('settled-backlog', { inst, rows: 2 * N } satisfies SettledBacklog);

    // 3. baseline: BullMQ, three queues
    ctx.progress.update(0.87, 'BullMQ chain of 3 queues');
    const B = ctx.profile.bullmq;
    const bullCpu = new CpuWindow({ redis: redisPids });
    const bullT0 = performance.now();
    const bull = lastJsonLine<BullResult>(
      await runToEnd(
        spawnScript(
          'bullmq-chain',
          'baselines/bullmq-chain',
          ['--prefix', `rillbench:${ctx.runId}:bull`, '--events', String(B.events), '--concurrency', String(B.concurrency)],
          { env: { REDIS_URL: ctx.redisUrl } },
        ),
        600_000,
      ),
    );
    const bullCores = bullCpu.end();
    const bullWallMs = performance.now() - bullT0;
    if (bull.completed !== bull.events) problems.push(`BullMQ chain: ${bull.completed} of ${bull.events} jobs completed`);

    const comparisons: Comparison[] = [
      compare({
        id: 'processing-vs-bullmq',
        title: `3 stages in one worker vs a BullMQ chain of 3 queues (concurrency ${B.concurrency})`,
        scenario: 'processing',
        rill: { label: `Rill ${order.join('→')}`, value: chainRate, unit: 'events/s' },
        baseline: { label: 'BullMQ 3-queue chain', value: bull.eventsPerSec, unit: 'events/s' },
        target: ratioTarget(10),
        note: 'Rill runs the real processors (validation rules, risk velocity script, ledger script); BullMQ passes each job on.',
      }),
    ];
    return {
      comparisons,
      latency: [],
      tables: [
        {
          title: `Each stage alone (backlog of ${int(N)})`,
          columns: [
            'stage',
            'events',
            'events/s',
            'events/batch',
            'mean batch ms',
            'span ms',
            'worker CPU (cores)',
            'worker µs/event',
            'Redis µs/event',
            'other (cores)',
            'outcomes',
          ],
          rows,
          note: 'CPU per event over the whole drain (start-up included): cores busy × drain time ÷ events.',
        },
        {
          title: `${order.join(' → ')} in one worker process (backlog of ${int(N)})`,
          columns: [
            'events',
            'events/s',
            'span ms',
            'worker CPU',
            'worker µs/event',
            'Redis µs/event',
            'other (cores)',
            'BullMQ events/s',
            'BullMQ Redis µs/event (adding the jobs included)',
            'Rill ÷ BullMQ',
          ],
          rows: [
            [
              int(chainEvents),
              int(chainRate),
              int(chainSpan),
              chainCpu.cores.worker ?? null,
              usPer(chainCpu.cores.worker, chainEvents / (wallMs / 1000)),
              usPer(chainCpu.cores.redis, chainEvents / (wallMs / 1000)),
              chainCpu.cores.other ?? null,
              int(bull.eventsPerSec),
              usPer(bullCores.cores.redis, bull.events / (bullWallMs / 1000)),
              ratio(chainRate / bull.eventsPerSec),
            ],
          ],
          note: `BullMQ: ${int(bull.completed)} jobs through 3 queues in ${int(bull.ms)} ms (Redis CPU ${bullCores.cores.redis ?? '–'} cores, addBulk ${int(bull.addBulkPerSec)}/s beforehand).`,
        },
        {
          title: 'Batches in the chain run (each stage reads what the one before it has just written)',
          columns: ['stage', 'events', 'batches', 'events/batch', 'mean batch ms'],
          rows: chainStages.map((c) => [c.stage, int(c.events), int(c.batches), int(c.eventsPerBatch), ms(c.meanBatchMs)]),
        },
        {
          title: 'Redis command time during the chain run',
          columns: ['command', 'calls', 'ms', 'µs/call', 'share'],
          rows: chainCommands.map((c) => [c.command, int(c.calls), int(c.ms), c.usPerCall, `${Math.round(c.share * 100)} %`]),
        },
      ],
      data: {
        events: N,
        isolated,
        stageRates,
        chain: {
          events: chainEvents,
          eventsPerSec: chainRate,
          spanMs: chainSpan,
          wallMs,
          cpu: chainCpu,
          outcomes: chainOutcomes,
          stages: chainStages,
          redisCommands: chainCommands,
        },
        bullmq: { ...bull, cpu: bullCores },
      },
      problems,
    };
  },
};
