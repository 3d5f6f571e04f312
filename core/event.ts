// The transaction event as it travels through the streams. Ingest creates it; stages enrich it;
// the sink writes it. Amounts are integer minor units.
import type { FailureCode } from './failure-codes.ts';
export const TRANSACTION_TYPES = ['payin', 'payout', 'refund', 'chargeback'] as const;
export type TransactionType = (typeof TRANSACTION_TYPES)[number];

/** Merchant ids: no ':' or braces, so they cannot forge Redis key segments or hash tags. */
export const MERCHANT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export type TransactionStatus = 'accepted' | 'processing' | 'in_review' | 'succeeded' | 'failed' | 'dead_lettered';

/**
 * One side of a double-entry posting in the transaction's merchant and currency. Every
 * transaction's entries sum to zero; the merchant's wallet balance is the sum of its `wallet` side.
 */
export interface LedgerLine {
  account: 'wallet' | 'external';
  /** Signed minor units: + credits the account, − debits it. */
  amount: number;
}

export interface TransactionEvent {
  id: string;
  merchant_id: string;
  type: TransactionType;
  amount: number;
  currency: string;
  reference?: string;
  occurred_at?: string;
  metadata?: Record<string, string>;
  /** Unix ms when ingest accepted it. */
  ingested_at: number;
  status?: TransactionStatus;
  risk_score?: number;
  /** The risk stage's top contributing features, in words (`code: text`). */
  risk_reasons?: string[];
  /** The version of the risk rules the risk decision was made under (0: topology.yaml's). */
  risk_rules_version?: number;
  /** An operator's decision on a transaction the risk stage held for review. */
  review?: { decision: 'approved' | 'declined'; by: string; at: string; note?: string };
  /** Why it failed, from core/failure-codes.ts; set with `status: 'failed'`. */
  failure_code?: FailureCode;
  failure_reason?: string;
  /** Set by the ledger stage for a succeeded transaction; written by the sink with the row. */
  ledger?: LedgerLine[];
}
