// Tapping a topic: reading its events without joining any consumer group (read-only: XRANGE,
// XREAD, XINFO; nothing written, no group created, no pending entry touched).
//
// Every lane stream of every partition is read and merged in entry-id order (ids are
// `<ms>-<seq>`, so this is time order; ties go to the lower partition, then the higher lane).
// History is read with one pipelined XRANGE per refill (`COUNT batch` per stream, only for the
// streams whose buffer ran dry); in follow mode, once history is read, one XREAD BLOCK over all
// the streams per round waits for new entries. Filters (merchant, type) apply after decoding `ev`;
// a merchant filter also narrows the read to that merchant's partition (events are partitioned by
// merchant id in every topic).
// On Redis Cluster the pipelines go one per node, and follow mode polls (non-blocking XRANGEs after
// short idle waits) instead of XREAD BLOCK, which cannot span partitions' slots.
//
// Beyond the Redis window (history): every read is followed by XINFO STREAM of the streams read
// (after it, on the same connection). When a stream's first entry is then past the position and
// entries were ever removed from it, the entries between the position and what the read returned
// may have been trimmed: they are read from the topic's history (Postgres, see history.ts) and
// merged in before the Redis entries, per stream, so the seam has no gap and no duplicate even
// while retention trims under the tap. Trimming removes only a prefix of a stream, and XADD ids only
// grow, so "not in Redis, below what Redis returned" means "trimmed", and trimmed means
// acknowledged by the sink, i.e. in Postgres (a position whose entry was merely trimmed costs one
// history read that finds nothing). A topic without history (or a tap without access to it) refuses
// a start or cursor before the Redis window at open (TapHistoryUnavailableError) instead of skipping
// entries; past the open it reads Redis alone, as before. `earliest` is the oldest entry in Redis.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { F_EVENT, F_TX_ID } from '../entry.ts';
import type { Keys } from '../keys.ts';
import { partitionOf } from '../partition.ts';
import type { Topology } from '../topology/schema.ts';
import { isCluster, slotPipeline } from '../slot-pipeline.ts';
import { compareIds, idBefore, idMs } from '../stream-id.ts';
import { historyTopics } from './history.ts';
import { gapUpTo, streamEnds, toEnds } from './stream-ends.ts';
import type { StreamEnds } from './stream-ends.ts';
import type { TapHistory } from './history.ts';
import { decodeCursor, encodeCursor, endId, parseTapEnd, parseTapStart, startPosition } from './position.ts';
import { TapHistoryUnavailableError, UnknownTopicError } from '../errors.ts';
import type { StreamSlot, TapEnd, TapStart } from './position.ts';

export interface TapFilter {
  merchantId?: string;
  type?: string;
}

export interface TapOptions {
  /** A connection of the tap's own: a blocking read holds it. Closing it ends the tap. */
  redis: Redis;
  keys: Keys;
  topology: Topology;
  topic: string;
  /** Where to start (default: now). Ignored when `cursor` is given. */
  from?: TapStart | string;
  /** Resume exactly after the event this cursor came from (TapEvent.cursor()). */
  cursor?: string;
  /**
   * Where to stop (inclusive). Without `follow` the tap also stops at the streams' ends as they
   * were when it opened; with `follow` and `to`, it waits for live entries until the clock passes `to`.
   */
  to?: TapEnd | string;
  /** Keep reading new entries as they arrive (until aborted or `to`). */
  follow?: boolean;
  filter?: TapFilter;
  /** Entries per stream per read (default 500). */
  batch?: number;
  /** Longest single XREAD BLOCK in follow mode (default 5 s); an abort is seen at the latest then. */
  blockMs?: number;
  signal?: AbortSignal;
  /** Where entries trimmed from Redis are read back (history.ts); without it they are refused. */
  history?: TapHistory;
  /** History entries per Postgres read (default 2,000). */
  historyPage?: number;
}

export interface TapEvent {
  /** The stream entry id. */
  id: string;
  /** The lane stream's key. */
  stream: string;
  partition: number;
  lane: string;
  /** The entry's transaction id field. */
  tx: string | undefined;
  /** Read from Redis, or from the topic's history beyond the Redis window. */
  source: 'redis' | 'history';
  /** The decoded `ev` field. */
  event: Record<string, unknown>;
  /** The cursor to resume right after this event (computed when called). */
  cursor(): string;
}

