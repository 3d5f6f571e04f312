// Test support (not used in production): an ingest server on port 0 over a test instance's own
// Redis prefix and Postgres schema, with a silent logger and a fresh metrics registry.
import { pino } from 'pino';
import type { RillEnv } from '../core/config.ts';
import { createRegistry } from '../core/metrics.ts';
import type { Registry } from '../core/metrics.ts';
import type { PgPool } from '../core/postgres.ts';
import type { RedisClient } from '../core/redis.ts';
import { onEveryMaster } from '../core/slot-pipeline.ts';
import { loadTopology } from '../core/topology/load.ts';
import type { Topology } from '../core/topology/schema.ts';
import type { IngestLimits } from './app.ts';
import { KeyStore } from '../core/api-keys.ts';
import type { LoadGate } from './backpressure/shedder.ts';
import { startIngest } from './server.ts';
import type { IngestServer } from './server.ts';

export const TOPOLOGY_FILE = new URL('../topology.yaml', import.meta.url).pathname;

export interface TestIngest {
  url: string;
  server: IngestServer;
  topology: Topology;
  registry: Registry;
  keyStore: KeyStore;
}

export interface TestIngestOptions {
  redis?: RedisClient;
  pool?: PgPool;
  limits?: Partial<IngestLimits>;
  /** A topology or the path of its file (e.g. from writeTopology); default: the shipped one. */
  topology?: Topology | string;
  /** Replaces the load shedder (whose sampler then does not run). */
  load?: LoadGate;
}

export async function startTestIngest(instance: { env: RillEnv; redis: RedisClient; pool: PgPool }, opts: TestIngestOptions = {}): Promise<TestIngest> {
  const topology = typeof opts.topology === 'object' ? opts.topology : loadTopology(opts.topology ?? TOPOLOGY_FILE);
  const registry = createRegistry();
  const keyStore = new KeyStore(instance.pool);
  const server = await startIngest(
    {
      env: instance.env,
      topology,
      redis: opts.redis ?? instance.redis,
      pool: opts.pool ?? instance.pool,
      registry,
      logger: pino({ level: process.env.LOG_LEVEL || 'silent' }),
      keyStore,
      ...(opts.limits ? { limits: opts.limits } : {}),
      ...(opts.load ? { load: opts.load } : {}),
    },
    0,
    { host: '127.0.0.1' },
  );
  return { url: `http://127.0.0.1:${server.port}`, server, topology, registry, keyStore };
}

/** Every key of a prefix and the summed length of its streams: proof that nothing was written. */
export async function scanPrefix(redis: RedisClient, prefix: string): Promise<{ keys: string[]; entries: number }> {
  const keys: string[] = [];
  // on Redis Cluster, every master holds its own share of the keys
  await onEveryMaster(redis, async (node) => {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
  });
  let entries = 0;
  for (const k of keys) if ((await redis.type(k)) === 'stream') entries += await redis.xlen(k);
  return { keys: keys.sort(), entries };
}
