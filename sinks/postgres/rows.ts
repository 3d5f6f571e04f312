// Maps a transaction event to the `transactions` row and its ledger lines to `ledger_entries` rows,
// in the column order COPY writes.
import type { LedgerLine, TransactionEvent } from '../../core/event.ts';
import type { CopyValue } from './copy-text.ts';

export const TRANSACTION_COLUMNS = [
  'id',
  'merchant_id',
  'type',
  'amount',
  'currency',
  'status',
  'reference',
  'risk_score',
  'metadata',
  'occurred_at',
  'ingested_at',
  'processed_at',
  'stream_id',
  'attempts',
  'failure_reason',
  'failure_code',
  'risk_reasons',
  'risk_rules_version',
] as const;

/** The staged ledger columns; created_at is the batch's processed_at, set by the merge. */
export const LEDGER_COLUMNS = ['tx_id', 'account', 'merchant_id', 'currency', 'amount'] as const;

export const LEDGER_ACCOUNTS: readonly LedgerLine['account'][] = ['wallet', 'external'];

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
    finalStatus(e) === 'failed' ? (e.failure_code ?? null) : null,
    e.risk_reasons ? JSON.stringify(e.risk_reasons) : null,
    e.risk_rules_version ?? null,
  ];
}

/**
 * The ledger rows of one event. A failed transaction moves no money: its lines (there should be
 * none) are not posted.
 */
export function toLedgerCopyRows({ event: e }: SinkRow): CopyValue[][] {
  if (!e.ledger?.length || finalStatus(e) !== 'succeeded') return [];
  return e.ledger.map((l) => [e.id, l.account, e.merchant_id, e.currency, l.amount]);
}

/**
 * Why an event's ledger lines cannot be posted, or undefined when they can (or there are none):
 * known accounts, each at most once (the key is (tx_id, account)), whole minor units, summing to
 * zero. The sink dead-letters such an event instead of retrying a batch that can never commit.
 */
export function ledgerProblem(e: TransactionEvent): string | undefined {
  const lines: unknown = e.ledger;
  if (lines === undefined || lines === null) return undefined;
  if (!Array.isArray(lines)) return 'ledger is not a list of lines';
  const seen = new Set<string>();
  let sum = 0n;
  for (const [i, line] of lines.entries()) {
    const l = line as Partial<LedgerLine> | null;
    if (!l || typeof l !== 'object') return `ledger[${i}] is not a line`;
    if (!LEDGER_ACCOUNTS.includes(l.account as LedgerLine['account'])) return `ledger[${i}].account must be wallet or external`;
    if (seen.has(l.account!)) return `ledger[${i}]: a second ${l.account} line`;
    seen.add(l.account!);
    if (!Number.isSafeInteger(l.amount)) return `ledger[${i}].amount must be whole minor units`;
    sum += BigInt(l.amount!);
  }
  if (sum !== 0n) return `ledger lines sum to ${sum}, not 0`;
  return undefined;
}

/** The UTC day (YYYY-MM-DD) of an ingest time: the daily partition the row belongs to. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