export interface TapStats {
  /** Entries read from Redis (matching or not). */
  scanned: number;
  /** Events yielded. */
  delivered: number;
  /** Entries whose `ev` is not a JSON object: skipped. */
  undecodable: number;
  /** Events yielded from history (beyond the Redis window). */
  fromHistory: number;
}

interface Stream extends StreamSlot {
  key: string;
  index: number;
  /** Read this one (a merchant filter reads only that merchant's partition). */
  active: boolean;
  buf: Entry[];
  at: number;
  /** The last read returned less than a full batch: nothing more for now. */
  drained: boolean;
  /** Passed the end: nothing more, ever. */
  done: boolean;
  /** Inclusive end id, if any. */
  end: string | undefined;
  /** The end is at or before the stream's last entry at open: once drained, nothing more can come. */
  endClosed: boolean;
  /** The position once the buffer is used up (history read up to here, nothing more of this stream). */
  tail: string | undefined;
  /** Buffered entries before this index came from history. */
  fromHistory: number;
  /** `earliest`: the first read starts at the oldest entry Redis holds (no history asked for). */
  lenient: boolean;
  /** Entries up to here are known trimmed from Redis, so in history (undefined: none known). */
  trimmedTo: string | undefined;
}

/** An entry as Redis returns it: its id and fields. */
type RawEntry = [id: string, fields: string[]];
/** An entry's transaction id and event. */
interface Decoded {
  tx: string | undefined;
  event: Record<string, unknown>;
}
/** A buffered entry: a Redis entry's fields (decoded when it is yielded), or a history entry, decoded already. */
type Entry = [id: string, body: string[] | Decoded];

const DEFAULT_BATCH = 500;
const DEFAULT_BLOCK_MS = 5_000;
const DEFAULT_HISTORY_PAGE = 2_000;
/** After the clock passes `to`, entries up to it may still be on their way (clock skew, in-flight XADDs). */
const END_GRACE_MS = 1_000;
/** Redis Cluster, follow mode: the idle wait between two polls of the streams. */
const CLUSTER_IDLE_MS = 50;

/** Open a tap: checks the topic and resolves the start (so bad input fails here, not mid-stream). */
export async function openTap(o: TapOptions): Promise<TapReader> {
  const topic = o.topology.topics[o.topic];
  if (!topic) throw new UnknownTopicError(`no topic named "${o.topic}" in the topology (topics: ${Object.keys(o.topology.topics).join(', ')})`);
  const now = Date.now();
  const start = typeof o.from === 'string' ? parseTapStart(o.from, now) : (o.from ?? { kind: 'now' });
  const end = typeof o.to === 'string' ? parseTapEnd(o.to, now) : o.to;
  const slots: StreamSlot[] = [];
  for (let p = 0; p < topic.partitions; p++) for (const lane of o.topology.priorities) slots.push({ partition: p, lane: lane.name });
  const keys = slots.map((s) => o.keys.lane(o.topic, s.partition, s.lane));

  const needLast = (o.cursor === undefined && start.kind === 'now') || end?.kind === 'now' || !o.follow;
  // XINFO of every stream, once: its last ids, and (checkHistory) whether a start is before the Redis window
  const ends = needLast ? await streamEnds(o.redis, keys) : undefined;
  const last = ends?.map((e) => e.last);
  let positions: string[];
  if (o.cursor !== undefined) positions = decodeCursor(o.cursor, o.topic, slots);
  else if (start.kind === 'now') positions = last!;
  else positions = keys.map(() => startPosition(start));

  // without follow, stop at the streams' ends as of now (a tap of a busy topic still finishes)
  const closed = !o.follow || end?.kind === 'now';
  const endIds = keys.map((_, i): string | undefined => {
    const snapshot = closed ? last![i]! : undefined;
    const fixed = end && end.kind !== 'now' ? endId(end) : undefined;
    if (snapshot === undefined) return fixed;
    if (fixed === undefined) return snapshot;
    return compareIds(fixed, snapshot) <= 0 ? fixed : snapshot;
  });
  const only = o.filter?.merchantId === undefined ? undefined : partitionOf(o.filter.merchantId, topic.partitions);
  const streams: Stream[] = slots.map((slot, i) => ({
    ...slot,
    key: keys[i]!,
    index: i,
    active: only === undefined || slot.partition === only,
    buf: [],
    at: 0,
    drained: false,
    done: false,
    end: endIds[i],
    endClosed: closed,
    tail: undefined,
    fromHistory: 0,
    lenient: o.cursor === undefined && start.kind === 'earliest',
    trimmedTo: undefined,
  }));
  for (const s of streams) if (s.end !== undefined && compareIds(positions[s.index]!, s.end) >= 0) s.done = true;
  await checkHistory(o, streams, positions, ends);
  const liveUntil = o.follow && end && end.kind !== 'now' ? (end.kind === 'time' ? end.ms : idMs(end.id)) + END_GRACE_MS : undefined;
  return new TapReader(o, streams, positions, liveUntil);
}

