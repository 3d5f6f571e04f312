// f. Priority under flood: the critical lane's end-to-end latency while the low lane is flooded.
// The topology is the default one with `payin` moved to the lowest lane (no transaction type maps
// to `low` in the shipped file). Refunds (critical lane) of 1 minor unit against seeded payins
// run at a steady rate, first alone (quiet), then beside a flood of payins well above what the
// pipeline can drain. Latency per row from Postgres: ingest → the sink batch that wrote it.
import { int, ms, singlePayload, summarizeUs, waitFor } from './common.ts';
import { merchantInstance } from './fixtures.ts';
import type { LatencySummary } from '../load/protocol.ts';
import { rowCount, rowLatenciesUs } from '../lib/pg-stats.ts';
import { outstanding } from '../lib/redis-stats.ts';
import type { LatencyFigure, Scenario, ScenarioOutput } from './types.ts';

export const priority: Scenario = {
  id: 'priority',
  title: 'f. Priority under flood (critical lane while the low lane is flooded)',
  async run(ctx): Promise<ScenarioOutput> {
    const F = ctx.profile.priority;
    const problems: string[] = [];
    const { inst, merchants } = await merchantInstance(ctx, 'flood', 'flood');
    const t = inst.topology.summary;
    const [ingest] = await Promise.all([inst.startIngest(), inst.startWorker()]);

    // payins the refunds can draw on (50,000,000 minor units each)
    ctx.progress.update(0.05, 'seeding payins');
    const refs: Record<string, string[]> = {};
    for (const m of merchants) {
      refs[m.id] = [];
      for (let k = 0; k < F.seedsPerMerchant; k++) {
        const res = await fetch(`${ingest.url}/v1/transactions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${m.key}`, 'content-type': 'application/json', 'idempotency-key': `${ctx.runId}-seed-${m.id}-${k}` },
          body: JSON.stringify({ type: 'payin', merchant_id: m.id, amount: 50_000_000, currency: 'USD', reference: `seed-${k}` }),
        });
        const body = (await res.json()) as { id?: string };
        if (res.status !== 202 || !body.id) throw new Error(`seeding a payin: HTTP ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
        refs[m.id]!.push(body.id);
      }
    }
    const seeds = merchants.length * F.seedsPerMerchant;
    await waitFor('the seeded payins in Postgres', async () => (await rowCount(ctx.pg, inst.schema, `type = 'payin'`)) >= seeds, 60_000, 100);

    const critical = (seed: string, durationMs: number) =>
      ctx.loadgen.run({
        origin: ingest.url,
        path: '/v1/transactions',
        mode: 'open',
        rate: F.criticalRate,
        concurrency: 32,
        durationMs,
        warmupMs: 0,
        payload: singlePayload(merchants, seed, 'refund', refs),
      });
    const committedRefunds = async (sinceIso: string, n: number) => {
      await waitFor(
        'the refunds in Postgres',
        async () => (await rowCount(ctx.pg, inst.schema, `type = 'refund' AND ingested_at >= '${sinceIso}'`)) >= n,
        120_000,
        100,
      );
    };

    // quiet: refunds alone
    ctx.progress.update(0.15, `refunds alone at ${F.criticalRate}/s`);
    const q0 = new Date().toISOString();
    const quiet = await critical(`${ctx.runId}-quiet`, F.quietMs);
    await committedRefunds(q0, quiet.ok);
    const quietLat = summarizeUs(await rowLatenciesUs(ctx.pg, inst.schema, `type = 'refund' AND ingested_at >= '${q0}'`)).summary;

    // flood: payins into the low lane well above the sustainable rate, refunds beside them
    const sustained = ctx.shared.get('e2e-sustained') as number | undefined;
    const floodRate = sustained ? Math.round((sustained * 1.5) / 100) * 100 : F.defaultFloodRate;
    ctx.progress.update(0.35, `flood of ${int(floodRate)} payins/s, refunds at ${F.criticalRate}/s`);
    const f0 = new Date().toISOString();
    const [flood, crit] = await Promise.all([
      ctx.loadgen.run({
        origin: ingest.url,
        path: '/v1/transactions',
        mode: 'open',
        rate: floodRate,
        concurrency: 256,
        durationMs: F.floodMs,
        warmupMs: 0,
        payload: singlePayload(merchants, `${ctx.runId}-flood`, 'payin'),
      }),
      critical(`${ctx.runId}-crit`, F.floodMs),
    ]);
    const backlog = await outstanding(ctx.redis, inst.prefix, t);
    ctx.progress.update(0.8, `waiting for the refunds (backlog ${int(backlog)})`);
    await committedRefunds(f0, crit.ok);
    const floodLat = summarizeUs(await rowLatenciesUs(ctx.pg, inst.schema, `type = 'refund' AND ingested_at >= '${f0}'`)).summary;
    const payinUs = await rowLatenciesUs(ctx.pg, inst.schema, `type = 'payin' AND ingested_at >= '${f0}'`);
    const lowLat: LatencySummary | null = payinUs.length ? summarizeUs(payinUs).summary : null;

    for (const [label, r] of [
      ['quiet refunds', quiet],
      ['flood refunds', crit],
    ] as const) {
      if (r.requests - r.ok) problems.push(`${label}: ${r.requests - r.ok} of ${r.requests} not accepted`);
    }
    const latency: LatencyFigure[] = [
      { label: 'critical, quiet', who: 'rill', p50: quietLat.p50, p99: quietLat.p99, p999: quietLat.p999 },
      { label: 'critical, low lane flooded', who: 'rill', p50: floodLat.p50, p99: floodLat.p99, p999: floodLat.p999 },
    ];
    if (lowLat) latency.push({ label: 'low lane (committed so far)', who: 'rill', p50: lowLat.p50, p99: lowLat.p99, p999: lowLat.p999 });
    return {
      comparisons: [],
      latency,
      tables: [
        {
          title: 'End-to-end latency to Postgres (ingest → sink batch), ms',
          columns: ['events', 'lane', 'rate/s', 'rows', 'p50', 'p99', 'p99.9', 'max'],
          rows: [
            [
              'refunds, quiet',
              t.laneOf.refund ?? '',
              F.criticalRate,
              int(quietLat.count),
              ms(quietLat.p50),
              ms(quietLat.p99),
              ms(quietLat.p999),
              ms(quietLat.max),
            ],
            [
              'refunds, during the flood',
              t.laneOf.refund ?? '',
              F.criticalRate,
              int(floodLat.count),
              ms(floodLat.p50),
              ms(floodLat.p99),
              ms(floodLat.p999),
              ms(floodLat.max),
            ],
            [
              'payins (the flood), committed so far',
              t.laneOf.payin ?? '',
              int(flood.rps),
              int(lowLat?.count ?? 0),
              ms(lowLat?.p50),
              ms(lowLat?.p99),
              ms(lowLat?.p999),
              ms(lowLat?.max),
            ],
          ],
          note: `Flood: ${int(flood.ok)} payins accepted at ${int(flood.rps)}/s (offered ${int(floodRate)}/s, ingest p99 ${ms(flood.latencyMs.p99)} ms); backlog when it stopped: ${int(backlog)} entries.`,
        },
      ],
      data: {
        floodRate,
        quiet: { load: quiet, e2e: quietLat },
        flood: { load: flood, backlogAtEnd: backlog, payinE2e: lowLat },
        critical: { load: crit, e2e: floodLat },
      },
      problems,
    };
  },
};
