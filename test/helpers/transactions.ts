// Sample transactions for tests: valid for the shipped topology's validate stage.
import type { TransactionBody } from '../../ingest/validation.ts';

const TYPES = ['payin', 'payout', 'refund', 'chargeback'] as const;
const CURRENCIES = ['USD', 'EUR', 'GBP'] as const;

export function merchantIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `m_${String(i).padStart(3, '0')}`);
}

/** The i-th of a deterministic mix: all four types, spread over the merchants. */
export function sampleBody(i: number, merchants: readonly string[]): TransactionBody {
  const type = TYPES[i % TYPES.length]!;
  return {
    type,
    merchant_id: merchants[i % merchants.length]!,
    amount: 100 + ((i * 7919) % 100_000),
    currency: CURRENCIES[i % CURRENCIES.length]!,
    reference: `ref-${i}`,
  };
}
