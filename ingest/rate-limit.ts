// The per-merchant rate limit (design §3: 429). The token bucket itself lives in the append
// script (append/scripts/append-events-var.lua), so taking a token and
// appending stay one atomic round trip; this module is what the caller sees of it.
import type { RateLimitConfig } from '../core/topology/schema.ts';

/** The append script's bucket arguments (ARGV 1-3): now (ms), refill rate (tokens/s), size. */
export function bucketArgs(limit: RateLimitConfig, now: number): [number, number, number] {
  return [now, limit.per_second, limit.burst];
}
