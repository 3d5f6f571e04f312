// Postgres pool. Every connection sets search_path to the instance's schema, so SQL names tables
// unqualified and several instances (and parallel tests) share one database.
import pg from 'pg';
import type { RillEnv } from './config.ts';

export type PgPool = pg.Pool;
export type PgClient = pg.PoolClient;

export function createPool(env: Pick<RillEnv, 'databaseUrl' | 'pgSchema'>, opts: { max?: number; name?: string } = {}): pg.Pool {
  return new pg.Pool({
    connectionString: env.databaseUrl,
    max: opts.max ?? 4,
    application_name: opts.name ?? 'rill',
    // search_path as a startup option: no extra round trip per connection
    options: `-c search_path=${env.pgSchema},public`,
    connectionTimeoutMillis: 10_000,
  });
}

/** Quote an identifier we validated already (schema names come from RILL_PG_SCHEMA). */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
