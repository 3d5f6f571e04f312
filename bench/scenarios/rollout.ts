// g. Rolling update under steady load: two `rill ingest` behind a balancer that follows /readyz
// (bench/lib/balancer.ts, as a Service follows endpoints) and two `rill worker`; payins at a fixed
// rate. After a steady phase every process is replaced, `rounds` times, as Kubernetes does it:
//  - ingest (a Deployment, maxSurge 1): start the new one, wait until it is ready, SIGTERM the old
//    one (it fails /readyz, serves RILL_SHUTDOWN_DELAY_MS more, drains, exits 0);
//  - worker (a StatefulSet): SIGTERM it (it hands its partitions over), start it again with the
//    same consumer id (it takes its own partitions back).
// Then the kill variant: a worker SIGKILLed (a lost node) and a new one with another id started.
// End-to-end latency (processed_at − ingested_at, from Postgres) per phase, by ingested_at; the
// events ingested in the `settleMs` after the rollout rounds belong to no phase (still in flight).
import { Balancer } from '../lib/balancer.ts';
import { LeaseWatch } from '../lib/lease-watch.ts';
import type { RunningIngest, RunningWorker } from '../lib/instance.ts';
import { rowCount, rowLatenciesUs } from '../lib/pg-stats.ts';
import type { LoadResult } from '../load/protocol.ts';
import { drain, int, loadDuring, ms, ratio, summarizeUs } from './common.ts';
import { merchantInstance } from './fixtures.ts';
import type { Comparison, LatencyFigure, Scenario, ScenarioOutput } from './types.ts';
import { compare } from './types.ts';

/** Ingest keeps serving this long after SIGTERM (longer than the balancer's poll of /readyz). */
const SHUTDOWN_DELAY_MS = '1000';

