// A test's own Rill instance: its own RILL_PREFIX and RILL_PG_SCHEMA on the shared Redis and
// Postgres, migrated, and removed again by `cleanup()`.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { readEnv } from '../../core/config.ts';
import type { RillEnv } from '../../core/config.ts';
import { connectRedis } from '../../core/redis.ts';
import { deleteByPattern } from '../../core/slot-pipeline.ts';
import { createPool, ident } from '../../core/postgres.ts';
import type { PgPool } from '../../core/postgres.ts';
import { migrate } from '../../sinks/postgres/migrate.ts';
import { Keys } from '../../core/keys.ts';

export interface TestInstance {
  env: RillEnv;
  /** Environment variables for child processes of this instance. */
  vars: Record<string, string>;
  redis: Redis;
  pool: PgPool;
  keys: Keys;
  cleanup(): Promise<void>;
}

export async function createInstance(label: string, overrides: Record<string, string> = {}): Promise<TestInstance> {
  const id = `${label
    .replace(/[^a-z0-9]/gi, '')
    .toLowerCase()
    .slice(0, 20)}_${randomBytes(4).toString('hex')}`;
  const vars: Record<string, string> = {
    RILL_PREFIX: `rilltest:${id}`,
    RILL_PG_SCHEMA: `rilltest_${id}`,
    LOG_LEVEL: process.env.LOG_LEVEL || 'warn',
    ...overrides,
  };
  const env = readEnv({ ...process.env, ...vars });
  const redis = connectRedis(env) as Redis;
  const pool = createPool(env, { max: 4, name: 'rill-test' });
  await migrate(pool, env.pgSchema);
  return {
    env,
    vars,
    redis,
    pool,
    keys: new Keys(env.prefix),
    async cleanup() {
      await deleteByPattern(redis, `${env.prefix}:*`);
      await pool.query(`DROP SCHEMA IF EXISTS ${ident(env.pgSchema)} CASCADE`);
      await pool.end();
      redis.disconnect();
    },
  };
}
