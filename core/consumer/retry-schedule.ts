// Retry scheduling: how many attempts an entry has had, the fields a retried entry carries, where
// an unordered stage's retry waits (the delay set), and moving due retries back onto the input
// streams. The backoff policy itself is core/retry.ts.
import { F_ATTEMPTS, F_EVENT, F_FIRST_FAILED, F_TRACE, F_TX_ID, fieldOf, fieldsToMap } from '../entry.ts';
import type { BatchContext, Item, TaskStage } from './batch-types.ts';
import type { RawEntry } from './lane-reader.ts';
import type { Output } from './settlement.ts';
import type { Keys } from '../keys.ts';
import type { RedisClient } from '../redis.ts';
import { runScript } from '../redis.ts';
import { coreScript } from '../scripts.ts';
import { slotPipeline } from '../slot-pipeline.ts';
import { faultPoint } from '../faults.ts';

const MOVE_DUE = coreScript('moveDue');

/** Attempts so far, this delivery included: earlier retries' count (at this stage) + deliveries. */
export function attemptOf(item: Item): number {
  const deliveries = Math.max(1, item.raw.deliveries);
  if (!item.start || !item.raw.fields) return deliveries;
  return Number(fieldOf(item.raw.fields, F_ATTEMPTS) ?? 0) + deliveries;
}

/** A retry (ordering none) waits in the delay set, keeping its attempts and first failure time. */
export function delayed(ctx: BatchContext, stage: TaskStage, raw: RawEntry, fields: string[], dueAt: number): Output {
  const member = JSON.stringify({ l: ctx.laneIndex.get(raw.lane) ?? 1, f: fields, u: `${raw.stream}/${raw.id}` });
  return { op: 'zadd', key: ctx.keys.delay(stage.name, raw.partition), score: dueAt, member };
}

/** The parked entry's fields: the event as read, with its attempts so far and first failure time. */
export function retryFields(raw: RawEntry, attempts: number, now: number): string[] {
  const map = fieldsToMap(raw.fields!);
  const fields = [F_TX_ID, map.get(F_TX_ID)!, F_EVENT, map.get(F_EVENT)!, F_ATTEMPTS, String(attempts), F_FIRST_FAILED, map.get(F_FIRST_FAILED) ?? String(now)];
  const tp = map.get(F_TRACE);
  if (tp) fields.push(F_TRACE, tp);
  return fields;
}

export interface DueRetriesOptions {
  redis: RedisClient;
  keys: Keys;
  stage: string;
  partitions: number;
  streamsOf: (partition: number) => readonly string[];
  now: () => number;
}

/** An unordered stage's delayed retries: when they are due to be moved back, and the move. */
export class DueRetries {
  private nextMove = 0;

  constructor(private readonly o: DueRetriesOptions) {}

  /** When to move next. */
  get nextMoveAt(): number {
    return this.nextMove;
  }

  /** A retry waits in the delay set until `dueAt`: move no later than that. */
  readonly onDelayed = (dueAt: number): void => {
    this.nextMove = Math.min(this.nextMove, dueAt);
  };

  /**
   * Move due retries from the delay sets back onto the input streams (all partitions, one round
   * trip); the next move is due at once when a set had more than one call's worth.
   */
  async move(): Promise<void> {
    const o = this.o;
    const pipe = slotPipeline(o.redis);
    const now = o.now();
    for (let p = 0; p < o.partitions; p++) {
      const keys = [o.keys.delay(o.stage, p), ...o.streamsOf(p)];
      pipe.add(keys[0]!, (q) => void runScript(q, MOVE_DUE, keys, [now, 1000]));
    }
    const res = await pipe.exec();
    let next = o.now() + 1_000;
    for (const [err, v] of res) {
      if (err) throw err;
      const [moved, nextDue] = v as [number, string | number];
      if (moved >= 1000) next = o.now();
      const due = Number(nextDue);
      if (due >= 0) next = Math.min(next, due);
    }
    faultPoint('move-due-after');
    this.nextMove = next;
  }
}
