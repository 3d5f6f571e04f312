// ledger: double-entry bookkeeping against per-merchant wallets kept in Redis (one atomic script
// per partition batch, idempotent by tx id). A payin credits; a payout debits or fails when it
// would overdraw; a refund or chargeback debits against a settled payin of the same merchant with
// enough unrefunded amount. One whose payin was accepted but has not settled yet waits for it
// (parked by the stage, woken the moment the payin settles or fails) up to `refunds.await_payin`
// from its acceptance; every merchant mistake ends `failed` with a code, never a dead letter.
// Payins live in Redis for `refunds.hot`; a refund of an older one is checked against Postgres
// (cold-payins.ts: one query per batch, and only for batches that hold such refunds).
// Runs as an `ordering: key` stage: per-merchant order comes from the partition lease.
// A debit taking a wallet under its threshold emits one alert event (no storm).
import { z } from 'zod';
import {
  ConfigError,
  counter,
  DEFAULT_REDELIVERY_HORIZON_MS,
  defineScripts,
  failedEvent,
  FatalError,
  isFailureCode,
  loadScripts,
  payinBucket,
  PayinPendingError,
  payinTier,
  payinToken,
  readEnv,
  RefundsSchema,
  runScript,
  SinkBehindError,
  slotPipeline,
} from '../../core/processor-kit.ts';
import type { LedgerLine, Outcome, ProcessorFactory, StreamEvent, TransactionEvent } from '../../core/processor-kit.ts';
import { ColdPayins, coldKey } from './cold-payins.ts';

const { ledgerApply: LEDGER_APPLY } = loadScripts(new URL('./scripts/', import.meta.url), ['ledgerApply']);

const ConfigSchema = z
  .object({
    /** Wallet balance (minor units) under which an alert goes out; per currency, with a default. */
    low_balance: z.record(z.string(), z.number().int()).default({ default: 10_000 }),
    /** Topic for alert events; none when unset. */
    alerts_topic: z.string().optional(),
    /**
     * How long decisions are remembered for redeliveries; default the stage's redelivery horizon
     * (visibility_timeout × attempts) plus REDELIVERY_MARGIN_MS.
     */
    record_ttl_ms: z.number().int().positive().optional(),
  })
  .strict();

export type LedgerConfig = z.output<typeof ConfigSchema>;

type ScriptResult = [outcome: 'ok' | 'failed' | 'wait' | 'lag' | 'behind' | 'skip', code: string, detail: string, balance: number, alerted: number];

/**
 * A decision record's TTL while its input is still pending (written by the script): the settle that
 * acknowledges the input shortens it to the horizon (Outcome.records). Long, so that a record
 * outlives any outage of every worker between the apply and the settle: the money moves once.
 */
export const PENDING_RECORD_TTL_MS = 7 * 24 * 3_600_000;
/** Added to the redelivery horizon: a lease handover, a slow settle, clocks a little apart. */
export const REDELIVERY_MARGIN_MS = 60_000;
/** A refund of a cold payin waiting for the sink to write the merchant's earlier refunds looks again after this. */
const SINK_RECHECK_MS = 250;
/** How long (from its acceptance) such a refund waits for the sink; then it retries (and dead-letters) like any failure. */
const SINK_PATIENCE_MS = 10 * 60_000;

/** The double-entry lines of a succeeded transaction: wallet and external sides sum to zero. */
export function ledgerLines(ev: TransactionEvent): LedgerLine[] {
  const credit = ev.type === 'payin';
  return [
    { account: 'wallet', amount: credit ? ev.amount : -ev.amount },
    { account: 'external', amount: credit ? -ev.amount : ev.amount },
  ];
}

export { payinBucket };

