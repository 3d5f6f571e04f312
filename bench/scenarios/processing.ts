// c. Processing: events/s through the default topology's stages, each stage alone (a backlog of
// the profile's size, one `rill worker --stages <stage>` draining it), then the three together in
// one `rill worker --stages validate,risk,ledger` on a second backlog. Timed by the output
// streams' entry ids (Redis's clock at each XADD), so process start-up is not counted.
// Baselines: a BullMQ chain of three queues, concurrency 100, no-op work, the same events; and the
// peer a user would pick instead, the same chain on NATS JetStream (bench/baselines/nats-chain.ts,
// durable pull consumers, explicit acks), when a NATS server answers (NATS_URL, default
// 127.0.0.1:4222). Chained vs unchained: the chain run again on an instance whose topology says
// `chaining: false`, CPU per event and Redis calls per event side by side.
// Leaves both backlogs in the `settled` topic for the sink scenario.
import { connect as tcpConnect } from 'node:net';
import type { Redis } from 'ioredis';
import type { BenchInstance } from '../lib/instance.ts';
import { lastJsonLine, runToEnd, spawnScript } from '../lib/procs.ts';
import { CpuWindow } from '../lib/proc-stats.ts';
import { byLabel, scrape, sum } from '../lib/prom.ts';
import type { Sample } from '../lib/prom.ts';
import { commandDelta, commandStats, deadLetters, entryTimeRange, laneKeys, totalLength } from '../lib/redis-stats.ts';
import type { CommandDelta, CommandStat } from '../lib/redis-stats.ts';
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
  /** The baseline process's own CPU (user + system) over the chain's run, µs. */
  cpuUs: number;
  /** Its server's (Redis) over the same time, µs (null: not on this machine). */
  serverCpuUs: number | null;
}

function batches(samples: readonly Sample[], stage: string): number {
  return sum(samples, 'rill_stage_batch_duration_seconds_count', { stage });
}

function meanBatchMs(samples: readonly Sample[], stage: string): number {
  const count = sum(samples, 'rill_stage_batch_duration_seconds_count', { stage });
  return count ? (sum(samples, 'rill_stage_batch_duration_seconds_sum', { stage }) / count) * 1000 : 0;
}

interface NatsResult {
  eventsPerSec: number;
  events: number;
  completed: number;
  ms: number;
  server: string;
  storage: string;
  batch: number;
  publishPerSec: number;
  cpuUs: number;
  /** nats-server's CPU over the chain's run, µs (null: not on this machine). */
  serverCpuUs: number | null;
}

/** One run of the stages in one worker process on a backlog already in the first topic. */
interface ChainRun {
  events: number;
  /** Timed from the first topic's first entry when it is written, else from the last topic's. */
  eventsPerSec: number;
  spanMs: number;
  /** Timed by the last topic alone (first to last entry + one batch): the same measure chained or not. */
  settledPerSec: number;
  wallMs: number;
  cpu: { cores: Record<string, number>; machineBusy: number };
  redisCalls: number;
  redisCommands: CommandDelta[];
  stages: { stage: string; events: number; batches: number; eventsPerBatch: number; meanBatchMs: number }[];
}

function totalCalls(before: Map<string, CommandStat>, after: Map<string, CommandStat>): number {
  let n = 0;
  for (const [cmd, a] of after) n += a.calls - (before.get(cmd)?.calls ?? 0);
  return n;
}

