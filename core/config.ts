import { ConfigError } from './errors.ts';

// Environment configuration (design §4). Read once at start; every part takes a RillEnv rather
// than reading process.env itself, so tests can run several instances side by side.
export interface RillEnv {
  redisUrl: string;
  redisCluster: boolean;
  databaseUrl: string;
  topologyPath: string;
  prefix: string;
  pgSchema: string;
  port: number;
  metricsPort: number;
  logLevel: string;
  /** Ingest: how long it keeps serving after SIGTERM with /readyz failing (RILL_SHUTDOWN_DELAY_MS). */
  shutdownDelayMs: number;
}

const NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;

export function readEnv(env: NodeJS.ProcessEnv = process.env): RillEnv {
  const redisUrl = env.REDIS_URL || 'redis://127.0.0.1:6379';
  const pgSchema = env.RILL_PG_SCHEMA || 'rill';
  const prefix = env.RILL_PREFIX || 'rill';
  if (!NAME.test(pgSchema)) throw new ConfigError(`RILL_PG_SCHEMA must match ${NAME}, got "${pgSchema}"`);
  if (!PREFIX.test(prefix)) throw new ConfigError(`RILL_PREFIX must match ${PREFIX}, got "${prefix}"`);
  return {
    redisUrl,
    redisCluster: env.REDIS_CLUSTER === '1' || redisUrl.includes(','),
    databaseUrl: env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
    topologyPath: env.RILL_TOPOLOGY || './topology.yaml',
    prefix,
    pgSchema,
    port: intVar(env, 'PORT', 8080),
    metricsPort: intVar(env, 'METRICS_PORT', 9464),
    logLevel: env.LOG_LEVEL || 'info',
    shutdownDelayMs: msVar(env, 'RILL_SHUTDOWN_DELAY_MS', 5_000),
  };
}

function intVar(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`${name} must be a port number, got "${raw}"`);
  return n;
}

function msVar(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 600_000) throw new ConfigError(`${name} must be milliseconds from 0 to 600000, got "${raw}"`);
  return n;
}
