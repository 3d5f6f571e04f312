// The shapes one batch passes between the consumer engine's parts: the task's stages, what the
// batch knows (keys, lanes, clock), an entry on its way through the stages, and what the runner
// does with the outcome.
import type { Keys } from '../keys.ts';
import type { LaneMap } from '../lanes.ts';
import type { Outcome, Processor } from '../processor.ts';
import type { StageConfig, Topology } from '../topology/schema.ts';
import type { TransactionEvent } from '../event.ts';
import type { Span } from '../tracing.ts';
import type { RawEntry } from './lane-reader.ts';
import type { Parking } from './parking.ts';

/** One stage of a task, as the batch needs it. */
export interface TaskStage {
  name: string;
  config: StageConfig;
  processor: Processor;
  /** ordering: key stages: this stage's parked queues (mirror). */
  parking?: Parking;
  /** ordering: none: a retry waits in the delay set; the runner moves it back when due. */
  onDelayed?: (dueAt: number) => void;
}

export interface BatchContext {
  stages: readonly TaskStage[];
  topology: Topology;
  keys: Keys;
  lanes: LaneMap;
  laneIndex: ReadonlyMap<string, number>;
  now: number;
  random?: () => number;
}

/** What the runner does after the settle: metrics, logs and the parking mirrors. */
export interface BatchResult {
  /** Per stage name: outcome → count. */
  counts: Map<string, Record<'ok' | 'retry' | 'dead_letter' | 'parked', number>>;
  /** Per stage index: parked queues settled in this batch (partition → members). */
  touched: Map<number, Set<string>>[];
  deadLettered: Record<string, unknown>[];
  spans: { span: Span | undefined; outcome: Outcome | undefined }[];
}

/**
 * How the settle treats an entry of the batch: `ack` it; `keep` it (a parked head that stays its
 * queue's head, its fields rewritten); `skip` it (a later entry of a queue whose head stays parked).
 */
export type EntrySettle = 'ack' | 'keep' | 'skip';

/** An entry's event on its way through the stages. */
export interface Item {
  /** Position of its entry in the batch. */
  index: number;
  raw: RawEntry;
  /** At the stage it was read for: `raw` (fields, stream, parked source) is this stage's input. */
  start: boolean;
  /** The event, once decoded or handed on by the stage before. */
  event?: TransactionEvent;
  lane: string;
  /** W3C trace context of the span that produced it (the ingest request's, or the stage before's). */
  traceparent?: string;
  /** The entry as this stage reads it; built only when needed (parking, dead letters). */
  fields?: string[] | null;
}
