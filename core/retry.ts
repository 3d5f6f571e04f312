// Exponential backoff with full jitter (AWS architecture blog's "full jitter"): the wait for the
// n-th retry is uniform in [0, min(max, base * factor^(n-1))], which spreads a thundering herd.
import type { RetryConfig } from './topology/schema.ts';

export function backoffMs(retry: number, cfg: RetryConfig, random: () => number = Math.random): number {
  const ceiling = Math.min(cfg.max, cfg.base * cfg.factor ** Math.max(0, retry - 1));
  return cfg.jitter === 'full' ? Math.floor(random() * ceiling) : Math.floor(ceiling);
}
