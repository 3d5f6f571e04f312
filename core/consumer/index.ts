// The consumer engine's entry point for everything outside core/consumer: stages (the worker
// starts a StageRunner, which runs on a GroupConsumer) and sinks (each runs on a GroupConsumer of
// its input topic: its step runs in the consumer's loop, reads with the consumer's reader, and
// acknowledges, settles or dead-letters through it). The parts are listed in docs/architecture.md.
export { GroupConsumer } from './group-consumer.ts';
export type { GroupConsumerOptions, SinkSettle } from './group-consumer.ts';
export type { LaneReader, RawEntry } from './lane-reader.ts';
export { runLoop } from './loop.ts';
export type { Loop } from './loop.ts';
export { Settlement } from './settlement.ts';
export type { Output } from './settlement.ts';
export { StageRunner } from './stage-runner.ts';
export type { ChainedStageOptions, StageRunnerOptions } from './stage-runner.ts';
