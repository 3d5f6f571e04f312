// Replaying a consumer group from a point in time (or an entry id): every lane stream of the
// group's input topic gets its last-delivered id moved back to just before the start (XGROUP
// SETID), so the group reads those entries again. Only backwards: a stream the group has not yet
// read up to the start is left alone (its entries come anyway). Entries still pending (delivered,
// not acknowledged) stay pending as they are. Re-processing is safe because every effect is
// idempotent by transaction id.
//
// Only what Redis still holds can be delivered again: a start before a stream's oldest entry (the
// hot window trimmed the rest) replays from that entry on, and the plan says so (`trimmed`).
// History in Postgres is not fed back into a consumer group (its rows are results, not the
// group's input); a postgres sink's input topic can be read from there with `rill tap --from`.
import type { Redis } from 'ioredis';
import { ConfigError } from './errors.ts';
import type { Keys } from './keys.ts';
import type { Topology } from './topology/schema.ts';
import { slotPipeline } from './slot-pipeline.ts';
import { historyTopics } from './tap/history.ts';
import { gapUpTo, toEnds } from './tap/stream-ends.ts';
import { compareIds, idBefore } from './stream-id.ts';
import { startId } from './tap/position.ts';
import { TapInputError } from './errors.ts';
import type { TapStart } from './tap/position.ts';

export interface ReplayTarget {
  group: string;
  kind: 'stage' | 'sink';
  /** The group's input topic. */
  topic: string;
}

/** The stage or sink named `group` and the topic it reads; anything else is refused. */
export function replayTarget(topology: Topology, group: string): ReplayTarget {
  const stage = topology.stages[group];
  if (stage) return { group, kind: 'stage', topic: stage.input };
  const sink = topology.sinks[group];
  if (sink) return { group, kind: 'sink', topic: sink.input };
  const known = [...Object.keys(topology.stages), ...Object.keys(topology.sinks)];
  throw new ConfigError(`"${group}" is not a stage or sink of the topology (groups: ${known.join(', ') || 'none'})`);
}

export type ReplayStreamState =
  /** The group read past the start here: moved back, `again` entries come again. */
  | 'reset'
  /** The group has not read up to the start here: left alone. */
  | 'behind'
  /** The group does not exist on this stream yet (its first worker creates it and reads everything). */
  | 'no-group'
  /** The stream does not exist. */
  | 'no-stream';

export interface ReplayStream {
  stream: string;
  partition: number;
  lane: string;
  state: ReplayStreamState;
  /** The group's last-delivered id before the replay. */
  lastDelivered?: string;
  /** Redis's entries-read counter of the group (null when Redis cannot tell). */
  entriesRead?: number | null;
  /** Entries from the start up to the last delivered one: delivered again. */
  again: number;
  /** Entries delivered and not acknowledged: not touched. */
  pending: number;
  /** Reset streams: entries after the start were trimmed; Redis holds this stream from `oldest` on. */
  trimmed?: boolean;
  oldest?: string;
}

export interface ReplayPlan {
  target: ReplayTarget;
  /** The first entry id delivered again (0-0: from the beginning). */
  start: string;
  /** What the group's last-delivered id is set to. */
  setId: string;
  streams: ReplayStream[];
  /** Entries delivered again, all streams. */
  total: number;
  /** Pending entries on the reset streams (unaffected). */
  pending: number;
  /** Reset streams whose entries after the start were partly trimmed: those are not delivered again. */
  trimmed: number;
  /** From this entry on every reset stream is whole again (the latest oldest entry of the trimmed ones). */
  wholeFrom?: string;
  /** The topic's history beyond Redis is in Postgres (readable with tap, not replayable). */
  historyInPostgres: boolean;
}

export interface PlanOptions {
  /** Called as entries are counted (long ranges take a while). */
  onCounted?: (counted: number) => void;
  /** Entries per XRANGE while counting (default 10,000). */
  pageSize?: number;
}

