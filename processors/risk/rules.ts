// Decision rules: score thresholds per transaction type (review at or above `review`, block at or
// above `block`). The topology's stage config gives version 0; `rill risk rules set` stores a
// newer version in Redis, which running stages pick up within `rules_poll_ms` (no restart). Every
// decision records the version it was made under.
import { z } from 'zod';
import { TRANSACTION_TYPES } from '../../core/processor-kit.ts';
import type { Keys, RedisClient, TransactionType } from '../../core/processor-kit.ts';

const Threshold = z
  .object({ review: z.number().int().min(0).max(101), block: z.number().int().min(0).max(101) })
  .strict()
  .refine((t) => t.review <= t.block, { message: 'review must not be above block' });

/** Per type, with `default` for the types not named. 101 = never. */
export const ThresholdsSchema = z
  .partialRecord(z.enum(['default', ...TRANSACTION_TYPES]), Threshold)
  .refine((t) => t.default !== undefined, { message: 'thresholds need a default' });

export const RulesSchema = z.object({ thresholds: ThresholdsSchema }).strict();

export type Thresholds = z.output<typeof ThresholdsSchema>;
export type Rules = z.output<typeof RulesSchema>;
export interface VersionedRules extends Rules {
  version: number;
}

export function rulesKey(keys: Keys): string {
  return keys.global('risk', 'rules');
}

/** review, block per type in the order the risk script takes them. */
export function thresholdArgs(t: Thresholds): number[] {
  return TRANSACTION_TYPES.flatMap((ty: TransactionType) => {
    const x = t[ty] ?? t.default!;
    return [x.review, x.block];
  });
}

/** Parse and check rules given as JSON; throws one line naming what is wrong. */
export function parseRules(text: string): Rules {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`rules are not JSON: ${(err as Error).message}`);
  }
  const r = RulesSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`rules: ${i.path.join('.') || '(top)'}: ${i.message}`);
  }
  return r.data;
}

/** Store a new version (one MULTI: the version and its rules change together); returns it. */
export async function setRules(redis: RedisClient, keys: Keys, rules: Rules): Promise<VersionedRules> {
  const res = await redis.multi().hincrby(rulesKey(keys), 'version', 1).hset(rulesKey(keys), 'rules', JSON.stringify(rules)).exec();
  const [err, version] = res?.[0] ?? [new Error('rules not stored')];
  if (err) throw err;
  return { version: Number(version), ...rules };
}

export async function readRules(redis: RedisClient, keys: Keys): Promise<VersionedRules | undefined> {
  const [version, raw] = await redis.hmget(rulesKey(keys), 'version', 'rules');
  if (!version || !raw) return undefined;
  return { version: Number(version), ...RulesSchema.parse(JSON.parse(raw)) };
}

/** The rules in force: Redis's newest version, re-read at most every `pollMs`, else the config's. */
export class RulesCache {
  private current: VersionedRules;
  private readAt = -Infinity;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    fallback: Thresholds,
    private readonly pollMs: number,
  ) {
    this.current = { version: 0, thresholds: fallback };
  }

  async get(): Promise<VersionedRules> {
    const now = Date.now();
    if (now - this.readAt >= this.pollMs) {
      this.readAt = now;
      this.current = (await readRules(this.redis, this.keys)) ?? this.current;
    }
    return this.current;
  }
}
