// The stable, machine-readable reasons a transaction ends `failed` (design §2: merchant mistakes
// and business declines are outcomes, not dead letters). One list, documented in the README;
// `failure_reason` carries the human sentence beside the code.
export const FAILURE_CODES = {
  invalid_transaction: 'the event breaks a basic rule (type, amount, merchant)',
  amount_too_large: 'the amount is over the maximum for its type',
  currency_not_allowed: 'the currency is not one this deployment settles',
  reference_missing: 'a refund or chargeback names no payin',
  risk_declined: 'the risk stage declined it: velocity score above its threshold (velocity rules alone), or an operator declined it in review',
  risk_blocked: 'the risk score (velocity and streaming features) reached the block threshold',
  insufficient_funds: 'a payout would overdraw the wallet',
  currency_mismatch: 'a refund or chargeback is in another currency than its payin',
  refund_exceeds_payin: 'a refund or chargeback is larger than what is left of its payin',
  payin_not_found: 'the referenced payin is unknown to this merchant (or past the refund window)',
  payin_failed: 'the referenced payin failed, so there is nothing to refund',
  payin_not_settled: 'the referenced payin did not settle within the await_payin window',
} as const;

export type FailureCode = keyof typeof FAILURE_CODES;

export function isFailureCode(s: unknown): s is FailureCode {
  return typeof s === 'string' && Object.hasOwn(FAILURE_CODES, s);
}

/** The event as a business failure: status `failed` with its code and reason. */
export function failedEvent<E extends { status?: string }>(
  event: E,
  code: FailureCode,
  reason: string,
): E & { status: 'failed'; failure_code: FailureCode; failure_reason: string } {
  return { ...event, status: 'failed', failure_code: code, failure_reason: reason };
}
