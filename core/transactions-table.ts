// The Postgres `transactions` table (sinks/postgres/migrations/): one row per transaction, written
// by the postgres sink, read back by the tap's history, the status route, the CLI's CSV and the
// console. Its shape lives here, in core, so that the sink that writes it and the readers share
// one definition (core imports no sink).

/** A row as node-postgres reads it: bigint as text, timestamptz as a Date, jsonb parsed. */
export interface TransactionRow {
  id: string;
  merchant_id: string;
  type: string;
  /** Minor units (bigint: text, as node-postgres gives it). */
  amount: string;
  currency: string;
  /** The sink's verdict: succeeded or failed. */
  status: string;
  reference: string | null;
  risk_score: number | null;
  metadata: Record<string, string> | null;
  occurred_at: Date | null;
  ingested_at: Date;
  /** The sink's commit (the column's default, now()). */
  processed_at: Date;
  /** The id of the stream entry the row was written from. */
  stream_id: string;
  attempts: number;
  failure_reason: string | null;
  /** Set on a failed row: a code of core/failure-codes.ts. */
  failure_code: string | null;
  risk_reasons: string[] | null;
  risk_rules_version: number | null;
}

export type TransactionColumn = keyof TransactionRow;

/** Every column, in the table's order. */
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
] as const satisfies readonly TransactionColumn[];

/** The row of a query that selects `columns` (see selectList). */
export type TransactionRowOf<C extends readonly TransactionColumn[]> = Pick<TransactionRow, C[number]>;

/** The columns, qualified by `alias` when given, as a SELECT list. */
export function selectList(columns: readonly TransactionColumn[], alias?: string): string {
  return columns.map((c) => (alias ? `${alias}.${c}` : c)).join(', ');
}

/** The columns but these, in the table's order. */
export function columnsExcept<X extends TransactionColumn>(...left: X[]): Exclude<TransactionColumn, X>[] {
  return TRANSACTION_COLUMNS.filter((c): c is Exclude<TransactionColumn, X> => !(left as TransactionColumn[]).includes(c));
}