export const rollout: Scenario = {
  id: 'rollout',
  title: 'h. Rolling update and a lost worker under steady load',
  async run(ctx): Promise<ScenarioOutput> {
    const R = ctx.profile.rollout;
    const problems: string[] = [];
    const { inst, merchants } = await merchantInstance(ctx, 'rollout');
    const balancer = new Balancer();
    const origin = await balancer.start();
    // partitions without an owner: what a handover costs, apart from the CPU new processes take
    const watch = new LeaseWatch(ctx.redis, inst.prefix, inst.topology.summary, inst.topology.summary.leaseHolders);
    watch.start();
    const ingests = new Map<string, RunningIngest>();
    const workers = new Map<string, RunningWorker>();
    const startIngest = async (name: string) => {
      const i = await inst.startIngest(name, { RILL_SHUTDOWN_DELAY_MS: SHUTDOWN_DELAY_MS });
      balancer.add(i.url);
      await balancer.untilReady(i.url);
      ingests.set(name, i);
    };
    const exitCodes: string[] = [];
    const stopped = async (name: string, child: { stop(): Promise<number | string> }) => {
      const code = await child.stop();
      if (code !== 0) problems.push(`${name} exited ${code} on SIGTERM`);
      exitCodes.push(`${name}: ${code}`);
    };
    try {
      await Promise.all([startIngest('ingest-a'), startIngest('ingest-b')]);
      for (const name of ['worker-a', 'worker-b']) workers.set(name, await inst.startWorker({ name }));

      // load in one-second jobs, back to back, while a phase runs
      const results: LoadResult[] = [];
      let phaseNo = 0;
      const loadWhile = (phase: Promise<void>) => loadDuring(ctx, origin, merchants, R.rate, `${ctx.runId}-rollout-${phaseNo++}`, phase, results);
      const pause = (msTotal: number) => new Promise<void>((r) => setTimeout(r, msTotal));

      ctx.progress.update(0.05, `steady load at ${R.rate}/s`);
      const t0 = new Date();
      await loadWhile(pause(R.steadyMs));
      const t1 = new Date();
      ctx.progress.update(0.3, `replacing every process ×${R.rounds}`);
      await loadWhile(
        (async () => {
          let gen = 0;
          for (let round = 0; round < R.rounds; round++) {
            for (const old of [...ingests.keys()]) {
              const name = `ingest-${++gen}`;
              await startIngest(name);
              const o = ingests.get(old)!;
              ingests.delete(old);
              await stopped(old, o.child);
              balancer.remove(o.url);
            }
            for (const name of [...workers.keys()]) {
              await stopped(name, workers.get(name)!.child);
              workers.set(name, await inst.startWorker({ name }));
            }
            await pause(R.settleMs);
          }
        })(),
      );
      const t2 = new Date();
      ctx.progress.update(0.65, 'SIGKILL of a worker, a new one started');
      let t2k = t2;
      await loadWhile(
        (async () => {
          // events still in flight from the rollout phase are left out of both phases
          await pause(R.settleMs);
          t2k = new Date();
          const victim = workers.get('worker-a')!;
          victim.child.proc.kill('SIGKILL');
          await victim.child.exited;
          workers.delete('worker-a');
          workers.set('worker-c', await inst.startWorker({ name: 'worker-c' }));
          await pause(R.killMs);
        })(),
      );
      const t3 = new Date();

      ctx.progress.update(0.85, 'draining');
      await drain(ctx, inst, 120_000);
      const accepted = results.reduce((n, r) => n + r.ok, 0);
      const sent = results.reduce((n, r) => n + r.requests, 0);
      const rows = await rowCount(ctx.pg, inst.schema);
      if (accepted !== sent) problems.push(`${sent - accepted} of ${sent} payins not accepted during the rollout (${JSON.stringify(mergeStatus(results))})`);
      if (rows !== accepted) problems.push(`${accepted} payins accepted, ${rows} rows in Postgres`);

      const window = async (a: Date, b: Date) =>
        summarizeUs(await rowLatenciesUs(ctx.pg, inst.schema, `ingested_at >= '${a.toISOString()}' AND ingested_at < '${b.toISOString()}'`)).summary;
      // the slowest rows, with what they went through: where a handover or a reclaim cost time
      const slowest = (
        await ctx.pg.query(`SELECT id, merchant_id, ingested_at, processed_at, stream_id, attempts,
        round(extract(epoch FROM (processed_at - ingested_at)) * 1000) AS ms FROM "${inst.schema}".transactions ORDER BY processed_at - ingested_at DESC LIMIT 12`)
      ).rows;
      const idleRollout = watch.maxIdleMs(t1.getTime(), t2.getTime());
      const idleKill = watch.maxIdleMs(t2k.getTime(), t3.getTime());
      const before = await window(t0, t1);
      const during = await window(t1, t2);
      const killed = await window(t2k, t3);
      const comparisons: Comparison[] = [
        compare({
          id: 'rollout-p99',
          title: 'Rolling update: end-to-end p99 during ÷ before (every process replaced)',
          scenario: 'rollout',
          rill: { label: 'during', value: during.p99, unit: 'ms' },
          baseline: { label: 'before', value: before.p99, unit: 'ms' },
          target: { kind: 'ratio-max', value: 1.5, text: '≤ 1.5×' },
          note: `${int(accepted)} accepted, ${int(rows)} in Postgres`,
        }),
      ];
      const latency: LatencyFigure[] = [
        { label: 'steady', who: 'rill', p50: before.p50, p99: before.p99, p999: before.p999 },
        { label: 'rolling update', who: 'rill', p50: during.p50, p99: during.p99, p999: during.p999 },
        { label: 'worker SIGKILLed', who: 'rill', p50: killed.p50, p99: killed.p99, p999: killed.p999 },
      ];
      return {
        comparisons,
        latency,
        tables: [
          {
            title: `End-to-end latency (ingest → Postgres) by phase, ${R.rate} payins/s, ms`,
            columns: ['phase', 'seconds', 'rows', 'p50', 'p99', 'p99.9', 'max', 'p99 ÷ steady'],
            rows: [
              ['steady', (t1.getTime() - t0.getTime()) / 1000, int(before.count), ms(before.p50), ms(before.p99), ms(before.p999), ms(before.max), '1.00×'],
              [
                `every process replaced ×${R.rounds}`,
                (t2.getTime() - t1.getTime()) / 1000,
                int(during.count),
                ms(during.p50),
                ms(during.p99),
                ms(during.p999),
                ms(during.max),
                ratio(during.p99 / before.p99),
              ],
              [
                'a worker SIGKILLed, another started',
                (t3.getTime() - t2k.getTime()) / 1000,
                int(killed.count),
                ms(killed.p50),
                ms(killed.p99),
                ms(killed.p999),
                ms(killed.max),
                ratio(killed.p99 / before.p99),
              ],
            ],
            note: `${int(accepted)} of ${int(sent)} payins accepted, ${int(rows)} rows in Postgres. Exits on SIGTERM: ${exitCodes.join(', ')}. Requests the balancer sent again after a connection error: ${balancer.retried}; answered 503 by the balancer for want of a ready ingest: ${balancer.unrouted}. Longest a partition of an ordered stage had no owner (lease keys polled every 10 ms): ${int(idleRollout.ms)} ms during the rollout (${idleRollout.slot ?? '–'}), ${int(idleKill.ms)} ms after the SIGKILL (${idleKill.slot ?? '–'}).`,
          },
        ],
        data: {
          rate: R.rate,
          rounds: R.rounds,
          accepted,
          sent,
          rows,
          before,
          during,
          killed,
          exitCodes,
          retried: balancer.retried,
          unrouted: balancer.unrouted,
          idleRollout,
          idleKill,
          phases: [t0, t1, t2, t2k, t3].map((d) => d.toISOString()),
          slowest,
        },
        problems,
      };
    } finally {
      watch.stop();
      await balancer.stop();
    }
  },
};

function mergeStatus(results: readonly LoadResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.status)) out[k] = (out[k] ?? 0) + v;
  return out;
}
