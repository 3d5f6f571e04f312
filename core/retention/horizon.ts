// The redelivery horizon of a stage: how long after an event was first processed the stage may be
// handed it again, so how long a per-event decision record (risk:<tx>) must live for a redelivery
// to get the same answer. An event comes back when its consumer dies before the atomic move (a
// reclaim after visibility_timeout, or its partition's new owner after lease_ttl) or when it is
// retried (a backoff of at most retry.max); each delivery counts as an attempt, and after
// `attempts` the event is dead-lettered. One more visibility timeout is the margin (a slow reclaim
// loop, clock steps). Past the horizon a redelivery (an operator's replay) is decided afresh.
import type { StageConfig } from '../topology/schema.ts';

export type RedeliveryTimes = Pick<StageConfig, 'visibility_timeout' | 'lease_ttl' | 'retry'>;

export function redeliveryHorizon(stage: RedeliveryTimes): number {
  const v = stage.visibility_timeout;
  return stage.retry.attempts * (v + stage.lease_ttl + stage.retry.max) + v;
}
