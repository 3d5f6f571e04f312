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

/** The names of a SELECT list written out as a string literal ('id, t.type, ...'): split at commas, trimmed, alias dropped. */
type ListedColumns<S extends string> = S extends `${infer Head},${infer Rest}` ? ColumnName<Head> | ListedColumns<Rest> : ColumnName<S>;
type ColumnName<C extends string> = Trim<C> extends `${string}.${infer Name}` ? Name : Trim<C>;
type Trim<S extends string> = S extends ` ${infer R}` | `\n${infer R}` ? Trim<R> : S extends `${infer R} ` | `${infer R}\n` ? Trim<R> : S;

/**
 * The row a query gets for the SELECT list `S`: a string literal naming columns of the table
 * (`typeof LIST` of a constant). The list stays a literal in the SQL (test/security/sql-static:
 * SQL is built from constants only); a name that is not a column turns the row into `never`.
 */
export type TransactionRowOf<S extends string> = [ListedColumns<S>] extends [TransactionColumn] ? Pick<TransactionRow, ListedColumns<S>> : never;
