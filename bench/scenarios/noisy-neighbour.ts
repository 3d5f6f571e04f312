// g. Noisy neighbour: a good merchant's refunds beside a merchant whose refunds wait for payins that
// never settle, in the same partition. The topology is the `noisy` variant: a `hold` stage keeps
// the stuck merchant's payins from settling (they end dead-lettered), and its refunds of them wait
// in the ledger (parked) for await_payin, then fail payin_not_settled. The good merchant refunds
// its own settled payins at a steady rate, first alone (quiet), then beside the stuck merchant.
// Per-merchant ordering parks only the stuck merchant's events, so the good merchant's refund
// latency should not move: target p99 beside / p99 alone ≤ 1.5.
import { partitionOf } from '../../core/index.ts';
import { int, ms, summarizeUs, waitFor } from './common.ts';
import { rowCount, rowLatenciesUs } from '../lib/pg-stats.ts';
import { NOISY_AWAIT_PAYIN } from '../lib/topology.ts';
import type { Merchant } from '../lib/payload.ts';
import type { Comparison, Scenario, ScenarioOutput } from './types.ts';

/** Post one transaction; its id (throws unless 202). */
async function post(url: string, m: Merchant, body: Record<string, unknown>, key: string): Promise<string> {
  const res = await fetch(`${url}/v1/transactions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${m.key}`, 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify({ merchant_id: m.id, currency: 'USD', ...body }),
  });
  const json = (await res.json()) as { id?: string };
  if (res.status !== 202 || !json.id) throw new Error(`noisy-neighbour: HTTP ${res.status} ${JSON.stringify(json).slice(0, 200)}`);
  return json.id;
}

/** Run `each(i)` at `rate` per second for `durationMs` (open loop); resolves with every result. */
async function paced<T>(rate: number, durationMs: number, each: (i: number) => Promise<T>): Promise<T[]> {
  const n = Math.max(1, Math.round((rate * durationMs) / 1000));
  const t0 = performance.now();
  const all: Promise<T>[] = [];
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    all.push(each(i));
  }
  return Promise.all(all);
}

