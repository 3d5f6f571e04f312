// A transaction as the API shows it: GET /v1/transactions/:id answers with it, and a merchant
// webhook's event carries it as its `data` (README: "the transaction as GET shows it"). The status
// route builds it from the Postgres row or from an event in flight; webhook events from the event
// as the pipeline finished it. Both use this one shape and this one mapping of an event.
import type { TransactionEvent, TransactionStatus } from './event.ts';

/** The transaction as its merchant sees it. Times are RFC 3339 (UTC); absent values are null. */
export type TransactionView = {
  id: string;
  merchant_id: string;
  type: string;
  amount: number;
  currency: string;
  reference: string | null;
  metadata: Record<string, string> | null;
  status: TransactionStatus;
  /** Set when status is failed: a stable code from core/failure-codes.ts (see the README). */
  failure_code: string | null;
  failure_reason: string | null;
  risk_score: number | null;
  /** The risk stage's top reasons, in words; null before it scored the transaction. */
  risk_reasons: string[] | null;
  occurred_at: string | null;
  ingested_at: string;
  /** When the pipeline finished with it: the sink's commit, or the moment it was dead-lettered. */
  processed_at: string | null;
};

/**
 * The view of `ev` with `status`. In flight (no `finishedAt`): no failure and no processed_at, since
 * a stage's verdict is not final until the sink commits it. Finished at `finishedAt` (ms): the
 * event's own failure fields, and that moment as processed_at.
 */
export function transactionView(ev: TransactionEvent, status: TransactionStatus, finishedAt?: number): TransactionView {
  const finished = finishedAt !== undefined;
  return {
    id: ev.id,
    merchant_id: ev.merchant_id,
    type: ev.type,
    amount: ev.amount,
    currency: ev.currency,
    reference: ev.reference ?? null,
    metadata: ev.metadata ?? null,
    status,
    failure_code: finished && status === 'failed' ? (ev.failure_code ?? null) : null,
    failure_reason: finished ? (ev.failure_reason ?? null) : null,
    risk_score: typeof ev.risk_score === 'number' ? ev.risk_score : null,
    risk_reasons: Array.isArray(ev.risk_reasons) ? ev.risk_reasons : null,
    occurred_at: ev.occurred_at ? utcOrNull(ev.occurred_at) : null,
    ingested_at: new Date(ev.ingested_at).toISOString(),
    processed_at: finished ? new Date(finishedAt).toISOString() : null,
  };
}

/** RFC 3339 with any offset → UTC, as Postgres gives it back once the row is written. */
function utcOrNull(s: string): string | null {
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}
