// The package's public surface for processor plugins: `import type { ProcessorFactory } from 'rill'`.
export type { Processor, ProcessorFactory, ProcessorContext, Outcome, StreamEvent, Emitted } from './processor.ts';
export type { TransactionEvent, TransactionType, TransactionStatus, LedgerLine } from './event.ts';
export { RetryableError, FatalError, BackpressureError } from './errors.ts';
export { outcomeFromError } from './processor.ts';
export { FAILURE_CODES, failedEvent, isFailureCode } from './failure-codes.ts';
export type { FailureCode } from './failure-codes.ts';
export { partitionOf } from './partition.ts';
export { classifyKey, redisMemoryByFamily } from './redis-memory.ts';
export type { FamilyKind, FamilyMemory, MemoryOptions, RedisMemoryReport } from './redis-memory.ts';
