// Ordered partitions (ordering: key): a partition's lease says nobody else works on it now, so
// its new holder takes over the pending entries of its streams. Leases themselves are
// core/leases/partition-leases.ts; the parked entries, parking.ts.
import type { RedisClient } from '../redis.ts';

/** Claim every pending entry of `streams` for `consumer` (JUSTID: no delivery counted), so it finishes them first, in order. */
export async function takeOverPending(redis: RedisClient, streams: readonly string[], group: string, consumer: string): Promise<void> {
  for (const s of streams) {
    let cursor = '0-0';
    do {
      const [next] = (await redis.xautoclaim(s, group, consumer, 0, cursor, 'COUNT', 1000, 'JUSTID')) as [string, string[]];
      cursor = next;
    } while (cursor !== '0-0');
  }
}