/**
 * At open: a start before the Redis window needs history; refuse it here (not mid-stream) when there
 * is none. `known`: every stream's ends (by index), when open already read them.
 */
async function checkHistory(o: TapOptions, streams: readonly Stream[], positions: readonly string[], known: readonly StreamEnds[] | undefined): Promise<void> {
  const open = streams.filter((s) => s.active && !s.done && !s.lenient);
  if (!open.length) return;
  const ends = known
    ? open.map((s) => known[s.index]!)
    : await streamEnds(
        o.redis,
        open.map((s) => s.key),
      );
  const gaps = open.flatMap((s, i) => {
    const upTo = gapUpTo(positions[s.index]!, undefined, ends[i]!);
    return upTo === undefined ? [] : [{ s, upTo, oldest: ends[i]!.first }];
  });
  if (!gaps.length) return;
  if (o.history) return o.history.check();
  throw unavailable(o, gaps[0]!.s, positions[gaps[0]!.s.index]!, gaps[0]!.oldest);
}

function unavailable(o: TapOptions, s: StreamSlot, after: string, oldest: string | undefined): TapHistoryUnavailableError {
  const from = after === '0-0' ? 'the start' : new Date(idMs(after)).toISOString();
  const kept = oldest === undefined ? 'holds no entries now' : `holds entries from ${new Date(idMs(oldest)).toISOString()} (${oldest}) on`;
  const servable = historyTopics(o.topology);
  const why = servable.includes(o.topic)
    ? 'its history is in Postgres, which this tap cannot read'
    : `topic "${o.topic}" keeps no history beyond Redis (only ${servable.length ? servable.map((t) => `"${t}"`).join(', ') : "a postgres sink's input topic"} can be read back from Postgres)`;
  return new TapHistoryUnavailableError(
    `entries of ${o.topic} after ${from} are gone from Redis (partition ${s.partition}, lane ${s.lane} ${kept}) and ${why}: start later, or from earliest`,
  );
}

export class TapReader implements AsyncIterable<TapEvent> {
  readonly stats: TapStats = { scanned: 0, delivered: 0, undecodable: 0, fromHistory: 0 };
  private readonly batch: number;
  private readonly blockMs: number;
  private readonly historyPage: number;
  /**
   * The last history page read, by stream index, and up to where it holds every history entry of
   * a stream after `lo` (`whole`): only entries already trimmed when it was read are sure to be in
   * history, so a stream's part is whole up to what was then known trimmed of it.
   */
  private window: { lo: string; whole: Map<number, string>; byStream: Map<number, Entry[]> } | undefined;
  private started = false;

  constructor(
    private readonly o: TapOptions,
    private readonly streams: Stream[],
    /** Per stream (same order as `streams`): the last entry id seen. */
    private readonly positions: string[],
    private readonly liveUntil: number | undefined,
  ) {
    this.batch = Math.max(1, o.batch ?? DEFAULT_BATCH);
    this.blockMs = Math.max(1, o.blockMs ?? DEFAULT_BLOCK_MS);
    // a page cut inside a tie of ids keeps the rest of the tie for the next: more rows than streams
    this.historyPage = Math.max(o.historyPage ?? DEFAULT_HISTORY_PAGE, 2 * streams.length + 2);
  }

  /** The cursor right after the last entry read (delivered or filtered out). */
  cursor(): string {
    return encodeCursor(this.o.topic, this.streams, this.positions);
  }

  /** The lane streams this tap reads. */
  get keys(): string[] {
    return this.streams.filter((s) => s.active).map((s) => s.key);
  }

