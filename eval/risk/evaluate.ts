// Runs a labelled stream through the risk stage's scoring code (processors/risk/scorer.ts: the
// real risk script against the real Redis, under its own key prefix), in the stage's batch size,
// once with the velocity rules alone (the stage before the features) and once with the combined
// score. The processor's process() is not driven directly because it reads the wall clock; the
// scorer takes the simulated clock. The detector sees merchant, type, amount, currency and time.
import type { Keys } from '../../core/keys.ts';
import type { RedisClient } from '../../core/redis.ts';
import { partitionOf } from '../../core/partition.ts';
import { riskProcessor } from '../../processors/risk/index.ts';
import type { RiskConfig } from '../../processors/risk/index.ts';
import { RiskScorer } from '../../processors/risk/scorer.ts';
import type { ScoredInput } from '../../processors/risk/scorer.ts';
import type { VersionedRules } from '../../processors/risk/rules.ts';
import type { Stream } from './generator.ts';

/** The simulated stream starts here (fixed: the same scores for the same seed). */
const EPOCH = Date.UTC(2026, 0, 5);

export interface Run {
  /** per event: review or block */
  flagged: boolean[];
  scores: number[];
  /** the scorer's wall time per event, µs */
  usPerEvent: number;
}

export interface RunOptions {
  /** the stage's config (topology.yaml); velocity-only when `features` is false */
  config: Partial<RiskConfig>;
  partitions?: number;
  batch?: number;
}

export async function runDetector(redis: RedisClient, keys: Keys, stream: Stream, o: RunOptions): Promise<Run> {
  const config = riskProcessor.configSchema.parse(o.config);
  const scorer = new RiskScorer(redis, keys, { limits: config, recordTtlMs: 3_600_000, features: config.features });
  const rules: VersionedRules = config.features
    ? { version: 0, thresholds: config.thresholds }
    : { version: 0, thresholds: { default: { review: 101, block: config.threshold + 1 } } };
  const partitions = o.partitions ?? 8;
  const size = o.batch ?? 500;
  const flagged: boolean[] = [];
  const scores: number[] = [];
  let ns = 0n;
  for (let from = 0; from < stream.events.length; from += size) {
    const slice = stream.events.slice(from, from + size);
    const batch: ScoredInput[] = slice.map((e, k) => ({
      partition: partitionOf(e.merchant, partitions),
      txId: `tx_eval_${from + k}`,
      event: { merchant_id: e.merchant, type: e.type, amount: e.amount, currency: e.currency, ingested_at: EPOCH + Math.round(e.t) },
    }));
    const t0 = process.hrtime.bigint();
    const verdicts = await scorer.score(batch, rules, EPOCH + Math.round(slice[slice.length - 1]!.t));
    ns += process.hrtime.bigint() - t0;
    for (const v of verdicts) {
      flagged.push(v.decision !== 'allow');
      scores.push(v.score);
    }
  }
  return { flagged, scores, usPerEvent: Number(ns) / 1000 / Math.max(1, stream.events.length) };
}
