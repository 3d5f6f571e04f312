// The package's public surface: processor plugins (`import type { ProcessorFactory } from 'rill'`) and
// tools that drive Rill from outside, like the bench.
export type { Processor, ProcessorFactory, ProcessorContext, Outcome, StreamEvent, Emitted } from './processor.ts';
export type { TransactionEvent, TransactionType, TransactionStatus, LedgerLine } from './event.ts';
export { RetryableError, FatalError, BackpressureError } from './errors.ts';
export { outcomeFromError } from './processor.ts';
export { FAILURE_CODES, failedEvent, isFailureCode } from './failure-codes.ts';
export type { FailureCode } from './failure-codes.ts';
export { partitionOf } from './partition.ts';

// For tools that drive Rill from outside (the bench): awaiting a condition, local services.
export { waitFor } from './wait.ts';
export { freePort, postgresAnswers, redisAnswers, startLocalPostgres, startLocalRedis } from './local-services.ts';
export type { LocalService } from './local-services.ts';
export { classifyKey, redisMemoryByFamily } from './redis-memory.ts';
export type { FamilyKind, FamilyMemory, MemoryOptions, RedisMemoryReport } from './redis-memory.ts';
export { parseDuration } from './duration.ts';
export { parseTopology } from './topology/load.ts';
export { planChains } from './topology/chains.ts';
export type { Chain } from './topology/chains.ts';
