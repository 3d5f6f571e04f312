// Maps a transaction event to the `transactions` row, in the column order COPY writes.
import type { TransactionEvent } from '../../core/event.ts';
import type { CopyValue } from './copy-text.ts';

export const TRANSACTION_COLUMNS = [
  'id', 'merchant_id', 'type', 'amount', 'currency', 'status', 'reference', 'risk_score', 'metadata',
  'occurred_at', 'ingested_at', 'processed_at', 'stream_id', 'attempts', 'failure_reason',
] as const;

export interface SinkRow {
  event: TransactionEvent;
  streamId: string;
  attempts: number;
}

/** The final status: the pipeline's verdict, or succeeded for an event that made it through. */
export function finalStatus(ev: TransactionEvent): string {
  return ev.status === 'failed' ? 'failed' : 'succeeded';
}

export function toCopyRow({ event: e, streamId, attempts }: SinkRow, processedAt: string): CopyValue[] {
  return [
    e.id,
    e.merchant_id,
    e.type,
    e.amount,
    e.currency,
    finalStatus(e),
    e.reference ?? null,
    e.risk_score ?? null,
    e.metadata ? JSON.stringify(e.metadata) : null,
    e.occurred_at ?? null,
    new Date(e.ingested_at).toISOString(),
    processedAt,
    streamId,
    attempts,
    e.failure_reason ?? null,
  ];
}
