// Redrive: put dead letters back on the stream they came from, keeping their transaction ids
// (one redrive script per letter, pipelined per partition).
import { DEAD_LETTER_FIELD, fieldRecord } from './record.ts';
import type { StoredDeadLetter } from './record.ts';
import type { DeadLetterScope } from './scope.ts';
import { LaneMap } from '../lanes.ts';
import { execAll, runScript } from '../redis.ts';
import type { ScriptSource } from '../redis.ts';
import { coreScript } from '../scripts.ts';

export const REDRIVE_SCRIPT: ScriptSource = coreScript('redrive');

const PAGE = 500;

export type RedriveSelection = { ids: readonly string[] } | { all: true; stage?: string; since?: number };

export interface RedriveResult {
  /** Redriven now (or, on a dry run, that would be). */
  redriven: number;
  /** Ids asked for that are not (or no longer) in a dead-letter stream. */
  missing: string[];
  /** Dead letters Redis refused to redrive (no event in them); they stay where they are. */
  failed: { id: string; error: string }[];
}

/**
 * `all` takes the dead letters present when it starts; ones that fail again and come back are
 * not chased. Needs REDRIVE_SCRIPT defined on the client.
 */
export async function redriveDeadLetters(scope: DeadLetterScope, sel: RedriveSelection, opts: { dryRun?: boolean } = {}): Promise<RedriveResult> {
  const run = new Redrive(scope, opts.dryRun ?? false);
  if ('ids' in sel) {
    await run.ids(sel.ids);
    return run.res;
  }
  const stages = scope.selectStages(sel.stage);
  const start = sel.since === undefined ? '-' : String(Math.max(0, Math.floor(sel.since)));
  await Promise.all(
    scope.partitionList(stages).map(async (p) => {
      for (const stage of stages) if (p < scope.partitions(stage)) await run.stream(stage, p, start);
    }),
  );
  return run.res;
}

class Redrive {
  // filled in place by the partitions' tasks (increments after each await, never across one)
  readonly res: RedriveResult = { redriven: 0, missing: [], failed: [] };
  private readonly lanes: LaneMap;

  constructor(
    private readonly scope: DeadLetterScope,
    private readonly dryRun: boolean,
  ) {
    this.lanes = new LaneMap(scope.topology.priorities);
  }

  async ids(ids: readonly string[]): Promise<void> {
    const { redis, keys } = this.scope;
    const byPartition = new Map<number, { id: string; stage: string; entryId: string }[]>();
    for (const id of new Set(ids)) {
      const { stage, partition, entryId } = this.scope.parseId(id);
      byPartition.get(partition)?.push({ id, stage, entryId }) ?? byPartition.set(partition, [{ id, stage, entryId }]);
    }
    await Promise.all(
      [...byPartition].map(async ([p, wanted]) => {
        const read = redis.pipeline();
        for (const w of wanted) read.xrange(keys.deadLetter(w.stage, p), w.entryId, w.entryId);
        const found = await execAll(read);
        const present: { stage: string; raw: StoredDeadLetter }[] = [];
        found.forEach((reply, i) => {
          const raw = (reply as StoredDeadLetter[])[0];
          if (raw) present.push({ stage: wanted[i]!.stage, raw });
          else this.res.missing.push(wanted[i]!.id);
        });
        if (this.dryRun) this.res.redriven += present.length;
        else await this.entries(p, present, true);
      }),
    );
  }

  /** One stream, page by page, up to the last entry present when it starts. */
  async stream(stage: string, p: number, start: string): Promise<void> {
    const { redis, keys } = this.scope;
    const key = keys.deadLetter(stage, p);
    const last = (await redis.xrevrange(key, '+', '-', 'COUNT', 1)) as StoredDeadLetter[];
    if (!last[0]) return;
    const end = last[0][0];
    let from = start;
    for (;;) {
      const page = (await redis.xrange(key, from, end, 'COUNT', PAGE)) as StoredDeadLetter[];
      if (this.dryRun) this.res.redriven += page.length;
      else
        await this.entries(
          p,
          page.map((raw) => ({ stage, raw })),
          false,
        );
      if (page.length < PAGE) return;
      from = `(${page[page.length - 1]![0]}`;
    }
  }

  /**
   * One pipeline of redrive scripts for one partition. An entry gone meanwhile (another redrive,
   * a purge) counts as missing when it was asked for by id; a refused one as failed.
   */
  private async entries(p: number, entries: readonly { stage: string; raw: StoredDeadLetter }[], byId: boolean): Promise<void> {
    if (!entries.length) return;
    const { redis, keys } = this.scope;
    const pipe = redis.pipeline();
    for (const { stage, raw } of entries) {
      void runScript(pipe, REDRIVE_SCRIPT, [keys.deadLetter(stage, p), this.originOf(stage, p, raw), keys.deadLetterIndex(p)], [raw[0]]);
    }
    const replies = (await pipe.exec()) ?? [];
    replies.forEach(([err, moved], i) => {
      const id = `${entries[i]!.stage}/${p}/${entries[i]!.raw[0]}`;
      if (err) this.res.failed.push({ id, error: err.message });
      else if (moved) this.res.redriven++;
      else if (byId) this.res.missing.push(id);
    });
  }

  /**
   * The stream a dead letter goes back to: its recorded origin when that is one of its stage's
   * input lanes in this partition (the lanes may have been renamed since), else the lane its
   * event type maps to now.
   */
  private originOf(stage: string, p: number, raw: StoredDeadLetter): string {
    const { keys, topology } = this.scope;
    const input = this.scope.inputOf(stage)!;
    const fields = fieldRecord(raw[1]);
    const recorded = fields[DEAD_LETTER_FIELD.originStream];
    if (recorded && topology.priorities.some((l) => keys.lane(input, p, l.name) === recorded)) return recorded;
    let type = '';
    try {
      type = String((JSON.parse(fields[DEAD_LETTER_FIELD.event] ?? '{}') as { type?: unknown }).type ?? '');
    } catch {
      // unreadable body: the lowest lane; the stage will dead-letter it again with the reason
    }
    return keys.lane(input, p, this.lanes.laneOf(type));
  }
}
