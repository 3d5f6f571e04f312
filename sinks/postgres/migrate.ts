// Versioned SQL migrations: files NNN_name.sql, applied in order, each in its own transaction,
// under an advisory lock so concurrent starts apply each one exactly once.
import { readdirSync, readFileSync } from 'node:fs';
import type { PgPool } from '../../core/postgres.ts';
import { ident } from '../../core/postgres.ts';
import { fnv1a } from '../../core/partition.ts';

export const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function readMigrations(dir: URL = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d+_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.split('_')[0]), name: f.replace(/\.sql$/, ''), sql: readFileSync(new URL(f, dir), 'utf8') }));
}

/** Apply missing migrations to `schema`; returns the names applied now. */
export async function migrate(pool: PgPool, schema: string, migrations: Migration[] = readMigrations()): Promise<string[]> {
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    // session lock keyed by schema: concurrent `rill migrate` on other schemas do not wait
    await client.query('SELECT pg_advisory_lock($1, $2)', [0x52494c4c, fnv1a(schema) | 0]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`);
    await client.query(`SET search_path TO ${ident(schema)}, public`);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${m.name} failed: ${(err as Error).message}`);
      }
      applied.push(m.name);
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, $2)', [0x52494c4c, fnv1a(schema) | 0]).catch(() => undefined);
    client.release();
  }
  return applied;
}
