// Redis connections, and running Lua scripts on them (core/scripts.ts loads them). Each script is
// defined once per connection; ioredis runs it by EVALSHA and loads it on NOSCRIPT, also inside
// pipelines.
import { Cluster, Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import type { RillEnv } from './config.ts';
import type { RedisClient, RedisPipeline } from './redis-client.ts';

export type { RedisClient, RedisPipeline } from './redis-client.ts';

export interface ConnectOptions {
  /** Shown in CLIENT LIST, for operators. */
  name?: string;
  /** Lazy connections let a CLI command fail fast with one clear line. */
  lazyConnect?: boolean;
  /** false: commands fail at once while disconnected instead of queueing (ingest answers 503). */
  offlineQueue?: boolean;
  /**
   * Resend a command cut off by a disconnect after reconnecting? Workers: yes (null, forever).
   * Ingest: no (0): it has already answered 503, and a late append would be a second acceptance.
   */
  retriesPerRequest?: number | null;
  /** Coalesce the commands issued in one event-loop tick into one write (many concurrent requests). */
  autoPipelining?: boolean;
}

export function connectRedis(env: Pick<RillEnv, 'redisUrl' | 'redisCluster'>, opts: ConnectOptions = {}): RedisClient {
  const common: RedisOptions = {
    connectionName: opts.name,
    lazyConnect: opts.lazyConnect ?? false,
    maxRetriesPerRequest: opts.retriesPerRequest === undefined ? null : opts.retriesPerRequest,
    enableAutoPipelining: opts.autoPipelining ?? false,
    enableOfflineQueue: opts.offlineQueue ?? true,
  };
  if (env.redisCluster) {
    const nodes = env.redisUrl.split(',').map((u) => {
      const url = new URL(u.trim());
      return { host: url.hostname, port: Number(url.port || 6379) };
    });
    // connecting and queueing are the Cluster's own options (its node connections always queue)
    return new Cluster(nodes, { redisOptions: common, enableReadyCheck: true, lazyConnect: common.lazyConnect, enableOfflineQueue: common.enableOfflineQueue });
  }
  return new Redis(env.redisUrl, common);
}

export interface ScriptSource {
  name: string;
  /** Fixed key count, or undefined when the caller passes it first. */
  numberOfKeys: number | undefined;
  lua: string;
}

type ScriptArg = string | number | Buffer;
type ScriptCall = (...args: ScriptArg[]) => Promise<unknown>;

/** Define scripts on a connection (idempotent) so they can run on it and on its pipelines. */
export function defineScripts(redis: RedisClient, scripts: readonly ScriptSource[]): void {
  for (const s of scripts) {
    if (typeof (redis as unknown as Record<string, unknown>)[s.name] === 'function') continue;
    redis.defineCommand(s.name, s.numberOfKeys === undefined ? { lua: s.lua } : { lua: s.lua, numberOfKeys: s.numberOfKeys });
  }
}

/** Run a defined script on a connection or queue it on a pipeline. Keys first, then args. */
export function runScript(target: RedisClient | RedisPipeline, script: ScriptSource, keys: readonly string[], args: readonly ScriptArg[]): Promise<unknown> {
  const fn = (target as unknown as Record<string, ScriptCall>)[script.name];
  if (typeof fn !== 'function') throw new Error(`Lua script ${script.name} is not defined on this connection`);
  const head: ScriptArg[] = script.numberOfKeys === undefined ? [keys.length] : [];
  return fn.call(target, ...head, ...keys, ...args);
}

/** Run a pipeline; its replies in order, or the first command's error thrown. */
export async function execAll(pipe: RedisPipeline): Promise<unknown[]> {
  const replies = (await pipe.exec()) ?? [];
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
