// The refundable-payins record, shared by ingest (which registers every accepted payin and refuses
// a refund or chargeback naming none) and the ledger (which settles payins and refunds against it).
// It holds the hot tier only: a merchant's payins are grouped by their id's time into buckets of a
// 30th of `refunds.hot` (at least a minute, or the hot window when shorter), each bucket a hash that expires once its last payin is
// past the hot window. A refund of an older payin (still inside `refunds.window`) passes ingest
// unchecked and is checked by the ledger against Postgres (processors/ledger/cold-payins.ts).
// Field: payin id. Value: the payin's state.
//   "a"                 accepted by ingest, not settled yet (a refund naming it waits, see await_payin)
//   "<remaining>:<CUR>" settled: what is still refundable of it, and its currency
//   "f"                 failed: nothing to refund
import { txIdTime } from './tx-id.ts';

export const PAYIN_ACCEPTED = 'a';
export const PAYIN_FAILED = 'f';

/**
 * The bucket of a payin id, for payins kept in Redis for `hotMs` (refunds.hot). Ids not made by
 * ingest (no time in them: tests, imports) share the bucket "none", which does not expire (expiresAt 0).
 */
export function payinBucket(payinId: string, hotMs: number): { name: string; expiresAt: number } {
  const at = txIdTime(payinId);
  if (at === undefined) return { name: 'none', expiresAt: 0 };
  const size = Math.max(Math.min(60_000, hotMs), Math.floor(hotMs / 30));
  const n = Math.floor(at / size);
  return { name: String(n), expiresAt: (n + 1) * size + hotMs };
}

/**
 * Where a refund finds the payin it names, by the payin id's time: `hot` in Redis (also every id
 * without a time), `cold` past the hot window (Postgres, by the ledger; its Redis bucket may still
 * be there for up to a bucket's length, and is used first while it is), `expired` past the refund
 * window (refused like an unknown payin).
 */
export function payinTier(payinId: string, refunds: { hot: number; window: number }, now: number): 'hot' | 'cold' | 'expired' {
  const at = txIdTime(payinId);
  if (at === undefined) return 'hot';
  if (now - at > refunds.window) return 'expired';
  return now - at <= refunds.hot ? 'hot' : 'cold';
}

/** The wake-up token a refund waiting for payin `payinId` parks under (see the ledger). */
export function payinToken(payinId: string): string {
  return `payin:${payinId}`;
}
