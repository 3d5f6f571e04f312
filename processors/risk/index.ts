// risk: velocity rules per merchant (count and amount per sliding minute and hour, kept in Redis)
// give each transaction a score 0–100. Above the threshold it ends `failed` with the reason: a
// business outcome, passed on (not retried, not dead-lettered) so the sink records it.
import { z } from 'zod';
import type { Outcome, ProcessorFactory, StreamEvent } from '../../core/processor.ts';
import { defineScripts, readScripts, runScript } from '../../core/redis.ts';
import { failedEvent } from '../../core/failure-codes.ts';
import { slotPipeline } from '../../core/slot-pipeline.ts';

const SCRIPTS = readScripts(new URL('./scripts/', import.meta.url));
const RISK_SCORE = SCRIPTS.find((s) => s.name === 'riskScore')!;

const ConfigSchema = z
  .object({
    per_minute_count: z.number().int().positive().default(600),
    per_minute_amount: z.number().int().positive().default(100_000_000),
    per_hour_count: z.number().int().positive().default(10_000),
    per_hour_amount: z.number().int().positive().default(1_000_000_000),
    /** Scores above this fail the transaction. 50 = at a limit, 100 = twice a limit. */
    threshold: z.number().int().min(0).max(100).default(75),
    /** How long an event's score is remembered for redeliveries. */
    record_ttl_ms: z.number().int().positive().default(86_400_000),
  })
  .strict();

export type RiskConfig = z.output<typeof ConfigSchema>;

export const riskProcessor: ProcessorFactory<RiskConfig> = {
  name: 'risk',
  configSchema: ConfigSchema,
  create(config, ctx) {
    defineScripts(ctx.redis, SCRIPTS);
    const limits = [config.per_minute_count, config.per_minute_amount, config.per_hour_count, config.per_hour_amount];
    return {
      async process(batch: readonly StreamEvent[]): Promise<Outcome[]> {
        // one script per partition (its keys share the partition's hash tag), all in one pipeline
        const byPartition = new Map<number, number[]>();
        batch.forEach((e, i) => {
          if (e.event.status === 'failed') return; // already decided upstream
          byPartition.get(e.partition)?.push(i) ?? byPartition.set(e.partition, [i]);
        });
        const pipe = slotPipeline(ctx.redis);
        const order: number[][] = [];
        const now = Date.now();
        for (const [p, idx] of byPartition) {
          const keys = idx.flatMap((i) => [
            ctx.keys.partitioned(p, 'vel', batch[i]!.event.merchant_id),
            ctx.keys.partitioned(p, 'risk', batch[i]!.txId),
          ]);
          const args = [now, config.record_ttl_ms, ...limits, config.threshold, ...idx.map((i) => batch[i]!.event.amount)];
          pipe.add(keys[0]!, (q) => void runScript(q, RISK_SCORE, keys, args));
          order.push(idx);
        }
        const scores = new Map<number, number>();
        (await pipe.exec()).forEach(([err, res], k) => {
          if (err) throw err;
          (res as number[]).forEach((score, j) => scores.set(order[k]![j]!, score));
        });
        return batch.map((e, i): Outcome => {
          const score = scores.get(i);
          if (score === undefined) return { kind: 'ok', event: e.event };
          if (score > config.threshold) {
            return { kind: 'ok', event: failedEvent({ ...e.event, risk_score: score }, 'risk_declined', `risk: velocity score ${score} above ${config.threshold}`) };
          }
          return { kind: 'ok', event: { ...e.event, risk_score: score } };
        });
      },
    };
  },
};

export default riskProcessor;
