// Dead letters, as operators manage them (`rill dlq`, the console): list, show, redrive, purge,
// across every stage's and sink's dead-letter streams in every partition. One object over the
// modules beside it: scope.ts (which streams, ids), list.ts, redrive.ts, purge.ts; the record
// itself is record.ts.
import { getDeadLetter, listDeadLetters } from './list.ts';
import type { DeadLetterList, ListFilter } from './list.ts';
import { purgeDeadLetters } from './purge.ts';
import type { DeadLetter } from './record.ts';
import { REDRIVE_SCRIPT, redriveDeadLetters } from './redrive.ts';
import type { RedriveResult, RedriveSelection } from './redrive.ts';
import { DeadLetterScope } from './scope.ts';
import type { Keys } from '../keys.ts';
import { defineScripts } from '../redis.ts';
import type { RedisClient } from '../redis.ts';
import type { Topology } from '../topology/schema.ts';

export type { DeadLetter } from './record.ts';
export type { DeadLetterList, ListFilter } from './list.ts';
export { REDRIVE_SCRIPT } from './redrive.ts';
export type { RedriveResult, RedriveSelection } from './redrive.ts';

export class DeadLetters extends DeadLetterScope {
  constructor(redis: RedisClient, keys: Keys, topology: Topology) {
    super(redis, keys, topology);
    defineScripts(redis, [REDRIVE_SCRIPT]);
  }

  list(filter: ListFilter = {}): Promise<DeadLetterList> {
    return listDeadLetters(this, filter);
  }

  get(id: string): Promise<DeadLetter | undefined> {
    return getDeadLetter(this, id);
  }

  /** Put dead letters back on the stream they came from, keeping their transaction ids. */
  redrive(sel: RedriveSelection, opts: { dryRun?: boolean } = {}): Promise<RedriveResult> {
    return redriveDeadLetters(this, sel, opts);
  }

  /** Delete dead letters for good (these ids, or all of a stage, or all); returns how many. */
  purge(filter: { stage?: string; ids?: readonly string[] } = {}): Promise<number> {
    return purgeDeadLetters(this, filter);
  }
}
