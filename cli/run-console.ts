// The web console (console/) with its own Redis connection and Postgres pool, for `rill console`
// and `rill dev`, and the port it listens on.
import type { RillEnv } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { createPool } from '../core/postgres.ts';
import { connectRedis } from '../core/redis.ts';
import type { Topology } from '../core/topology/schema.ts';
import { KeyStore } from '../core/api-keys.ts';
import { startConsole } from '../console/server.ts';

export const DEFAULT_CONSOLE_PORT = 8090;

export interface RunningConsole {
  url: string;
  stop(): Promise<void>;
}

/** The console with its own Redis connection and Postgres pool (also used by `rill dev`). */
export async function runConsole(o: { env: RillEnv; topology: Topology; logger: Logger; port: number; host?: string }): Promise<RunningConsole> {
  const redis = connectRedis(o.env, { name: 'rill:console' });
  const pool = createPool(o.env, { max: 4, name: 'rill-console' });
  try {
    const server = await startConsole({ env: o.env, topology: o.topology, redis, pool, keyStore: new KeyStore(pool), logger: o.logger }, o.port, o.host);
    return {
      url: server.url,
      async stop() {
        await server.close();
        await pool.end();
        redis.disconnect();
      },
    };
  } catch (err) {
    await pool.end();
    redis.disconnect();
    throw err;
  }
}

export function consolePort(v: string | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const raw = v ?? env.CONSOLE_PORT;
  if (raw === undefined) return DEFAULT_CONSOLE_PORT;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 65535) throw new ConfigError(`console port must be 0 to 65535, got "${raw}"`);
  return n;
}
