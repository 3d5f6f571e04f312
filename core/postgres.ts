// Postgres pool. Every connection sets search_path to the instance's schema, so SQL names tables
// unqualified and several instances (and parallel tests) share one database.
import pg from 'pg';
import type { RillEnv } from './config.ts';

export type PgPool = pg.Pool;
export type PgClient = pg.PoolClient;

export function createPool(env: Pick<RillEnv, 'databaseUrl' | 'pgSchema'>, opts: { max?: number; name?: string } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: env.databaseUrl,
    max: opts.max ?? 4,
    application_name: opts.name ?? 'rill',
    // search_path as a startup option: no extra round trip per connection
    options: `-c search_path=${env.pgSchema},public`,
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
