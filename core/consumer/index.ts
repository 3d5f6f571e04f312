// The consumer engine's entry point for everything outside core/consumer: stages (the worker
// starts a StageRunner) and sinks (a sink is a consumer group on its input topic: it reads with a
// LaneReader inside runLoop, acknowledges through a Settlement, and gives up on an entry with
// the dead-letter record). The parts behind it are listed in docs/architecture.md.
export { LaneReader } from './lane-reader.ts';
export type { RawEntry } from './lane-reader.ts';
export { runLoop } from './loop.ts';
export type { Loop } from './loop.ts';
export { Settlement } from './settlement.ts';
export type { Output } from './settlement.ts';
export { StageRunner } from './stage-runner.ts';
export type { ChainedStageOptions, StageRunnerOptions } from './stage-runner.ts';
export { deadLetterOutputs } from '../dead-letter/record.ts';
