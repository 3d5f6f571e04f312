// risk: every transaction gets `risk_score` 0–100 and `risk_reasons` from the velocity rules
// (count and amount per sliding minute and hour) and per-merchant streaming features (amount far
// off the merchant's own normal, small-payin bursts, event-rate bursts, a first currency, refund
// share, cash-out after flagged payins), all kept in Redis and updated by one script call per
// partition batch (scripts/risk-score-var.lua). The score meets the thresholds of the rules in force:
//   allow  → on to the output topic;
//   review → status `in_review`: the stage's `routes` send it to the review topic, and it waits in
//            the partition's review hash (core/review-queue.ts) for an operator, never blocking the
//            merchant's later events;
//   block  → `failed` with failure_code `risk_blocked` (a business outcome, not a dead letter).
// Reviewed and blocked transactions also go to `anomalies_topic` with their reasons.
import { z } from 'zod';
import { ConfigError, counter, DEFAULT_REDELIVERY_HORIZON_MS, failedEvent, holdForReview } from '../../core/processor-kit.ts';
import type { Emitted, HeldEvent, Outcome, ProcessorFactory, StreamEvent, TransactionEvent } from '../../core/processor-kit.ts';
import { RulesCache, ThresholdsSchema } from './rules.ts';
import type { VersionedRules } from './rules.ts';
import { RiskScorer } from './scorer.ts';
import type { Verdict } from './scorer.ts';
import { reasonTexts } from './reasons.ts';

const ConfigSchema = z
  .object({
    per_minute_count: z.number().int().positive().default(600),
    per_minute_amount: z.number().int().positive().default(100_000_000),
    per_hour_count: z.number().int().positive().default(10_000),
    per_hour_amount: z.number().int().positive().default(1_000_000_000),
    /** Velocity rules alone (features: false): scores above this fail the transaction. */
    threshold: z.number().int().min(0).max(100).default(75),
    /** The streaming features and the combined score; false (the default, as before them) keeps the velocity rules alone. */
    features: z.boolean().default(false),
    /** Score thresholds per type (review ≥ review, block ≥ block); `rill risk rules set` overrides. */
    thresholds: ThresholdsSchema.default({ default: { review: 60, block: 90 } }),
    /** Where reviewed and blocked transactions are announced with their reasons; none when unset. */
    anomalies_topic: z.string().optional(),
    /** How often the stage looks for newer rules in Redis. */
    rules_poll_ms: z.number().int().positive().default(1_000),
    /**
     * How long an event's decision is remembered for redeliveries. Unset (the default): the
     * stage's redelivery horizon (visibility timeout × attempts and a margin, see
     * core/retention/horizon.ts), so no record outlives the deliveries it answers.
     */
    record_ttl_ms: z.number().int().positive().optional(),
  })
  .strict();

export type RiskConfig = z.output<typeof ConfigSchema>;

export const riskProcessor: ProcessorFactory<RiskConfig> = {
  name: 'risk',
  configSchema: ConfigSchema,
  create(config, ctx) {
    if (config.anomalies_topic && !ctx.topics.includes(config.anomalies_topic)) {
      throw new ConfigError(`risk: anomalies_topic "${config.anomalies_topic}" is not a declared topic`);
    }
    const recordTtlMs = config.record_ttl_ms ?? ctx.redeliveryHorizonMs ?? DEFAULT_REDELIVERY_HORIZON_MS;
    if (ctx.redeliveryHorizonMs !== undefined && recordTtlMs < ctx.redeliveryHorizonMs) {
      ctx.logger.warn(
        { record_ttl_ms: recordTtlMs, redelivery_horizon_ms: ctx.redeliveryHorizonMs },
        'risk: record_ttl_ms is shorter than the stage can redeliver an event: a late redelivery is scored (and counted) again',
      );
    }
    const scorer = new RiskScorer(ctx.redis, ctx.keys, { limits: config, recordTtlMs, features: config.features });
    // velocity alone decides as it always did: block above `threshold`, never review
    const velocityOnly: VersionedRules = { version: 0, thresholds: { default: { review: 101, block: config.threshold + 1 } } };
    const rules = config.features ? new RulesCache(ctx.redis, ctx.keys, config.thresholds, config.rules_poll_ms) : undefined;
    const decisions = counter(ctx.registry, 'rill_risk_decisions_total', 'Risk stage decisions, by decision and type', ['decision', 'type']);
    return {
      async process(batch: readonly StreamEvent[]): Promise<Outcome[]> {
        const live = batch.map((e, i) => i).filter((i) => batch[i]!.event.status !== 'failed'); // already decided upstream
        const verdicts = live.length
          ? await scorer.score(
              live.map((i) => batch[i]!),
              (await rules?.get()) ?? velocityOnly,
              Date.now(),
            )
          : [];
        const byIndex = new Map(live.map((i, k) => [i, verdicts[k]!]));
        const held: HeldEvent[] = [];
        const out = batch.map((e, i): Outcome => {
          const v = byIndex.get(i);
          if (!v) return { kind: 'ok', event: e.event };
          decisions.inc({ decision: v.decision, type: e.event.type });
          const event = config.features ? decide(e.event, v) : velocityDecision(e.event, v, config.threshold);
          if (v.decision === 'review') held.push({ partition: e.partition, event });
          const emit = v.decision !== 'allow' && config.anomalies_topic ? [anomaly(config.anomalies_topic, event, v)] : undefined;
          return emit ? { kind: 'ok', event, emit } : { kind: 'ok', event };
        });
        await holdForReview(ctx.redis, ctx.keys, held);
        return out;
      },
    };
  },
};

function decide(ev: TransactionEvent, v: Verdict): TransactionEvent {
  const scored: TransactionEvent = { ...ev, risk_score: v.score, risk_reasons: reasonTexts(v.reasons), risk_rules_version: v.rulesVersion };
  if (v.decision === 'block') {
    const top = scored.risk_reasons![0] ?? 'score';
    return failedEvent(scored, 'risk_blocked', `risk: score ${v.score} at or above the block threshold (${top})`);
  }
  if (v.decision === 'review') return { ...scored, status: 'in_review' };
  return scored;
}

/** The velocity rules alone decide as they always did (and say so the same way). */
function velocityDecision(ev: TransactionEvent, v: Verdict, threshold: number): TransactionEvent {
  const scored: TransactionEvent = { ...ev, risk_score: v.score, risk_reasons: reasonTexts(v.reasons), risk_rules_version: v.rulesVersion };
  if (v.decision !== 'block') return scored;
  return failedEvent(scored, 'risk_declined', `risk: velocity score ${v.score} above ${threshold}`);
}

function anomaly(topic: string, ev: TransactionEvent, v: Verdict): Emitted {
  return {
    topic,
    event: {
      id: `anomaly_${ev.id}`,
      type: 'risk_flagged',
      decision: v.decision,
      tx_id: ev.id,
      merchant_id: ev.merchant_id,
      tx_type: ev.type,
      amount: ev.amount,
      currency: ev.currency,
      risk_score: v.score,
      risk_reasons: ev.risk_reasons ?? [],
      risk_rules_version: v.rulesVersion,
      at: Date.now(),
    },
  };
}

export default riskProcessor;