async function chainRun(
  ctx: RunContext,
  inst: BenchInstance,
  order: string[],
  expect: number,
  problems: string[],
  label: string,
  at: number,
): Promise<ChainRun> {
  const t = inst.topology.summary;
  const redisPids = ctx.redisPid ? [ctx.redisPid] : [];
  const N = ctx.profile.processing.events;
  const firstTopic = t.stages[order[0]!]!.output!;
  const lastStage = order[order.length - 1]!;
  const lastTopic = t.stages[lastStage]!.output!;
  const lastBefore = await outputCount(ctx.redis, inst, lastTopic);
  const mark = Date.now();
  const w = await inst.startWorker({ stages: order });
  const cpu = new CpuWindow({ worker: [w.child.pid], redis: redisPids });
  const cs0 = await commandStats(ctx.redis);
  const wallMs = await drain(ctx, inst, Math.max(60_000, N * 2), order, (left) => ctx.progress.update(at, `${label}: ${int(left)} left`));
  const cores = cpu.end();
  const cs1 = await commandStats(ctx.redis);
  const metrics = await scrape(w.metricsUrl);
  await w.child.stop();
  const startRange = await entryTimeRange(ctx.redis, laneKeys(inst.prefix, t, firstTopic), mark);
  const endRange = await entryTimeRange(ctx.redis, laneKeys(inst.prefix, t, lastTopic), mark);
  const events = (await outputCount(ctx.redis, inst, lastTopic)) - lastBefore;
  if (events !== expect) problems.push(`${label}: ${events} of ${expect} events reached ${lastTopic}`);
  const settledSpan = endRange ? endRange.last - endRange.first + meanBatchMs(metrics, lastStage) : wallMs;
  const spanMs = startRange && endRange ? endRange.last - startRange.first + meanBatchMs(metrics, order[0]!) : settledSpan;
  const outcomes = byLabel(metrics, 'rill_stage_events_total', 'stage');
  return {
    events,
    eventsPerSec: (events / Math.max(1, spanMs)) * 1000,
    spanMs,
    settledPerSec: (events / Math.max(1, settledSpan)) * 1000,
    wallMs,
    cpu: cores,
    redisCalls: totalCalls(cs0, cs1),
    redisCommands: commandDelta(cs0, cs1),
    stages: order.map((st) => {
      const n = batches(metrics, st);
      return { stage: st, events: outcomes[st] ?? 0, batches: n, eventsPerBatch: n ? (outcomes[st] ?? 0) / n : 0, meanBatchMs: meanBatchMs(metrics, st) };
    }),
  };
}