/** Work out what a replay would do; changes nothing. */
export async function planReplay(redis: Redis, keys: Keys, topology: Topology, group: string, from: TapStart, opts: PlanOptions = {}): Promise<ReplayPlan> {
  const target = replayTarget(topology, group);
  if (from.kind === 'now') throw new TapInputError('a replay starts in the past: give a time, a duration back (10m), an entry id or earliest');
  const start = startId(from);
  const setId = idBefore(start);
  const partitions = topology.topics[target.topic]!.partitions;
  const slots: { partition: number; lane: string; stream: string }[] = [];
  for (let p = 0; p < partitions; p++) {
    for (const lane of topology.priorities) slots.push({ partition: p, lane: lane.name, stream: keys.lane(target.topic, p, lane.name) });
  }

  const pipe = slotPipeline(redis);
  for (const s of slots) pipe.add(s.stream, (q) => q.xinfo('GROUPS', s.stream));
  for (const s of slots) pipe.add(s.stream, (q) => q.xinfo('STREAM', s.stream));
  const res = await pipe.exec();
  const streams: ReplayStream[] = [];
  let counted = 0;
  for (const [i, slot] of slots.entries()) {
    const [err, value] = res[i] ?? [new Error('no reply'), null];
    const base = { stream: slot.stream, partition: slot.partition, lane: slot.lane, again: 0, pending: 0 };
    if (err) {
      if (!/no such key/i.test(err.message)) throw err;
      streams.push({ ...base, state: 'no-stream' });
      continue;
    }
    const info = (value as unknown[][]).map(toMap).find((g) => g.get('name') === group);
    if (!info) {
      streams.push({ ...base, state: 'no-group' });
      continue;
    }
    const lastDelivered = String(info.get('last-delivered-id'));
    const raw = info.get('entries-read');
    const entriesRead = raw === null || raw === undefined ? null : Number(raw);
    const pending = Number(info.get('pending') ?? 0);
    if (compareIds(lastDelivered, start) < 0) {
      streams.push({ ...base, state: 'behind', lastDelivered, entriesRead, pending });
      continue;
    }
    const again = await countRange(redis, slot.stream, start, lastDelivered, opts.pageSize ?? 10_000, (n) => opts.onCounted?.(counted + n));
    counted += again;
    const ends = toEnds(res[slots.length + i] ?? [new Error('no reply'), null]);
    const trimmed = gapUpTo(setId, undefined, ends) !== undefined;
    streams.push({
      ...base,
      state: 'reset',
      lastDelivered,
      entriesRead,
      again,
      pending,
      ...(trimmed ? { trimmed, ...(ends.first ? { oldest: ends.first } : {}) } : {}),
    });
  }
  const reset = streams.filter((s) => s.state === 'reset');
  const trimmed = reset.filter((s) => s.trimmed);
  let wholeFrom: string | undefined;
  for (const s of trimmed) if (s.oldest !== undefined && (wholeFrom === undefined || compareIds(s.oldest, wholeFrom) > 0)) wholeFrom = s.oldest;
  return {
    target,
    start,
    setId,
    streams,
    total: reset.reduce((n, s) => n + s.again, 0),
    pending: reset.reduce((n, s) => n + s.pending, 0),
    trimmed: trimmed.length,
    ...(wholeFrom !== undefined ? { wholeFrom } : {}),
    historyInPostgres: historyTopics(topology).includes(target.topic),
  };
}

/** Move the group back on every stream the plan resets. Resolves to the number of streams reset. */
export async function applyReplay(redis: Redis, plan: ReplayPlan): Promise<number> {
  const reset = plan.streams.filter((s) => s.state === 'reset');
  if (!reset.length) return 0;
  const pipe = slotPipeline(redis);
  for (const s of reset) {
    // keep Redis's lag figure right: the group has now read `again` entries fewer
    if (typeof s.entriesRead === 'number' && Number.isFinite(s.entriesRead)) {
      const entriesRead = s.entriesRead;
      pipe.add(s.stream, (q) => q.xgroup('SETID', s.stream, plan.target.group, plan.setId, 'ENTRIESREAD', Math.max(0, entriesRead - s.again)));
    } else {
      pipe.add(s.stream, (q) => q.xgroup('SETID', s.stream, plan.target.group, plan.setId));
    }
  }
  const res = await pipe.exec();
  for (const [err] of res) if (err) throw err;
  return reset.length;
}

/** Entries with start <= id <= end. */
async function countRange(redis: Redis, stream: string, start: string, end: string, page: number, progress: (n: number) => void): Promise<number> {
  let n = 0;
  let from = start === '0-0' ? '-' : start;
  for (;;) {
    const entries = (await redis.xrange(stream, from, end, 'COUNT', page)) as [string, string[]][];
    n += entries.length;
    if (entries.length) progress(n);
    if (entries.length < page) return n;
    from = `(${entries[entries.length - 1]![0]}`;
  }
}

function toMap(flat: unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(String(flat[i]), flat[i + 1]);
  return m;
}
