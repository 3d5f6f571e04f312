// Postgres pool. Every connection sets search_path to the instance's schema, so SQL names tables
// unqualified and several instances (and parallel tests) share one database.
import pg from 'pg';
import type { RillEnv } from './config.ts';

export type PgPool = pg.Pool;
export type PgClient = pg.PoolClient;

/**
 * A transaction left idle this long is ended by Postgres (idle_in_transaction_session_timeout).
 * Rill never waits between the statements of a transaction, so only a process frozen mid-way
 * (SIGSTOP, a VM pause, a stuck event loop) does; its row locks (a merchant's wallet, its refund
 * count) would otherwise stall every other sink writing that merchant until it woke. Its
 * transaction rolls back, its entries stay pending and are reclaimed; on waking its connection is
 * gone and its batch is retried (the writer skips rows already there).
 */
export const IDLE_IN_TRANSACTION_MS = 15_000;

/** Startup options of every Rill connection: the instance's schema, the idle-transaction limit (no extra round trip). */
export function connectionOptions(env: Pick<RillEnv, 'pgSchema'>): string {
  return `-c search_path=${env.pgSchema},public -c idle_in_transaction_session_timeout=${IDLE_IN_TRANSACTION_MS}`;
}

export function createPool(env: Pick<RillEnv, 'databaseUrl' | 'pgSchema'>, opts: { max?: number; name?: string } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: env.databaseUrl,
    max: opts.max ?? 4,
    application_name: opts.name ?? 'rill',
    options: connectionOptions(env),
    connectionTimeoutMillis: 10_000,
  });
  // an idle client's connection dropping (Postgres restarting) is emitted on the pool: without a
  // listener that would crash the process. pg-pool has already discarded the client; the next
  // checkout reconnects, and callers see errors on their own queries.
  pool.on('error', (err) => process.emitWarning(`postgres pool (${opts.name ?? 'rill'}): idle connection lost: ${err.message}`));
  return pool;
}

/** Quote an identifier we validated already (schema names come from RILL_PG_SCHEMA). */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
