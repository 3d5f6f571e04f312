// The refundable-payins record, shared by ingest (which registers every accepted payin and refuses
// a refund or chargeback naming none) and the ledger (which settles payins and refunds against it).
// A merchant's payins are grouped by their id's time into buckets of a 30th of the refund window
// (at least a minute), each bucket a hash that expires once its last payin is past the window.
// Field: payin id. Value: the payin's state.
//   "a"                 accepted by ingest, not settled yet (a refund naming it waits, see await_payin)
//   "<remaining>:<CUR>" settled: what is still refundable of it, and its currency
//   "f"                 failed: nothing to refund
import { txIdTime } from './tx-id.ts';

export const PAYIN_ACCEPTED = 'a';
export const PAYIN_FAILED = 'f';

/**
 * The bucket of a payin id. Ids not made by ingest (no time in them: tests, imports) share the
 * bucket "none", which does not expire (expiresAt 0).
 */
export function payinBucket(payinId: string, windowMs: number): { name: string; expiresAt: number } {
  const at = txIdTime(payinId);
  if (at === undefined) return { name: 'none', expiresAt: 0 };
  const size = Math.max(60_000, Math.floor(windowMs / 30));
  const n = Math.floor(at / size);
  return { name: String(n), expiresAt: (n + 1) * size + windowMs };
}

/** The wake-up token a refund waiting for payin `payinId` parks under (see the ledger). */
export function payinToken(payinId: string): string {
  return `payin:${payinId}`;
}
