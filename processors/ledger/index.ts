// ledger: double-entry bookkeeping against per-merchant wallets kept in Redis (one atomic script
// per partition batch, idempotent by tx id). A payin credits; a payout debits or fails when it
// would overdraw; a refund or chargeback debits against a succeeded payin of the same merchant
// with enough unrefunded amount, and retries (then dead-letters) while that payin is unknown.
// Runs as an `ordering: key` stage: per-merchant order comes from the partition lease.
// A debit taking a wallet under its threshold emits one alert event (no storm).
import { txIdTime } from '../../core/tx-id.ts';
import { z } from 'zod';
import type { LedgerLine, TransactionEvent } from '../../core/event.ts';
import { ConfigError, FatalError, RetryableError } from '../../core/errors.ts';
import { counter } from '../../core/metrics.ts';
import type { Outcome, ProcessorFactory, StreamEvent } from '../../core/processor.ts';
import { defineScripts, readScripts, runScript } from '../../core/redis.ts';
import { slotPipeline } from '../../core/slot-pipeline.ts';

const SCRIPTS = readScripts(new URL('./scripts/', import.meta.url));
const LEDGER_APPLY = SCRIPTS.find((s) => s.name === 'ledgerApply')!;

const ConfigSchema = z
  .object({
    /** Wallet balance (minor units) under which an alert goes out; per currency, with a default. */
    low_balance: z.record(z.string(), z.number().int()).default({ default: 10_000 }),
    /** Topic for alert events; none when unset. */
    alerts_topic: z.string().optional(),
    /** How long decisions are remembered for redeliveries. */
    record_ttl_ms: z.number().int().positive().default(7 * 86_400_000),
    /**
     * How long a payin stays refundable (refunds and chargebacks against it). Payins are kept in
     * buckets by their time that expire with the window, so Redis does not keep every payin forever.
     */
    refund_window_ms: z.number().int().positive().default(180 * 86_400_000),
  })
  .strict();

export type LedgerConfig = z.output<typeof ConfigSchema>;

export class PayinNotFoundError extends RetryableError {
  override name = 'PayinNotFoundError';
}

export class LedgerRejectedError extends FatalError {
  override name = 'LedgerRejectedError';
}

type ScriptResult = [outcome: 'ok' | 'failed' | 'retry' | 'wait', detail: string, balance: number, alerted: number];

/** The double-entry lines of a succeeded transaction: wallet and external sides sum to zero. */
export function ledgerLines(ev: TransactionEvent): LedgerLine[] {
  const credit = ev.type === 'payin';
  return [
    { account: 'wallet', amount: credit ? ev.amount : -ev.amount },
    { account: 'external', amount: credit ? -ev.amount : ev.amount },
  ];
}

/**
 * The refundable-payins bucket of a payin id: payins are grouped by time into buckets of a 30th of
 * the refund window (at least a minute), each expiring once its last payin is past the window.
 * Ids not made by ingest (no time in them: tests, imports) share the bucket "none", which does not
 * expire (expiresAt 0).
 */
export function payinBucket(payinId: string, windowMs: number): { name: string; expiresAt: number } {
  const at = txIdTime(payinId);
  if (at === undefined) return { name: 'none', expiresAt: 0 };
  const size = Math.max(60_000, Math.floor(windowMs / 30));
  const n = Math.floor(at / size);
  return { name: String(n), expiresAt: (n + 1) * size + windowMs };
}

export const ledgerProcessor: ProcessorFactory<LedgerConfig> = {
  name: 'ledger',
  configSchema: ConfigSchema,
  create(config, ctx) {
    if (config.alerts_topic && !ctx.topics.includes(config.alerts_topic)) {
      throw new ConfigError(`ledger: alerts_topic "${config.alerts_topic}" is not a declared topic`);
    }
    defineScripts(ctx.redis, SCRIPTS);
    const thresholds = JSON.stringify(config.low_balance);
    const alerts = counter(ctx.registry, 'rill_alerts_emitted_total', 'Alert events emitted, by type', ['type']);

    return {
      async process(batch: readonly StreamEvent[]): Promise<Outcome[]> {
        const byPartition = new Map<number, number[]>();
        batch.forEach((e, i) => {
          if (e.event.status === 'failed') return; // decided upstream (risk): no money moves
          byPartition.get(e.partition)?.push(i) ?? byPartition.set(e.partition, [i]);
        });
        const pipe = slotPipeline(ctx.redis);
        const order: number[][] = [];
        for (const [p, idx] of byPartition) {
          const keys: string[] = [];
          const args: (string | number)[] = [config.record_ttl_ms, thresholds];
          for (const i of idx) {
            const { event: ev, txId, stream } = batch[i]!;
            // a payin goes to the bucket of its own time; a refund looks in the bucket of its payin's
            const bucket = payinBucket(ev.type === 'payin' ? txId : ev.reference ?? '', config.refund_window_ms);
            keys.push(
              ctx.keys.partitioned(p, 'wallet', ev.merchant_id),
              ctx.keys.partitioned(p, 'payins', ev.merchant_id, bucket.name),
              ctx.keys.partitioned(p, 'ledger', txId),
              ctx.keys.partitioned(p, 'alerted', ev.merchant_id),
            );
            args.push(ev.type, ev.amount, ev.currency, ev.reference ?? '', stream, txId, bucket.expiresAt);
          }
          pipe.add(keys[0]!, (q) => void runScript(q, LEDGER_APPLY, keys, args));
          order.push(idx);
        }
        const results = new Map<number, ScriptResult>();
        (await pipe.exec()).forEach(([err, res], k) => {
          if (err) throw err;
          (res as ScriptResult[]).forEach((r, j) => results.set(order[k]![j]!, r));
        });

        return batch.map((e, i): Outcome => {
          const r = results.get(i);
          if (!r) return { kind: 'ok', event: e.event };
          const [outcome, detail, balance, alerted] = r;
          if (outcome === 'retry') {
            // a payin past the refund window is gone for good: a business outcome, not a retry
            const paidAt = txIdTime(e.event.reference ?? '');
            if (paidAt !== undefined && paidAt < Date.now() - config.refund_window_ms) {
              return { kind: 'ok', event: { ...e.event, status: 'failed', failure_reason: `ledger: payin ${e.event.reference} is past the refund window (${Math.round(config.refund_window_ms / 86_400_000)} days)` } };
            }
            return { kind: 'retry', error: new PayinNotFoundError(detail) };
          }
          if (outcome === 'wait') return { kind: 'retry', deferred: true, error: new RetryableError('waiting behind an earlier transaction of this partition') };
          if (outcome === 'failed') {
            return { kind: 'ok', event: { ...e.event, status: 'failed', failure_reason: `ledger: ${detail}` } };
          }
          const out: Outcome = { kind: 'ok', event: { ...e.event, status: 'succeeded', ledger: ledgerLines(e.event) } };
          if (alerted && config.alerts_topic) {
            alerts.inc({ type: 'wallet_low' });
            out.emit = [{
              topic: config.alerts_topic,
              event: {
                id: `alert_${e.txId}`,
                type: 'wallet_low',
                merchant_id: e.event.merchant_id,
                currency: e.event.currency,
                balance,
                threshold: config.low_balance[e.event.currency] ?? config.low_balance.default ?? 0,
                tx_id: e.txId,
                at: Date.now(),
              },
            }];
          }
          return out;
        });
      },
    };
  },
};

export default ledgerProcessor;