  [Symbol.asyncIterator](): AsyncGenerator<TapEvent> {
    if (this.started) throw new Error('a TapReader is read once');
    this.started = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<TapEvent> {
    const { signal } = this.o;
    const active = this.streams.filter((s) => s.active);
    const merchant = this.o.filter?.merchantId;
    const type = this.o.filter?.type;
    const heap = new HeadHeap();
    // streams whose buffer is empty but may have more: read before the next event goes out,
    // since one of them may hold the smallest id
    let refill = active.filter((s) => !s.done);
    for (;;) {
      if (signal?.aborted) return;
      if (refill.length) {
        const list = refill;
        refill = [];
        if (!(await this.unlessAborted(this.readRange(list)))) return;
        for (const s of list) {
          if (s.at < s.buf.length) heap.push(s);
          else if (!s.done && !s.drained) refill.push(s); // history read up to a page's end: on to the next
        }
        continue;
      }
      const next = heap.peek();
      if (!next) {
        if (active.every((s) => s.done)) return;
        if (!this.o.follow) return;
        if (this.liveUntil !== undefined && Date.now() > this.liveUntil) return;
        const wait = this.liveUntil === undefined ? this.blockMs : Math.min(this.blockMs, Math.max(1, this.liveUntil - Date.now()));
        const waiting = active.filter((s) => !s.done);
        if (!(await this.unlessAborted(this.readBlocking(waiting, wait)))) return;
        for (const s of waiting) {
          if (s.at < s.buf.length) heap.push(s);
          else if (!s.done && !s.drained) refill.push(s);
        }
        continue;
      }
      const source = next.at < next.fromHistory ? 'history' : 'redis';
      const [id, body] = next.buf[next.at++]!;
      this.positions[next.index] = id;
      if (next.at >= next.buf.length) {
        next.buf = [];
        next.at = 0;
        this.useTail(next);
        heap.pop();
        if (!next.done && !next.drained) refill.push(next);
      } else {
        heap.headChanged();
      }
      this.stats.scanned++;
      const decoded = Array.isArray(body) ? decode(body) : body;
      if (!decoded) {
        this.stats.undecodable++;
        continue;
      }
      const ev = decoded.event;
      if (merchant !== undefined && ev.merchant_id !== merchant) continue;
      if (type !== undefined && ev.type !== type) continue;
      this.stats.delivered++;
      if (source === 'history') this.stats.fromHistory++;
      const snapshot = this.positions.slice();
      const topic = this.o.topic;
      const streams = this.streams;
      yield {
        id,
        stream: next.key,
        partition: next.partition,
        lane: next.lane,
        tx: decoded.tx,
        source,
        event: ev,
        cursor: () => encodeCursor(topic, streams, snapshot),
      };
    }
  }

  /** false when the tap was aborted meanwhile (its connection closed under the read): stop quietly. */
  private async unlessAborted(read: Promise<void>): Promise<boolean> {
    try {
      await read;
    } catch (err) {
      if (this.o.signal?.aborted) return false;
      throw err;
    }
    return !this.o.signal?.aborted;
  }

  private async readRange(streams: readonly Stream[]): Promise<void> {
    const pipe = slotPipeline(this.o.redis);
    for (const s of streams) pipe.add(s.key, (q) => q.xrange(s.key, `(${this.positions[s.index]!}`, '+', 'COUNT', this.batch));
    // after the reads, on the same connection: what was trimmed by the time they ran shows here
    const history = this.o.history !== undefined;
    if (history) for (const s of streams) pipe.add(s.key, (q) => q.xinfo('STREAM', s.key));
    const res = await pipe.exec();
    const read = streams.map((_, i): RawEntry[] => {
      const [err, value] = res[i] ?? [new Error('no reply'), null];
      if (err) throw err;
      return value as RawEntry[];
    });
    if (!history) return streams.forEach((s, i) => this.take(s, read[i]!));
    const ends = streams.map((_, i) => toEnds(res[streams.length + i] ?? [new Error('no reply'), null]));
    await this.settle(streams, read, ends);
  }

  /** Buffer what a read returned, first reading from history what was trimmed before it. */
  private async settle(streams: readonly Stream[], read: RawEntry[][], ends: readonly StreamEnds[]): Promise<void> {
    const gaps: { s: Stream; upTo: string; entries: RawEntry[] }[] = [];
    streams.forEach((s, i) => {
      const entries = read[i]!;
      const upTo = gapUpTo(this.positions[s.index]!, entries[0]?.[0], ends[i]!);
      const lenient = s.lenient;
      s.lenient = false;
      if (upTo === undefined || lenient) return this.take(s, entries);
      if (s.trimmedTo === undefined || compareIds(upTo, s.trimmedTo) > 0) s.trimmedTo = upTo;
      gaps.push({ s, upTo, entries });
    });
    if (gaps.length) await this.fromHistory(gaps);
  }

  /**
   * Per stream: the history entries after its position up to `upTo`, then the Redis entries. One
   * history page serves every stream known to be trimmed (they move through it together, in id
   * order); a stream whose range passes what the page holds whole gets that part and reads on.
   */
  private async fromHistory(gaps: readonly { s: Stream; upTo: string; entries: RawEntry[] }[]): Promise<void> {
    const w0 = this.window;
    const covered = (s: Stream) => {
      const whole = w0?.whole.get(s.index);
      const pos = this.positions[s.index]!;
      return whole !== undefined && compareIds(w0!.lo, pos) <= 0 && compareIds(pos, whole) < 0;
    };
    if (!gaps.every((g) => covered(g.s))) {
      let lo = this.positions[gaps[0]!.s.index]!;
      for (const g of gaps) {
        const pos = this.positions[g.s.index]!;
        if (compareIds(pos, lo) < 0) lo = pos;
      }
      const known = this.streams.filter((s) => s.trimmedTo !== undefined && compareIds(s.trimmedTo, lo) > 0);
      let hi = lo;
      for (const s of known) if (compareIds(s.trimmedTo!, hi) > 0) hi = s.trimmedTo!;
      const page = await this.o.history!.page(lo, hi, this.historyPage, this.o.filter);
      if (page.length >= this.historyPage) {
        // a full page: complete only below its last id (the rest of that id's tie comes next)
        const lastId = page[page.length - 1]!.id;
        hi = idBefore(lastId);
        while (page.length && page[page.length - 1]!.id === lastId) page.pop();
      }
      const index = new Map(this.streams.map((s) => [`${s.partition}.${s.lane}`, s.index]));
      const byStream = new Map<number, Entry[]>();
      for (const e of page) {
        const i = index.get(`${e.partition}.${e.lane}`);
        if (i === undefined) continue; // a lane or partition the topology no longer has
        let list = byStream.get(i);
        if (!list) byStream.set(i, (list = []));
        list.push([e.id, { tx: e.tx, event: e.event }]);
      }
      const whole = new Map(known.map((s) => [s.index, compareIds(s.trimmedTo!, hi) <= 0 ? s.trimmedTo! : hi]));
      this.window = { lo, whole, byStream };
    }
    const w = this.window!;
    for (const { s, upTo, entries } of gaps) {
      const pos = this.positions[s.index]!;
      const whole = w.whole.get(s.index)!;
      const own = (w.byStream.get(s.index) ?? []).filter(([id]) => compareIds(id, pos) > 0 && compareIds(id, upTo) <= 0 && compareIds(id, whole) <= 0);
      if (compareIds(upTo, whole) <= 0) {
        this.take(s, [...own, ...entries], entries.length < this.batch, upTo);
        s.fromHistory = Math.min(own.length, s.buf.length);
      } else {
        this.take(s, own, false, whole);
        s.fromHistory = s.buf.length;
      }
      if (!s.buf.length) this.useTail(s);
    }
  }

  /** The buffer is used up: the position moves to where history was read to. */
  private useTail(s: Stream): void {
    if (s.tail !== undefined && compareIds(s.tail, this.positions[s.index]!) > 0) this.positions[s.index] = s.tail;
    s.tail = undefined;
    s.fromHistory = 0;
  }

  private async readBlocking(streams: readonly Stream[], blockMs: number): Promise<void> {
    if (!streams.length) return;
    if (isCluster(this.o.redis)) return this.poll(streams, blockMs);
    const reply = (await this.o.redis.xread(
      'COUNT',
      this.batch,
      'BLOCK',
      blockMs,
      'STREAMS',
      ...streams.map((s) => s.key),
      ...streams.map((s) => this.positions[s.index]!),
    )) as [string, RawEntry[]][] | null;
    if (!reply) return;
    const byKey = new Map(streams.map((s) => [s.key, s]));
    const got: Stream[] = [];
    const read: RawEntry[][] = [];
    for (const [key, entries] of reply) {
      const s = byKey.get(key);
      if (s) {
        got.push(s);
        read.push(entries);
      }
    }
    if (!got.length) return;
    if (!this.o.history) return got.forEach((s, i) => this.take(s, read[i]!));
    await this.settle(
      got,
      read,
      await streamEnds(
        this.o.redis,
        got.map((s) => s.key),
      ),
    );
  }

  /** Redis Cluster: XRANGE every stream after short idle waits, until something came or `blockMs` passed. */
  private async poll(streams: readonly Stream[], blockMs: number): Promise<void> {
    const until = Date.now() + blockMs;
    for (;;) {
      await sleep(Math.max(1, Math.min(CLUSTER_IDLE_MS, until - Date.now())), undefined, { signal: this.o.signal });
      await this.readRange(streams);
      if (Date.now() >= until || streams.some((s) => s.at < s.buf.length || s.done)) return;
    }
  }

  /** Buffer a read's entries, cut at the stream's end; `tail`: the position once they are used up. */
  private take(s: Stream, entries: Entry[], drained = entries.length < this.batch, tail?: string): void {
    s.drained = drained;
    s.tail = tail;
    s.fromHistory = 0;
    let keep = entries;
    if (s.end !== undefined) {
      const last = entries[entries.length - 1];
      const cut = !last || compareIds(last[0], s.end) <= 0 ? -1 : entries.findIndex(([id]) => compareIds(id, s.end!) > 0);
      if (cut >= 0) {
        keep = entries.slice(0, cut);
        s.done = true;
      } else if (s.endClosed && s.drained) {
        s.done = true; // the end is at or before the stream's end at open: nothing more will come
      }
    }
    s.buf = keep;
    s.at = 0;
    if (!keep.length && s.end !== undefined && compareIds(this.positions[s.index]!, s.end) >= 0) s.done = true;
  }
}

/** The next entry's id of a stream, parsed for cheap comparisons (ids past 2^53 compare as text). */
interface Head {
  ms: number;
  seq: number;
  exact: boolean;
}

function headOf(s: Stream): Head {
  const id = s.buf[s.at]![0];
  const dash = id.indexOf('-');
  const exact = dash <= 15 && id.length - dash - 1 <= 15;
  return { ms: exact ? Number(id.slice(0, dash)) : 0, seq: exact ? Number(id.slice(dash + 1)) : 0, exact };
}

/**
 * Streams with buffered entries, smallest next id on top (ties: the lower stream index, i.e. the
 * lower partition, then the higher lane): a k-way merge costs O(log streams) per entry.
 */
class HeadHeap {
  private readonly items: { s: Stream; h: Head }[] = [];

