// Scores a batch with the risk script: one call per partition (its keys share the partition's hash
// tag), all in one pipeline. Used by the risk processor and, unchanged, by the evaluation
// (eval/risk), which passes its simulated clock as `now`.
import { defineScripts, loadScripts, runScript, slotPipeline } from '../../core/processor-kit.ts';
import type { Keys, RedisClient, TransactionEvent } from '../../core/processor-kit.ts';
import { thresholdArgs } from './rules.ts';
import type { VersionedRules } from './rules.ts';

const { riskScore: RISK_SCORE } = loadScripts(new URL('./scripts/', import.meta.url), ['riskScore']);

export type Decision = 'allow' | 'review' | 'block';

export interface Verdict {
  score: number;
  decision: Decision;
  rulesVersion: number;
  /** "code:points:value|...", see reasons.ts */
  reasons: string;
}

export interface ScoredInput {
  partition: number;
  txId: string;
  event: Pick<TransactionEvent, 'merchant_id' | 'amount' | 'type' | 'currency' | 'ingested_at'>;
}

export interface ScorerOptions {
  limits: { per_minute_count: number; per_minute_amount: number; per_hour_count: number; per_hour_amount: number };
  recordTtlMs: number;
  /** false: the velocity rules alone (the stage as it was before the features). */
  features: boolean;
}

export class RiskScorer {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly o: ScorerOptions,
  ) {
    defineScripts(redis, [RISK_SCORE]);
  }

  /** Verdicts for `batch`, in order; `now` is the velocity windows' clock. */
  async score(batch: readonly ScoredInput[], rules: VersionedRules, now: number): Promise<Verdict[]> {
    const { limits } = this.o;
    const byPartition = new Map<number, number[]>();
    batch.forEach((e, i) => byPartition.get(e.partition)?.push(i) ?? byPartition.set(e.partition, [i]));
    const head = [
      now,
      this.o.recordTtlMs,
      limits.per_minute_count,
      limits.per_minute_amount,
      limits.per_hour_count,
      limits.per_hour_amount,
      rules.version,
      this.o.features ? 1 : 0,
      ...thresholdArgs(rules.thresholds),
    ];
    const pipe = slotPipeline(this.redis);
    const order: number[][] = [];
    for (const [p, idx] of byPartition) {
      const keys = [this.keys.partitioned(p, 'risk-prior')];
      const args: (string | number)[] = [...head];
      for (const i of idx) {
        const { event: ev, txId } = batch[i]!;
        keys.push(this.keys.partitioned(p, 'vel', ev.merchant_id), this.keys.partitioned(p, 'riskf', ev.merchant_id), this.keys.partitioned(p, 'risk', txId));
        args.push(ev.amount, ev.type, ev.currency, ev.ingested_at);
      }
      pipe.add(keys[0]!, (q) => void runScript(q, RISK_SCORE, keys, args));
      order.push(idx);
    }
    const out: Verdict[] = new Array(batch.length);
    (await pipe.exec()).forEach(([err, res], k) => {
      if (err) throw err;
      (res as [number, Decision, string, string][]).forEach(([score, decision, version, reasons], j) => {
        out[order[k]![j]!] = { score: Number(score), decision, rulesVersion: Number(version), reasons };
      });
    });
    return out;
  }
}
