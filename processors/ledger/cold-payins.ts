// Payins past the Redis hot window (refunds.hot): what the ledger needs from Postgres to settle a
// refund or chargeback of one, loaded for a whole batch in ONE query. Per payin: its row (a payin
// of that merchant, settled or failed) and what has been refunded of it (payin_refunds, written by
// the sink in the transaction of the refunds' rows), plus how many of the merchant's refunds the
// sink has written (merchant_refunds). The ledger counts the refunds it lets through; it trusts the
// refunded sum only once the sink's count has caught up with its own, so no refund still on its way
// to Postgres is missed (scripts/ledger-apply-var.lua). The per-merchant lease makes the ledger the only writer.
import { createPool, txIdTime } from '../../core/processor-kit.ts';
import type { PgPool, RillEnv } from '../../core/processor-kit.ts';

// $1 payin ids, $2 their merchants, $3 their ids' times: the row's ingested_at (ingest makes both
// from one clock reading), which prunes `transactions` to one day and hash partition.
const LOAD = `SELECT q.payin_id, q.merchant_id, t.amount::text AS amount, t.currency, t.status,
    coalesce(r.refunded, 0)::text AS refunded, coalesce(m.written, 0)::text AS written
  FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS q(payin_id, merchant_id, at)
  LEFT JOIN LATERAL (
    SELECT amount, currency, status FROM transactions t
    WHERE t.id = q.payin_id AND t.merchant_id = q.merchant_id AND t.type = 'payin'
      AND t.ingested_at BETWEEN q.at - interval '1 minute' AND q.at + interval '1 minute'
    LIMIT 1
  ) t ON true
  LEFT JOIN payin_refunds r ON r.payin_id = q.payin_id AND r.merchant_id = q.merchant_id
  LEFT JOIN merchant_refunds m ON m.merchant_id = q.merchant_id`;

interface Row {
  payin_id: string;
  merchant_id: string;
  amount: string | null;
  currency: string | null;
  status: string | null;
  refunded: string;
  written: string;
}

export interface ColdAsk {
  payinId: string;
  merchantId: string;
}

export class ColdPayins {
  private pool: PgPool | undefined;

  constructor(private readonly env: Pick<RillEnv, 'databaseUrl' | 'pgSchema'>) {}

  /**
   * The ledger-apply argument of each asked payin (by `key(payinId, merchantId)`):
   * "<refunds written>|<state>", state as in the refundable-payins hash (core/payins.ts):
   * "<still refundable>:<CUR>" settled, "f" failed, "" no such payin of that merchant.
   */
  async load(asks: readonly ColdAsk[]): Promise<Map<string, string>> {
    const unique = new Map<string, ColdAsk>();
    for (const a of asks) unique.set(coldKey(a.payinId, a.merchantId), a);
    const list = [...unique.values()];
    this.pool ??= createPool(this.env, { max: 2, name: 'rill-ledger' });
    const res = await this.pool.query<Row>(LOAD, [
      list.map((a) => a.payinId),
      list.map((a) => a.merchantId),
      list.map((a) => new Date(txIdTime(a.payinId) ?? 0).toISOString()),
    ]);
    const out = new Map<string, string>();
    for (const r of res.rows) out.set(coldKey(r.payin_id, r.merchant_id), `${r.written}|${stateOf(r)}`);
    return out;
  }

  async close(): Promise<void> {
    const p = this.pool;
    this.pool = undefined;
    await p?.end();
  }
}

export function coldKey(payinId: string, merchantId: string): string {
  return `${merchantId}\u0000${payinId}`;
}

function stateOf(r: Row): string {
  if (r.amount === null || r.currency === null) return '';
  if (r.status !== 'succeeded') return 'f';
  return `${BigInt(r.amount) - BigInt(r.refunded)}:${r.currency.trim()}`;
}