  peek(): Stream | undefined {
    return this.items[0]?.s;
  }

  push(s: Stream): void {
    this.items.push({ s, h: headOf(s) });
    this.up(this.items.length - 1);
  }

  pop(): void {
    const last = this.items.pop()!;
    if (this.items.length) {
      this.items[0] = last;
      this.down(0);
    }
  }

  /** The top stream moved on to its next entry. */
  headChanged(): void {
    const top = this.items[0]!;
    top.h = headOf(top.s);
    this.down(0);
  }

  private less(i: number, j: number): boolean {
    const a = this.items[i]!;
    const b = this.items[j]!;
    if (a.h.exact && b.h.exact) {
      if (a.h.ms !== b.h.ms) return a.h.ms < b.h.ms;
      if (a.h.seq !== b.h.seq) return a.h.seq < b.h.seq;
    } else {
      const c = compareIds(a.s.buf[a.s.at]![0], b.s.buf[b.s.at]![0]);
      if (c !== 0) return c < 0;
    }
    return a.s.index < b.s.index;
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.items.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(l, m)) m = l;
      if (r < n && this.less(r, m)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }

  private swap(i: number, j: number): void {
    const t = this.items[i]!;
    this.items[i] = this.items[j]!;
    this.items[j] = t;
  }
}

function decode(fields: readonly string[]): Decoded | undefined {
  let tx: string | undefined;
  let ev: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === F_TX_ID) tx = fields[i + 1];
    else if (fields[i] === F_EVENT) ev = fields[i + 1];
  }
  if (ev === undefined) return undefined;
  try {
    const event: unknown = JSON.parse(ev);
    if (typeof event !== 'object' || event === null || Array.isArray(event)) return undefined;
    return { tx, event: event as Record<string, unknown> };
  } catch {
    return undefined;
  }
}
