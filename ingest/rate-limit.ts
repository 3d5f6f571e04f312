// The per-merchant rate limit (design §3: 429). The token bucket itself lives in the append
// script (scripts/append-events.lua), so taking a token and
// appending stay one atomic round trip; this module is what the caller sees of it.
import type { RateLimitConfig } from '../core/topology/schema.ts';

/** The merchant's bucket is empty: nothing was appended. */
export class RateLimitedError extends Error {
  override name = 'RateLimitedError';
  constructor(
    readonly merchantId: string,
    /** Until the next token, as the script computed it. */
    readonly retryAfterMs: number,
    readonly limit: RateLimitConfig,
  ) {
    super(`merchant ${merchantId} is over its rate limit`);
  }

  /** Retry-After: whole seconds, rounded up, at least 1. */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.retryAfterMs / 1000));
  }
}

/** The bucket arguments of both append scripts: now (ms), refill rate (tokens/s), size. */
export function bucketArgs(limit: RateLimitConfig, now: number): [number, number, number] {
  return [now, limit.per_second, limit.burst];
}