export const ledgerProcessor: ProcessorFactory<LedgerConfig> = {
  name: 'ledger',
  configSchema: ConfigSchema,
  create(config, ctx) {
    if (config.alerts_topic && !ctx.topics.includes(config.alerts_topic)) {
      throw new ConfigError(`ledger: alerts_topic "${config.alerts_topic}" is not a declared topic`);
    }
    defineScripts(ctx.redis, [LEDGER_APPLY]);
    const thresholds = JSON.stringify(config.low_balance);
    const alerts = counter(ctx.registry, 'rill_alerts_emitted_total', 'Alert events emitted, by type', ['type']);

    const refunds = ctx.refunds ?? RefundsSchema.parse({});
    const recordTtl = config.record_ttl_ms ?? (ctx.redeliveryHorizonMs ?? DEFAULT_REDELIVERY_HORIZON_MS) + REDELIVERY_MARGIN_MS;
    const cold = new ColdPayins(ctx.postgres ?? readEnv());
    const clock = ctx.now ?? Date.now;
    /** Until when a refund or chargeback waits for its payin: await_payin from its own acceptance. */
    const awaitDeadline = (ev: TransactionEvent, now: number) => (Number.isFinite(ev.ingested_at) ? ev.ingested_at : now) + refunds.await_payin;

    return {
      async process(batch: readonly StreamEvent[]): Promise<Outcome[]> {
        const byPartition = new Map<number, number[]>();
        batch.forEach((e, i) => {
          // failed upstream: no money moves; a failed payin is still marked, so its refunds fail
          if (e.event.status === 'failed' && e.event.type !== 'payin') return;
          // held for review: never posted here (a topology that lost the risk stage's review route)
          if (e.event.status === 'in_review') return;
          byPartition.get(e.partition)?.push(i) ?? byPartition.set(e.partition, [i]);
        });
        const now = clock();
        // refunds of payins past the hot window: Postgres's view of them, one query for the batch
        const isCold = (ev: TransactionEvent) =>
          (ev.type === 'refund' || ev.type === 'chargeback') && ev.status !== 'failed' && payinTier(ev.reference ?? '', refunds, now) === 'cold';
        const coldAt = new Set([...byPartition.values()].flat().filter((i) => isCold(batch[i]!.event)));
        const coldStates = coldAt.size
          ? await cold.load([...coldAt].map((i) => ({ payinId: batch[i]!.event.reference!, merchantId: batch[i]!.event.merchant_id })))
          : undefined;
        const pipe = slotPipeline(ctx.redis);
        const order: number[][] = [];
        for (const [p, idx] of byPartition) {
          const keys: string[] = [];
          const args: (string | number)[] = [PENDING_RECORD_TTL_MS, thresholds, now];
          for (const i of idx) {
            const { event: ev, txId, stream } = batch[i]!;
            // a payin goes to the bucket of its own time; a refund looks in the bucket of its payin's
            const bucket = payinBucket(ev.type === 'payin' ? txId : (ev.reference ?? ''), refunds.hot);
            keys.push(
              ctx.keys.partitioned(p, 'wallet', ev.merchant_id),
              ctx.keys.payins(p, ev.merchant_id, bucket.name),
              ctx.keys.partitioned(p, 'ledger', txId),
              ctx.keys.partitioned(p, 'alerted', ev.merchant_id),
              ctx.keys.partitioned(p, 'refunds', ev.merchant_id),
            );
            const deadline = awaitDeadline(ev, now);
            args.push(
              ev.type,
              ev.amount,
              ev.currency,
              ev.reference ?? '',
              `${stream}|${ev.merchant_id}`,
              txId,
              bucket.expiresAt,
              ev.status === 'failed' ? 'failed' : '',
              deadline,
              coldAt.has(i) ? (coldStates?.get(coldKey(ev.reference!, ev.merchant_id)) ?? '') : '',
            );
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
          if (e.event.status === 'in_review') {
            return {
              kind: 'fatal',
              error: new FatalError('a transaction held for review reached the ledger: give the risk stage routes: { by: status, to: { in_review: review } }'),
            };
          }
          const r = results.get(i);
          const signals = e.event.type === 'payin' ? [payinToken(e.txId)] : undefined;
          if (!r || r[0] === 'skip') return { kind: 'ok', event: e.event, signals };
          const records = [{ key: ctx.keys.partitioned(e.partition, 'ledger', e.txId), ttlMs: recordTtl }];
          const [outcome, code, detail, balance, alerted] = r;
          if (outcome === 'wait') {
            return {
              kind: 'retry',
              error: new PayinPendingError(`payin ${e.event.reference} is accepted but not settled yet`),
              wait: { token: payinToken(e.event.reference ?? ''), until: awaitDeadline(e.event, now) },
            };
          }
          if (outcome === 'lag') {
            // the merchant's earlier refunds are not all in Postgres yet: look again shortly
            const error = new SinkBehindError(`refund of payin ${e.event.reference} past the hot window: ${detail}`);
            const acceptedAt = Number.isFinite(e.event.ingested_at) ? e.event.ingested_at : now;
            if (now >= acceptedAt + SINK_PATIENCE_MS) return { kind: 'retry', error };
            return { kind: 'retry', error, wait: { token: `refunds-written:${e.event.merchant_id}`, until: now + SINK_RECHECK_MS } };
          }
          if (outcome === 'behind')
            return { kind: 'retry', deferred: true, error: new PayinPendingError('waiting behind an earlier transaction of this merchant') };
          if (outcome === 'failed') {
            return { kind: 'ok', event: failedEvent(e.event, isFailureCode(code) ? code : 'invalid_transaction', `ledger: ${detail}`), signals, records };
          }
          const out: Outcome = { kind: 'ok', event: { ...e.event, status: 'succeeded', ledger: ledgerLines(e.event) }, signals, records };
          if (alerted && config.alerts_topic) {
            alerts.inc({ type: 'wallet_low' });
            out.emit = [
              {
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
              },
            ];
          }
          return out;
        });
      },
      async close() {
        await cold.close();
      },
    };
  },
};

export default ledgerProcessor;