/** Does a TCP connection to the NATS server open within a second? */
function natsReachable(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const sock = tcpConnect({ host: u.hostname || '127.0.0.1', port: Number(u.port || 4222), timeout: 1_000 });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('timeout', () => done(false));
    sock.once('error', () => done(false));
  });
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
    ctx.progress.update(0.7, `${order.join(' → ')} in one worker`);
    const chain = await chainRun(ctx, inst, order, N, problems, 'chain', 0.72);
    const { events: chainEvents, eventsPerSec: chainRate, spanMs: chainSpan, wallMs, cpu: chainCpu, redisCommands: chainCommands, stages: chainStages } = chain;
    ctx.shared.set('settled-backlog', { inst, rows: 2 * N } satisfies SettledBacklog);

    // 3. the same chain with `chaining: false` (the variant's file is checked against this build's
    // schema when it is written: bench/lib/topology.ts)
    ctx.progress.update(0.76, 'unchained run');
    const u = await merchantInstance(ctx, 'proc-unchained', 'unchained');
    const uIngest = await u.inst.startIngest();
    await preload(ctx, uIngest.url, u.merchants, N, `${ctx.runId}-p3`, 'unchained backlog');
    await uIngest.child.stop();
    const unchained = await chainRun(ctx, u.inst, stageOrder(u.inst.topology.summary), N, problems, 'unchained chain', 0.8);

    // 4. baselines: BullMQ, three queues; NATS JetStream, three streams
    ctx.progress.update(0.84, 'BullMQ chain of 3 queues');
    const B = ctx.profile.bullmq;
    const bullChild = spawnScript(
      'bullmq-chain',
      'baselines/bullmq-chain',
      ['--prefix', `rillbench:${ctx.runId}:bull`, '--events', String(B.events), '--concurrency', String(B.concurrency)],
      { env: { REDIS_URL: ctx.redisUrl } },
    );
    const bullCpu = new CpuWindow({ redis: redisPids });
    const bullT0 = performance.now();
    const bull = lastJsonLine<BullResult>(await runToEnd(bullChild, 600_000));
    const bullCores = bullCpu.end();
    const bullWallMs = performance.now() - bullT0;
    if (bull.completed !== bull.events) problems.push(`BullMQ chain: ${bull.completed} of ${bull.events} jobs completed`);

    ctx.progress.update(0.92, 'NATS JetStream chain of 3 streams');
    const natsUrl = process.env.NATS_URL || 'nats://127.0.0.1:4222';
    const NB = ctx.profile.nats;
    let nats: NatsResult | { error: string };
    if (!(await natsReachable(natsUrl))) nats = { error: `no NATS server answers at ${natsUrl}` };
    else {
      const natsChild = spawnScript(
        'nats-chain',
        'baselines/nats-chain',
        ['--prefix', `rb_${ctx.runId}`, '--events', String(NB.events), '--batch', String(NB.batch)],
        { env: { NATS_URL: natsUrl } },
      );
      try {
        const r = lastJsonLine<NatsResult>(await runToEnd(natsChild, 600_000));
        nats = r;
        if (r.completed !== r.events) nats = { error: `${r.completed} of ${r.events} events settled` };
      } catch (err) {
        nats = { error: (err as Error).message.split('\n')[0]!.slice(0, 300) };
      }
    }
    const natsOk = 'eventsPerSec' in nats ? nats : undefined;

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
      compare({
        id: 'processing-vs-nats',
        title: 'The same 3-stage chain on NATS JetStream (durable pull consumers, explicit acks)',
        scenario: 'processing',
        rill: { label: `Rill ${order.join('→')}`, value: chainRate, unit: 'events/s' },
        baseline: {
          label: natsOk ? `NATS JetStream ${natsOk.server}, ${natsOk.storage} storage` : 'NATS JetStream',
          value: natsOk?.eventsPerSec ?? null,
          unit: 'events/s',
        },
        note: natsOk
          ? 'NATS stages keep their state (velocity, balances, decisions) in process memory; Rill keeps it in Redis, atomically'
          : `not run: ${'error' in nats ? nats.error : '?'}`,
      }),
      compare({
        id: 'processing-chained-vs-unchained',
        title: 'Chained vs unchained (top-level chaining: false), the same chain and backlog',
        scenario: 'processing',
        rill: { label: 'default topology', value: chain.settledPerSec, unit: 'events/s' },
        baseline: { label: 'chaining: false', value: unchained.settledPerSec, unit: 'events/s' },
        note: 'timed by the last topic alone (first to last entry + one batch) in both runs',
      }),
    ];
    const cpuUs = (r: ChainRun, who: string) => usPer(r.cpu.cores[who], r.events / (r.wallMs / 1000));
    const chainRow = (label: string, r: ChainRun): Table['rows'][number] => [
      label,
      int(r.events),
      int(r.settledPerSec),
      cpuUs(r, 'worker'),
      cpuUs(r, 'redis'),
      (r.redisCalls / Math.max(1, r.events)).toFixed(2),
      r.cpu.cores.other ?? null,
    ];
    const chainRows: Table['rows'] = [chainRow('default topology', chain), chainRow('chaining: false', unchained)];
    const peerRows: Table['rows'] = [
      [
        `Rill ${order.join(' → ')}`,
        int(chainEvents),
        int(chainRate),
        cpuUs(chain, 'worker'),
        `${cpuUs(chain, 'redis')} (Redis)`,
        '1.00×',
        'real processors, state in Redis (Lua)',
      ],
      [
        `BullMQ, 3 queues, concurrency ${B.concurrency}`,
        int(bull.completed),
        int(bull.eventsPerSec),
        String(Math.round(bull.cpuUs / bull.events)),
        `${bull.serverCpuUs === null ? '–' : Math.round(bull.serverCpuUs / bull.events)} (Redis)`,
        ratio(chainRate / bull.eventsPerSec),
        'pass-through jobs',
      ],
      natsOk
        ? [
            `NATS JetStream ${natsOk.server} (${natsOk.storage}), 3 streams, pull batch ${natsOk.batch}`,
            int(natsOk.completed),
            int(natsOk.eventsPerSec),
            String(Math.round(natsOk.cpuUs / natsOk.events)),
            `${natsOk.serverCpuUs === null ? '–' : Math.round(natsOk.serverCpuUs / natsOk.events)} (nats-server)`,
            ratio(chainRate / natsOk.eventsPerSec),
            `same work, state in process memory; backlog published at ${int(natsOk.publishPerSec)}/s beforehand`,
          ]
        : ['NATS JetStream', '–', '–', '–', '–', '–', `not run: ${'error' in nats ? nats.error : '?'}`],
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
          title: 'The same 3-stage chain: Rill and the peers a user would pick instead',
          columns: ['system', 'events', 'events/s', 'worker/client CPU µs/event', 'server CPU µs/event', 'Rill ÷ it', 'notes'],
          rows: peerRows,
          note: 'CPU per event over the whole run (Rill: cores busy over the drain ÷ events; a baseline: its process and its server over the chain run alone, without setting up the backlog): robust to a busy machine where events/s is not.',
        },
        {
          title: `Chained vs unchained: ${order.join(' → ')} in one worker, backlog of ${int(N)} each`,
          columns: ['topology', 'events', 'events/s (last topic)', 'worker µs/event', 'Redis µs/event', 'Redis calls/event', 'other (cores)'],
          rows: chainRows,
          note: 'Each run on its own instance and backlog.',
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
        chain,
        bullmq: { ...bull, cpu: bullCores },
        nats,
        unchained,
      },
      problems,
    };
  },
};
