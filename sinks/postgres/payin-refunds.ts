// What has been refunded of each payin (migration 007), written by the batch writer inside the
// transaction of the refunds' rows: one call per batch, no query when the batch has no succeeded
// refund or chargeback. Counting goes through payin_refund_lines (one per refund id), so a batch
// written again after a crash (or overlapping a reclaimed one) counts nothing twice. The ledger
// reads it back for refunds of payins past the Redis hot window (processors/ledger/cold-payins.ts).
import type pg from 'pg';
import { byKey, finalStatus } from './rows.ts';
import type { SinkRow } from './rows.ts';

// $1..$4: refund id, payin id, merchant, amount (sorted by refund id: one lock order); $5: processed_at.
// Postgres runs every data-modifying CTE to completion whether or not the SELECT reads it.
const RECORD = `WITH ins AS (
    INSERT INTO payin_refund_lines (refund_id, payin_id, merchant_id, amount)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
    ON CONFLICT DO NOTHING
    RETURNING payin_id, merchant_id, amount
  ), payins AS (
    INSERT INTO payin_refunds AS r (payin_id, merchant_id, refunded, updated_at)
    SELECT payin_id, min(merchant_id), sum(amount)::bigint, $5::timestamptz FROM ins
    GROUP BY payin_id ORDER BY payin_id COLLATE "C"
    ON CONFLICT (payin_id) DO UPDATE SET refunded = r.refunded + EXCLUDED.refunded, updated_at = EXCLUDED.updated_at
  ), merchants AS (
    INSERT INTO merchant_refunds AS m (merchant_id, written)
    SELECT merchant_id, count(*) FROM ins
    GROUP BY merchant_id ORDER BY merchant_id COLLATE "C"
    ON CONFLICT (merchant_id) DO UPDATE SET written = m.written + EXCLUDED.written
  )
  SELECT count(*)::int AS counted FROM ins`;

/** Refunds and chargebacks of the batch that moved money, as the columns of RECORD. */
function payinRefundLines(rows: readonly SinkRow[]): [ids: string[], payins: string[], merchants: string[], amounts: number[]] {
  const lines = rows
    .map((r) => r.event)
    .filter((e) => (e.type === 'refund' || e.type === 'chargeback') && e.reference && finalStatus(e) === 'succeeded')
    .sort((a, b) => byKey(a.id, b.id));
  return [lines.map((e) => e.id), lines.map((e) => e.reference!), lines.map((e) => e.merchant_id), lines.map((e) => e.amount)];
}

/** Adds the batch's new refunds to their payins' sums; call inside the batch's transaction. Returns how many counted. */
export async function recordPayinRefunds(client: pg.ClientBase, rows: readonly SinkRow[], processedAt: string): Promise<number> {
  const [ids, payins, merchants, amounts] = payinRefundLines(rows);
  if (!ids.length) return 0;
  const res = await client.query<{ counted: number }>(RECORD, [ids, payins, merchants, amounts, processedAt]);
  return res.rows[0]!.counted;
}