export const noisyNeighbour: Scenario = {
  id: 'noisy-neighbour',
  title: 'g. Noisy neighbour (a good merchant beside one whose refunds wait for payins that never settle)',
  async run(ctx): Promise<ScenarioOutput> {
    const F = ctx.profile.noisy;
    const inst = ctx.instance('noisy', 'noisy');
    // more merchants than partitions: two of them share one
    const merchants = await inst.createMerchants(Math.max(ctx.profile.merchants, inst.topology.summary.topics.transactions!.partitions + 1));
    const parts = inst.topology.summary.topics.transactions!.partitions;
    const byPartition = new Map<number, Merchant[]>();
    for (const m of merchants) byPartition.get(partitionOf(m.id, parts))?.push(m) ?? byPartition.set(partitionOf(m.id, parts), [m]);
    const [good, stuck] = [...byPartition.values()].find((ms) => ms.length >= 2)!;
    const [ingest] = await Promise.all([inst.startIngest(), inst.startWorker()]);

    ctx.progress.update(0.05, 'seeding payins');
    const seeds: string[] = [];
    for (let k = 0; k < F.seeds; k++)
      seeds.push(await post(ingest.url, good!, { type: 'payin', amount: 50_000_000, reference: `seed-${k}` }, `${ctx.runId}-seed-${k}`));
    await waitFor('the seeded payins in Postgres', async () => (await rowCount(ctx.pg, inst.schema, `type = 'payin'`)) >= seeds.length, 60_000, 100);

    const goodRefunds = (phase: string) =>
      paced(F.goodRate, F.phaseMs, (i) =>
        post(ingest.url, good!, { type: 'refund', amount: 1, reference: seeds[i % seeds.length], metadata: { phase } }, `${ctx.runId}-${phase}-${i}`),
      );
    const latencyOf = async (ids: string[]) => {
      await waitFor(
        `${ids.length} refunds in Postgres`,
        async () => (await rowCount(ctx.pg, inst.schema, `id = ANY(ARRAY['${ids.join("','")}'])`)) >= ids.length,
        120_000,
        100,
      );
      return summarizeUs(await rowLatenciesUs(ctx.pg, inst.schema, `id = ANY(ARRAY['${ids.join("','")}'])`)).summary;
    };

    ctx.progress.update(0.2, `good refunds alone at ${F.goodRate}/s`);
    const quietIds = await goodRefunds('quiet');
    const quiet = await latencyOf(quietIds);

    // beside it: the stuck merchant's held payins, each with refunds of it posted right after
    ctx.progress.update(0.45, `beside a stuck merchant (${F.stuckRate} refunds/s of payins that never settle)`);
    const stuckIds: string[] = [];
    const [noisyIds] = await Promise.all([
      goodRefunds('noisy'),
      paced(F.stuckRate / 4, F.phaseMs, async (i) => {
        const payin = await post(ingest.url, stuck!, { type: 'payin', amount: 10_000, metadata: { hold: 'yes' } }, `${ctx.runId}-held-${i}`);
        for (let r = 0; r < 4; r++)
          stuckIds.push(await post(ingest.url, stuck!, { type: 'refund', amount: 10, reference: payin }, `${ctx.runId}-held-${i}-${r}`));
      }),
    ]);
    const noisy = await latencyOf(noisyIds);
    ctx.progress.update(0.8, `waiting for the stuck refunds to fail after await_payin (${NOISY_AWAIT_PAYIN})`);
    await waitFor(
      'the stuck refunds to end',
      async () => (await rowCount(ctx.pg, inst.schema, `id = ANY(ARRAY['${stuckIds.join("','")}'])`)) >= stuckIds.length,
      120_000,
      200,
    );
    const stuckFailed = await rowCount(ctx.pg, inst.schema, `id = ANY(ARRAY['${stuckIds.join("','")}']) AND failure_code = 'payin_not_settled'`);

    const problems: string[] = [];
    if (stuckFailed !== stuckIds.length)
      problems.push(`${stuckIds.length - stuckFailed} of ${stuckIds.length} stuck refunds did not end failed payin_not_settled`);
    const ratio = quiet.p99 > 0 ? noisy.p99 / quiet.p99 : null;
    const comparisons: Comparison[] = [
      {
        id: 'noisy-neighbour-p99',
        title: "Noisy neighbour: a good merchant's refund p99 beside a stuck merchant ÷ alone",
        scenario: 'noisy-neighbour',
        rill: { label: 'p99 beside ÷ p99 alone', value: ratio, unit: '×' },
        target: { kind: 'max', value: 1.5, text: '≤ 1.5×' },
        met: ratio === null ? null : ratio <= 1.5,
        note: `good refunds p99 ${ms(quiet.p99)} ms alone, ${ms(noisy.p99)} ms beside; the stuck merchant's ${int(stuckIds.length)} refunds all parked, then failed payin_not_settled: ${int(stuckFailed)}`,
      },
    ];
    return {
      comparisons,
      latency: [
        { label: 'good merchant refunds, alone', who: 'rill', p50: quiet.p50, p99: quiet.p99, p999: quiet.p999 },
        { label: 'good merchant refunds, beside a stuck merchant', who: 'rill', p50: noisy.p50, p99: noisy.p99, p999: noisy.p999 },
      ],
      tables: [
        {
          title: "Noisy neighbour: end-to-end latency of the good merchant's refunds (ingest → Postgres), ms",
          columns: ['phase', 'rate/s', 'rows', 'p50', 'p99', 'p99.9', 'max'],
          rows: [
            ['alone', F.goodRate, int(quiet.count), ms(quiet.p50), ms(quiet.p99), ms(quiet.p999), ms(quiet.max)],
            [
              `beside a stuck merchant (${F.stuckRate} refunds/s waiting)`,
              F.goodRate,
              int(noisy.count),
              ms(noisy.p50),
              ms(noisy.p99),
              ms(noisy.p999),
              ms(noisy.max),
            ],
          ],
          note: `Same partition (${partitionOf(good!.id, parts)}). The stuck merchant's payins never settle (a hold stage), so its ${int(stuckIds.length)} refunds wait parked in the ledger for await_payin ${NOISY_AWAIT_PAYIN}, then end failed payin_not_settled (${int(stuckFailed)}); none is dead-lettered.`,
        },
      ],
      data: { quiet, noisy, ratio, stuck: { refunds: stuckIds.length, failedNotSettled: stuckFailed } },
      problems,
    };
  },
};
