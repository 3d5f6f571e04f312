// h. Scaling out and in over a backlog: one worker drains a backlog (with payins still arriving at
// a low rate, so there is work whatever the machine's speed), a second one joins, then the first
// one is stopped (SIGTERM, a planned scale-in). From outside: the lease keys of every
// ordered stage (bench/lib/lease-watch.ts, polled every 10 ms), the joining worker's own
// rill_stage_events_total, and committed rows per second in Postgres.
//  - join: ms from the new worker's "worker started" until it holds its share of every ordered
//    stage, until it has settled its first event, and until throughput rises;
//  - handovers: the longest a partition went without an owner during the join and the scale-in.
import { LeaseWatch } from '../lib/lease-watch.ts';
import { scrape, sum } from '../lib/prom.ts';
import { rowCount } from '../lib/pg-stats.ts';
import { drain, int, loadDuring, preload, waitFor } from './common.ts';
import type { LoadResult } from '../load/protocol.ts';
import { merchantIds } from '../lib/payload.ts';
import { partitionOf } from '../../core/index.ts';
import type { Comparison, Scenario, ScenarioOutput } from './types.ts';
import { compare } from './types.ts';

const SAMPLE_MS = 250;

export const scale: Scenario = {
  id: 'scale',
  title: 'i. Scaling workers out and in over a backlog',
  async run(ctx): Promise<ScenarioOutput> {
    const S = ctx.profile.scale;
    const problems: string[] = [];
    const inst = ctx.instance('scale', 'default');
    const t = inst.topology.summary;
    // enough merchants that every partition has some: the joining worker's share has work
    const partitions = t.topics[t.ingestTopic]!.partitions;
    let n = ctx.profile.merchants;
    while (new Set(merchantIds(n).map((m) => partitionOf(m, partitions))).size < partitions) n++;
    const merchants = await inst.createMerchants(n);
    const ordered = t.leaseHolders;
    const ingest = await inst.startIngest();
    ctx.progress.update(0.05, `backlog of ${int(S.backlog)} events`);
    await preload(ctx, ingest.url, merchants, S.backlog, `${ctx.runId}-scale`, 'backlog');
    await ctx.redis.ping();

    const watch = new LeaseWatch(ctx.redis, inst.prefix, t, ordered);
    watch.start();
    // committed rows, sampled: rate over the last second at any moment
    const samples: { at: number; rows: number }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push({ at: Date.now(), rows: await rowCount(ctx.pg, inst.schema) });
        await new Promise((r) => setTimeout(r, SAMPLE_MS));
      }
    })();
    const rateAround = (from: number, to: number) => {
      const a = samples.filter((s) => s.at >= from && s.at <= to);
      if (a.length < 2) return null;
      return ((a.at(-1)!.rows - a[0]!.rows) * 1000) / (a.at(-1)!.at - a[0]!.at);
    };

    const trickle: LoadResult[] = [];
    let stopTrickle = () => {};
    const trickling = loadDuring(ctx, ingest.url, merchants, S.trickleRate, `${ctx.runId}-scale-trickle`, new Promise<void>((r) => (stopTrickle = r)), trickle);
    try {
      ctx.progress.update(0.2, 'one worker');
      const a = await inst.startWorker({ name: 'scale-a' });
      await waitFor(
        'scale-a to hold every partition',
        async () => {
          await watch.nextPoll();
          return ordered.every((s) => watch.heldBy(s, 'bench-scale-a') === t.topics[t.stages[s]!.input]!.partitions);
        },
        30_000,
        0,
      );
      await waitFor('rows committed', async () => (samples.at(-1)?.rows ?? 0) > 0, 60_000, 50);
      const oneFrom = Date.now();
      await new Promise((r) => setTimeout(r, S.baselineMs));
      const oneRate = rateAround(oneFrom, Date.now());

      ctx.progress.update(0.45, 'a second worker joins');
      const joinFrom = Date.now();
      const b = await inst.startWorker({ name: 'scale-b' });
      const ready = Date.now();
      const share = (s: string) => Math.floor(t.topics[t.stages[s]!.input]!.partitions / 2);
      await waitFor(
        'scale-b holds its share',
        async () => {
          await watch.nextPoll();
          return ordered.every((s) => watch.heldBy(s, 'bench-scale-b') >= share(s));
        },
        30_000,
        0,
      );
      const ownMs = Date.now() - ready;
      let last = '';
      await waitFor(
        'scale-b settled an event',
        async () => {
          const samples = await scrape(b.metricsUrl);
          last = JSON.stringify(samples.filter((x) => x.name.startsWith('rill_stage_events')));
          return sum(samples, 'rill_stage_events_total', { outcome: 'ok' }) > 0;
        },
        30_000,
        10,
      ).catch((err: Error) => {
        throw new Error(
          `${err.message}; its rill_stage_events_total: ${last.slice(0, 300)}; leases: ${JSON.stringify([...watch.holders].map(([k, v]) => [k, [...v]]))}`,
        );
      });
      const processingMs = Date.now() - ready;
      // throughput: the first second-long window after the join whose rate beats one worker's by 20 %
      let riseMs: number | null = null;
      const observeUntil = ready + S.observeMs;
      while (Date.now() < observeUntil && riseMs === null) {
        await new Promise((r) => setTimeout(r, SAMPLE_MS));
        const now = Date.now();
        const r = rateAround(now - 1_000, now);
        if (oneRate && r !== null && r > oneRate * 1.2) riseMs = now - ready;
      }
      const twoRate = rateAround(Date.now() - 1_000, Date.now());
      const joinTo = Date.now();

      ctx.progress.update(0.7, 'the first worker stops (scale-in)');
      const leaveFrom = Date.now();
      const code = await a.child.stop();
      if (code !== 0) problems.push(`scale-a exited ${code} on SIGTERM`);
      const stoppedAt = Date.now();
      await waitFor(
        'scale-b holds every partition',
        async () => {
          await watch.nextPoll();
          return ordered.every((s) => watch.heldBy(s, 'bench-scale-b') === t.topics[t.stages[s]!.input]!.partitions);
        },
        30_000,
        0,
      );
      const takeoverMs = Date.now() - stoppedAt;
      const leaveTo = Date.now();
      const joinIdle = watch.maxIdleMs(joinFrom, joinTo);
      const leaveIdle = watch.maxIdleMs(leaveFrom, leaveTo);

      stopTrickle();
      await trickling;
      ctx.progress.update(0.85, 'draining');
      await drain(ctx, inst, 180_000);
      const rows = await rowCount(ctx.pg, inst.schema);
      const posted = S.backlog + trickle.reduce((n, r) => n + r.ok, 0);
      if (rows !== posted) problems.push(`${posted} events accepted, ${rows} rows in Postgres`);

      const comparisons: Comparison[] = [
        compare({
          id: 'scale-join',
          title: 'Scale-out: a joining worker settles its first event (from its start)',
          scenario: 'scale',
          rill: { label: 'join → processing', value: processingMs, unit: 'ms' },
          target: { kind: 'max', value: 1_000, text: '≤ 1 s' },
        }),
        compare({
          id: 'scale-idle',
          title: 'Planned handover: longest a partition had no owner (join and scale-in)',
          scenario: 'scale',
          rill: { label: 'max idle', value: Math.max(joinIdle.ms, leaveIdle.ms), unit: 'ms' },
          target: { kind: 'max', value: 1_000, text: '≤ 1 s' },
        }),
      ];
      return {
        comparisons,
        latency: [],
        tables: [
          {
            title: `Scaling over a backlog of ${int(S.backlog)} events (ordered stages: ${ordered.join(', ')})`,
            columns: ['step', 'ms', 'note'],
            rows: [
              ['scale-b started → holds its share of every stage', ownMs, ''],
              ['scale-b started → first event settled', processingMs, ''],
              [
                'scale-b started → throughput up 20 %',
                riseMs,
                `rows/s: one worker ${int(oneRate)}, two ${int(twoRate)}${riseMs === null ? ` (no rise within ${S.observeMs / 1000} s: the machine's cores, not workers, are the limit)` : ''}`,
              ],
              ['join: longest partition without an owner', joinIdle.ms, joinIdle.slot ?? ''],
              ['scale-a SIGTERM exit → scale-b holds every partition', takeoverMs, `exit code ${code}`],
              ['scale-in: longest partition without an owner', leaveIdle.ms, leaveIdle.slot ?? ''],
            ],
            note: `Lease keys polled every 10 ms: shorter gaps are not seen. ${int(rows)} of ${int(posted)} events (backlog and ${S.trickleRate}/s arriving) in Postgres at the end.`,
          },
        ],
        data: { backlog: S.backlog, oneRate, twoRate, ownMs, processingMs, riseMs, takeoverMs, joinIdle, leaveIdle, rows },
        problems,
      };
    } finally {
      stopTrickle();
      await trickling.catch(() => undefined);
      sampling = false;
      await sampler;
      watch.stop();
    }
  },
};
