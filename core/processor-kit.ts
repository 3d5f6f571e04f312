// What a processor uses of core, in one place: the contract (core/processor.ts) and the types and
// the few helpers of core a processor needs. The built-in processors import core through this
// module only (depcheck: processors-import-core-through-processor-kit), so the rest of core can
// move without touching them. Kept apart from the contract: a plugin's types (the `rill`
// package) then need none of what these helpers bring in (pg's types, for one).
export * from './processor.ts';
// The event and how a processor fails one (an outcome's `event` with a stable failure code).
export type { LedgerLine, TransactionEvent, TransactionType } from './event.ts';
export { TRANSACTION_TYPES } from './event.ts';
export type { FailureCode } from './failure-codes.ts';
export { failedEvent, isFailureCode } from './failure-codes.ts';
export { ConfigError, FatalError, PayinPendingError, RetryableError, SinkBehindError } from './errors.ts';
// A processor's own state in Redis: its key names, its Lua scripts, pipelines split by hash slot.
export type { Keys } from './keys.ts';
export type { RedisClient } from './redis.ts';
export { defineScripts, runScript } from './redis.ts';
export { loadScripts } from './scripts.ts';
export { slotPipeline } from './slot-pipeline.ts';
// Its instruments, and the config blocks it shares with the topology.
export { counter } from './metrics.ts';
export { RefundsSchema } from './topology/schema.ts';
import { redeliveryHorizon } from './retention/horizon.ts';
import { RetrySchema } from './topology/schema.ts';
/**
 * The horizon of a stage with the schema's defaults (30 s visibility, 5 s lease, 5 attempts up to
 * 30 s apart): what a processor keeps its decisions for when its host names no horizon.
 */
export const DEFAULT_REDELIVERY_HORIZON_MS = redeliveryHorizon({ visibility_timeout: 30_000, lease_ttl: 5_000, retry: RetrySchema.parse({}) });
// The payins index and Postgres (the ledger settles refunds of payins past the hot window there).
export { payinBucket, payinTier, payinToken } from './payins.ts';
export { txIdTime } from './tx-id.ts';
export type { RillEnv } from './config.ts';
export { readEnv } from './config.ts';
export type { PgPool } from './postgres.ts';
export { createPool } from './postgres.ts';
// State a processor shares with the HTTP edge: the risk review queue, the merchant webhook events.
export type { HeldEvent } from './review-queue.ts';
export { holdForReview } from './review-queue.ts';
export type { WebhookEvent } from './webhooks/events.ts';
export { eventId, NOT_FOR_MERCHANTS, transactionData } from './webhooks/events.ts';
