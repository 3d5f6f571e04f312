// The Redis connection of a one-shot command (status, dlq, review, ...): lazy, no offline queue,
// no retries, so a Redis that is down fails the command at once with one line.
import type { RillEnv } from '../core/config.ts';
import { connectRedis } from '../core/redis.ts';
import type { RedisClient } from '../core/redis.ts';

/**
 * Connects, or rejects with the error behind the failure (ECONNREFUSED ... says more than the
 * "Connection is closed" the connect call itself rejects with).
 */
export async function connectForCommand(env: Pick<RillEnv, 'redisUrl' | 'redisCluster'>, name: string): Promise<RedisClient> {
  const redis = connectRedis(env, { name, lazyConnect: true, offlineQueue: false, retriesPerRequest: 0 });
  let cause: Error | undefined;
  redis.on('error', (err: Error) => (cause ??= err));
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw cause ?? err;
  }
  return redis;
}
