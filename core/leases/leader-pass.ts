// "One process does this every interval": before each pass a process takes a redis-semaphore mutex
// that lives one interval and is never released, so across all workers at most one pass runs per
// interval, and when the last runner dies the next one takes over after at most one interval.
import { Mutex } from 'redis-semaphore';
import type { Redis } from 'ioredis';

export function leaderPass(redis: Redis, key: string, intervalMs: number): () => Promise<boolean> {
  return async () => {
    const mutex = new Mutex(redis, key, { lockTimeout: intervalMs, acquireAttemptsLimit: 1, refreshInterval: 0 });
    return mutex.tryAcquire();
  };
}
