// Wires the ingest edge: its own Redis connection (no offline queue: a request fails fast with 503
// while Redis is down), a Postgres pool for key lookups, and the HTTP server.
import type { RillEnv } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import type { Registry } from '../core/metrics.ts';
import { createPool } from '../core/postgres.ts';
import { connectRedis } from '../core/redis.ts';
import type { Topology } from '../core/topology/schema.ts';
import { KeyStore } from '../core/api-keys.ts';
import { startIngest } from '../ingest/server.ts';

export interface RunningIngest {
  port: number;
  /** /readyz fails from now on; requests are still served. */
  unready(): void;
  stop(): Promise<void>;
}

export async function runIngest(o: {
  env: RillEnv;
  topology: Topology;
  registry: Registry;
  logger: Logger;
  port?: number;
  host?: string;
}): Promise<RunningIngest> {
  const redis = connectRedis(o.env, { name: 'rill:ingest', offlineQueue: false, retriesPerRequest: 0, autoPipelining: true });
  await redis.ping().catch(() => undefined); // first connect; readyz reports it if it failed
  const pool = createPool(o.env, { max: 8, name: 'rill-ingest' });
  const server = await startIngest(
    { env: o.env, topology: o.topology, redis, pool, registry: o.registry, logger: o.logger, keyStore: new KeyStore(pool) },
    o.port ?? o.env.port,
    { host: o.host },
  );
  return {
    port: server.port,
    unready: () => server.unready(),
    async stop() {
      await server.close();
      await pool.end();
      redis.disconnect();
    },
  };
}
