// The Redis connection of a one-shot command (status, dlq, review, tap, ...): lazy, no offline
// queue, no retries, so a Redis that is down fails the command at once with one line.
import type { RillEnv } from '../core/config.ts';
import { connectRedis } from '../core/redis.ts';
import type { RedisClient } from '../core/redis.ts';

/**
 * A command's connection, made before it connects: a command that blocks on it (`rill tap
 * --follow`) holds it first, so that a signal can `disconnect()` it (which ends a blocking read at
 * once) whenever it comes.
 */
export class CommandRedis {
  readonly redis: RedisClient;
  /** The first error the connection reported (ECONNREFUSED ...). */
  private cause: Error | undefined;

  constructor(env: Pick<RillEnv, 'redisUrl' | 'redisCluster'>, name: string) {
    this.redis = connectRedis(env, { name, lazyConnect: true, offlineQueue: false, retriesPerRequest: 0 });
    this.redis.on('error', (err: Error) => (this.cause ??= err));
  }

  /**
   * Connects, or rejects with the error behind the failure (ECONNREFUSED ... says more than the
   * "Connection is closed" the connect call itself rejects with).
   */
  async connect(): Promise<RedisClient> {
    try {
      await this.redis.connect();
    } catch (err) {
      this.redis.disconnect();
      throw this.cause ?? err;
    }
    return this.redis;
  }

  /** What to report for `err`, a command's failure: the error behind a closed connection, if any. */
  reason(err: unknown): unknown {
    return this.cause && /Connection is closed/.test(String(err)) ? this.cause : err;
  }
}

/** A connected command connection (see CommandRedis#connect). */
export function connectForCommand(env: Pick<RillEnv, 'redisUrl' | 'redisCluster'>, name: string): Promise<RedisClient> {
  return new CommandRedis(env, name).connect();
}
