// `rill dev --demo N`: posts N sample transactions of a few merchants to the running ingest (a
// realistic mix: payins, payouts, refunds and chargebacks of real payins, and a few deliberate
// mistakes that end `failed`), shows progress until every accepted one is final in Postgres, then
// prints what happened: count by type × status, the failure codes, end-to-end latency.
import { randomInt } from 'node:crypto';
import type { PgPool } from '../core/postgres.ts';
import { Progress } from './progress.ts';
import { table } from './io.ts';

export interface DemoMerchant {
  id: string;
  key: string;
}

interface Planned {
  merchant: DemoMerchant;
  body: Record<string, unknown>;
}

export interface DemoResult {
  accepted: number;
  /** Refused at the edge by design (the orphan refunds), by status. */
  refused: Map<number, number>;
  ms: number;
  /** Accepted but not final in Postgres when the demo gave up waiting (0 when all landed). */
  missing: number;
  report: string;
}

/** The i-th transaction of the demo: payins first, then a mix that spends and refunds them. */
function plan(i: number, n: number, m: DemoMerchant, payins: readonly { id: string; amount: number; currency: string }[]): Record<string, unknown> {
  const base = { merchant_id: m.id, metadata: { source: 'rill-dev-demo' } };
  const roll = randomInt(100);
  const early = i < Math.max(5, n * 0.3); // first build balances
  const p = payins.length ? payins[randomInt(payins.length)]! : undefined;
  if (!early && p) {
    if (roll < 15) return { ...base, type: 'refund', amount: roll < 2 ? p.amount + 1 : randomInt(1, p.amount + 1), currency: p.currency, reference: p.id };
    if (roll < 19) return { ...base, type: 'chargeback', amount: p.amount, currency: p.currency, reference: p.id };
    if (roll < 33) return { ...base, type: 'payout', amount: roll < 22 ? 500_000_00 : randomInt(100, 20_000), currency: p.currency, reference: `po-${i}` };
  }
  // deliberate mistakes: over the payin limit, a currency this deployment does not settle
  if (roll === 97) return { ...base, type: 'payin', amount: 200_000_000, currency: 'USD', reference: `order-${i}` };
  if (roll === 98) return { ...base, type: 'payin', amount: 1_000, currency: 'ZAR', reference: `order-${i}` };
  return { ...base, type: 'payin', amount: randomInt(1_000, 100_000), currency: ['USD', 'EUR', 'GBP'][i % 3], reference: `order-${i}` };
}

export async function runDemo(o: { url: string; merchants: readonly DemoMerchant[]; count: number; pool: PgPool; concurrency?: number }): Promise<DemoResult> {
  const started = Date.now();
  const ids: string[] = [];
  const payins: { id: string; amount: number; currency: string }[][] = o.merchants.map(() => []);
  const refused = new Map<number, number>();
  const posting = new Progress('posting    ', o.count);
  let next = 0;
  let done = 0;
  const post = async (p: Planned): Promise<void> => {
    const res = await fetch(`${o.url}/v1/transactions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${p.merchant.key}`, 'content-type': 'application/json', 'idempotency-key': `demo-${started}-${done}-${next}` },
      body: JSON.stringify(p.body),
    });
    const body = (await res.json()) as { id?: string; detail?: string };
    if (res.status === 202 && body.id) {
      ids.push(body.id);
      if (p.body.type === 'payin')
        payins[o.merchants.indexOf(p.merchant)]!.push({ id: body.id, amount: Number(p.body.amount), currency: String(p.body.currency) });
    } else if (res.status === 422) {
      refused.set(422, (refused.get(422) ?? 0) + 1);
    } else {
      throw new Error(`demo post answered ${res.status}: ${body.detail ?? ''}`);
    }
  };
  const worker = async () => {
    while (next < o.count) {
      const i = next++;
      const k = i % o.merchants.length;
      const merchant = o.merchants[k]!;
      // now and then a refund naming no payin of this merchant: ingest refuses it (422)
      const body =
        i > 10 && i % 97 === 0
          ? { type: 'refund', merchant_id: merchant.id, amount: 100, currency: 'USD', reference: `order-${i}` }
          : plan(i, o.count, merchant, payins[k]!);
      await post({ merchant, body });
      posting.update(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 16, o.count) }, worker));

  // every accepted transaction ends final in Postgres (succeeded or failed); give up only when
  // nothing has landed for a minute (then the closing note says where to look)
  const landing = new Progress('in Postgres', ids.length);
  let landed = 0;
  let lastMove = Date.now();
  while (landed < ids.length && Date.now() - lastMove < 60_000) {
    const { rows } = await o.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions WHERE id = ANY($1)', [ids]);
    const n = Number(rows[0]!.n);
    if (n > landed) lastMove = Date.now();
    landed = n;
    landing.update(n, `${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (n < ids.length) await new Promise((r) => setTimeout(r, 200));
  }
  return { accepted: ids.length, refused, ms: Date.now() - started, missing: ids.length - landed, report: await report(o.pool, ids, refused) };
}

/** The closing tables: type × status, failure codes, end-to-end latency. */
async function report(pool: PgPool, ids: readonly string[], refused: ReadonlyMap<number, number>): Promise<string> {
  const { rows } = await pool.query<{ type: string; status: string; n: string }>(
    'SELECT type, status, count(*) AS n FROM transactions WHERE id = ANY($1) GROUP BY 1, 2',
    [ids],
  );
  const types = ['payin', 'payout', 'refund', 'chargeback'];
  const statuses = ['succeeded', 'failed'];
  const count = (t: string, s: string) => Number(rows.find((r) => r.type === t && r.status === s)?.n ?? 0);
  const byType = table(
    ['type', ...statuses, 'total'],
    [
      ...types.map((t) => [t, ...statuses.map((s) => String(count(t, s))), String(statuses.reduce((a, s) => a + count(t, s), 0))]),
      ['all', ...statuses.map((s) => String(types.reduce((a, t) => a + count(t, s), 0))), String(rows.reduce((a, r) => a + Number(r.n), 0))],
    ],
  );
  const codes = await pool.query<{ failure_code: string | null; n: string }>(
    "SELECT failure_code, count(*) AS n FROM transactions WHERE id = ANY($1) AND status = 'failed' GROUP BY 1 ORDER BY 2 DESC",
    [ids],
  );
  const byCode = codes.rows.length
    ? table(
        ['failure_code', 'count'],
        codes.rows.map((r) => [r.failure_code ?? '(none)', r.n]),
      )
    : '(no failures)';
  const lat = await pool.query<{ p50: number | null; p99: number | null }>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
       FROM (SELECT extract(epoch FROM processed_at - ingested_at) * 1000 AS ms FROM transactions WHERE id = ANY($1)) t`,
    [ids],
  );
  const { p50, p99 } = lat.rows[0] ?? { p50: null, p99: null };
  const orphans = refused.get(422) ?? 0;
  return [
    byType,
    '',
    byCode,
    '',
    `end to end (ingest → Postgres): p50 ${p50 === null ? '–' : Math.round(p50)} ms, p99 ${p99 === null ? '–' : Math.round(p99)} ms`,
    `refused at the edge: ${orphans} refunds naming no payin of their merchant (422, nothing appended)`,
  ].join('\n');
}
