// Reading what the sink committed, as one would with psql: row counts, the sink's batches (each
// batch stamps its rows with one processed_at) and per-row latency (processed_at − ingested_at).
import type pg from 'pg';

const q = (schema: string) => `"${schema.replace(/"/g, '""')}"`;

export async function rowCount(pool: pg.Pool, schema: string, where = 'true'): Promise<number> {
  const r = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${q(schema)}.transactions WHERE ${where}`);
  return Number(r.rows[0]!.n);
}

export interface SinkBatch {
  at: number;
  rows: number;
}

/** The sink's batches in commit order: processed_at (ms) and rows. */
export async function sinkBatches(pool: pg.Pool, schema: string): Promise<SinkBatch[]> {
  const r = await pool.query<{ at: string; rows: string }>(
    `SELECT (extract(epoch FROM processed_at) * 1000)::float8 AS at, count(*) AS rows FROM ${q(schema)}.transactions GROUP BY processed_at ORDER BY processed_at`,
  );
  return r.rows.map((x) => ({ at: Number(x.at), rows: Number(x.rows) }));
}

/**
 * Steady-state rows/s from the batches: the batches before the last one were all written between
 * the first batch's start and the last one's start.
 */
export function batchRate(batches: readonly SinkBatch[]): { rowsPerSec: number; batches: number; spanMs: number; meanRows: number } | undefined {
  if (batches.length < 2) return undefined;
  const spanMs = batches[batches.length - 1]!.at - batches[0]!.at;
  const rows = batches.slice(0, -1).reduce((n, b) => n + b.rows, 0);
  const all = batches.reduce((n, b) => n + b.rows, 0);
  return { rowsPerSec: spanMs > 0 ? (rows / spanMs) * 1000 : NaN, batches: batches.length, spanMs, meanRows: all / batches.length };
}

/** Per-row latency from ingest to the sink's batch (µs), for rows matching `where`. */
export async function rowLatenciesUs(pool: pg.Pool, schema: string, where: string): Promise<number[]> {
  const r = await pool.query<{ us: string }>({
    text: `SELECT (extract(epoch FROM (processed_at - ingested_at)) * 1000000)::bigint AS us FROM ${q(schema)}.transactions WHERE ${where}`,
    rowMode: 'array',
  } as pg.QueryConfig);
  return (r.rows as unknown as [string][]).map((row) => Number(row[0]));
}

export async function dropSchema(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS ${q(schema)} CASCADE`);
}

/** The sink's Postgres backend (by application_name), for its CPU. */
export async function backendPids(pool: pg.Pool, applicationName: string): Promise<number[]> {
  const r = await pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
  return r.rows.map((x) => x.pid);
}

export async function serverVersion(pool: pg.Pool): Promise<string> {
  const r = await pool.query<{ v: string }>("SELECT current_setting('server_version') AS v");
  return r.rows[0]!.v;
}

/** The column names of a schema's transactions table, in order. */
export async function transactionColumns(pool: pg.Pool, schema: string, table = 'transactions'): Promise<string[]> {
  const r = await pool.query<{ c: string }>(
    `SELECT column_name AS c FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
    [schema, table],
  );
  return r.rows.map((x) => x.c);
}

/** CPU time (ms) the Postgres backends of an application_name have used since they connected. */
export async function backendCpuMs(pool: pg.Pool, applicationName: string, cpuOf: (pid: number) => number | undefined): Promise<number | null> {
  const pids = await backendPids(pool, applicationName).catch(() => []);
  if (!pids.length) return null;
  return pids.reduce((n, p) => n + (cpuOf(p) ?? 0), 0);
}
