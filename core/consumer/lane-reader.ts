// Reads a consumer group's next entries from one topic: every partition, every lane.
//  - after a (re)start, this consumer's own pending entries first (XREADGROUP ... 0);
//  - entries other consumers left idle past the visibility timeout, reclaimed with XAUTOCLAIM;
//  - then new entries, higher lanes before lower ones, each lower lane keeping its `min_share`;
//  - when every lane is empty, one blocking read over all of them.
// On Redis Cluster every command stays in one slot: a read over several partitions becomes one
// XREADGROUP per partition (concurrently, one pipeline per node), and instead of a blocking read
// (it would hold the node's connection) non-blocking reads after short idle waits.
import type { Redis } from 'ioredis';
import type { Keys } from '../keys.ts';
import type { PriorityConfig } from '../topology/schema.ts';
import { isCluster, slotPipeline } from '../slot-pipeline.ts';

export interface RawEntry {
  stream: string;
  partition: number;
  lane: string;
  id: string;
  /** null when the entry was trimmed away while pending. */
  fields: string[] | null;
  /** Deliveries to the group so far, this one included (a parked entry: takes of its queue's head). */
  deliveries: number;
  /** Set when the entry comes from an ordered stage's parked queue instead of its stream. */
  parked?: ParkedSource;
  /** In a chain of stages: the position of the stage it enters at (unset: the first). */
  level?: number;
}

/** Where a parked entry sits: its queue and the partition's park keys (see Keys.parked). */
export interface ParkedSource {
  queue: string;
  member: string;
  index: string;
  taken: string;
  count: string;
  /** The token this parked entry waits for, if any. */
  token?: string;
}

export interface LaneReaderOptions {
  /** A connection of its own: blocking reads hold it. */
  redis: Redis;
  keys: Keys;
  topic: string;
  partitions: readonly number[];
  lanes: readonly PriorityConfig[];
  group: string;
  consumer: string;
  visibilityTimeoutMs: number;
  /** Read redelivered entries one at a time (default true: stages); false for sinks. */
  isolateRedeliveries?: boolean;
  /** Clock (default Date.now), for simulation. */
  now?: () => number;
}

type StreamReply = [string, [string, string[] | null][]][] | null;

interface LaneStreams {
  lane: PriorityConfig;
  streams: string[];
}

/** Redis Cluster: the idle wait between two non-blocking reads when every lane is empty. */
const CLUSTER_IDLE_MS = 50;

const without = (list: readonly string[], skip: ReadonlySet<string>): string[] => (skip.size ? list.filter((s) => !skip.has(s)) : [...list]);

export class LaneReader {
  private lanes: LaneStreams[] = [];
  private readonly where = new Map<string, { partition: number; lane: string }>();
  private allStreams: string[] = [];
  private partitions: number[] = [];
  private recovering = true;
  private readonly pendingCursor = new Map<string, string>();
  private nextClaimAt = 0;
  /** Streams not to read from for now (an ordered stage holding a partition for a retry). */
  readonly paused = new Set<string>();
  private readonly cluster: boolean;
  private idle: (() => void) | undefined;
  private woken = false;

  /** Reconnects of the connection so far (a read spanning one may have lost a delivery). */
  private epoch = 0;

  constructor(private readonly o: LaneReaderOptions) {
    o.redis.on('close', () => this.epoch++);
    this.cluster = isCluster(o.redis);
    this.setPartitions(o.partitions);
  }

  /** The partitions this reader serves (an ordered stage's leases change them). */
  setPartitions(partitions: readonly number[]): void {
    const added = partitions.filter((p) => !this.partitions.includes(p));
    this.partitions = [...partitions].sort((a, b) => a - b);
    this.lanes = this.o.lanes.map((lane) => ({
      lane,
      streams: this.partitions.map((p) => {
        const key = this.o.keys.lane(this.o.topic, p, lane.name);
        this.where.set(key, { partition: p, lane: lane.name });
        return key;
      }),
    }));
    this.allStreams = this.lanes.flatMap((l) => l.streams);
    // entries this consumer holds in newly served partitions are read again first
    for (const p of added) for (const lane of this.o.lanes) this.pendingCursor.set(this.o.keys.lane(this.o.topic, p, lane.name), '0');
    for (const s of this.pendingCursor.keys()) if (!this.allStreams.includes(s)) this.pendingCursor.delete(s);
    if (added.length) this.recovering = true;
  }

  /**
   * After a failed read or settle: entries handed to this consumer may be pending without having
   * been settled (or even seen). Read this consumer's pending entries again, in order, before new ones.
   */
  recover(): void {
    for (const s of this.allStreams) this.pendingCursor.set(s, '0');
    this.recovering = true;
  }

  streamsOf(partition: number): string[] {
    return this.o.lanes.map((lane) => this.o.keys.lane(this.o.topic, partition, lane.name));
  }

  get streams(): readonly string[] {
    return this.allStreams;
  }

  /** Create the group on every lane stream; an existing group is left as it is. */
  async ensureGroups(partitions: readonly number[] = this.partitions, startId = '0'): Promise<void> {
    const pipe = slotPipeline(this.o.redis);
    for (const p of partitions) for (const s of this.streamsOf(p)) pipe.add(s, (q) => q.xgroup('CREATE', s, this.o.group, startId, 'MKSTREAM'));
    const res = await pipe.exec();
    for (const [err] of res) {
      if (err && !String(err.message).startsWith('BUSYGROUP')) throw err;
    }
  }

  /** Up to about `max` entries; waits up to `blockMs` only when nothing is ready. */
  async read(max: number, blockMs: number): Promise<RawEntry[]> {
    const epoch = this.epoch;
    try {
      const out = await this.readOnce(max, blockMs);
      if (epoch !== this.epoch) {
        // the connection dropped while reading: ioredis resent the read, whose first delivery
        // (reply lost) is pending here unseen. Take nothing from this reply; read this
        // consumer's pending entries first, in order (these included)
        this.rewind(this.allStreams);
        return [];
      }
      return out;
    } catch (err) {
      // a read whose reply was lost may still have delivered entries to this consumer: read this
      // consumer's pending entries first next time, or later entries would overtake them
      this.rewind(this.allStreams);
      throw err;
    }
  }

  private async readOnce(max: number, blockMs: number): Promise<RawEntry[]> {
    if (!this.allStreams.length) {
      // no partition leased (more consumers than partitions): wait, don't spin
      await new Promise((r) => setTimeout(r, Math.max(1, Math.min(blockMs, 250))));
      return [];
    }
    if (this.recovering) {
      const own = await this.readOwnPending(max);
      if (own.length) return own;
      // a paused stream (a retry held in place) keeps its cursor: its own pending entries come
      // before its new ones once it resumes
      if (!this.pendingCursor.size) this.recovering = false;
    }
    const now = this.o.now ?? Date.now;
    if (now() >= this.nextClaimAt) {
      this.nextClaimAt = now() + Math.max(250, Math.floor(this.o.visibilityTimeoutMs / 2));
      const claimed = await this.claimIdle(max);
      if (claimed.length) return claimed;
    }
    const ready = await this.readByPriority(max);
    if (ready.length || blockMs <= 0) return ready;
    return this.cluster ? this.readPolling(max, blockMs) : this.readBlocking(max, blockMs);
  }

  /** End an idle wait (Redis Cluster) at once: the consumer is stopping. */
  wake(): void {
    this.woken = true;
    this.idle?.();
  }

  private perStream(want: number): number {
    return Math.max(1, Math.ceil(want / Math.max(1, this.partitions.length)));
  }

  private async readByPriority(max: number): Promise<RawEntry[]> {
    const reserve = this.lanes.map((l) => Math.floor(l.lane.min_share * max));
    const out: RawEntry[] = [];
    for (let i = 0; i < this.lanes.length; i++) {
      const lowerReserve = reserve.slice(i + 1).reduce((a, b) => a + b, 0);
      const want = max - out.length - lowerReserve;
      const streams = without(this.lanes[i]!.streams, this.paused);
      if (want <= 0 || !streams.length) continue;
      const reply = await this.readGroup(
        streams,
        streams.map(() => '>'),
        this.perStream(want),
      );
      this.collect(reply, 1, out);
    }
    return out;
  }

  private async readBlocking(max: number, blockMs: number): Promise<RawEntry[]> {
    const streams = without(this.allStreams, this.paused);
    if (!streams.length) {
      await new Promise((r) => setTimeout(r, Math.min(blockMs, 100)));
      return [];
    }
    const reply = (await this.o.redis.xreadgroup(
      'GROUP',
      this.o.group,
      this.o.consumer,
      'COUNT',
      this.perStream(max),
      'BLOCK',
      blockMs,
      'STREAMS',
      ...streams,
      ...streams.map(() => '>'),
    )) as StreamReply;
    return this.collect(reply, 1, []);
  }

  /**
   * Redis Cluster: a blocking read would hold the node's connection, so poll: short idle waits
   * (a timer), each followed by non-blocking reads, until something is ready, `blockMs` has
   * passed or wake() is called.
   */
  private async readPolling(max: number, blockMs: number): Promise<RawEntry[]> {
    const until = Date.now() + blockMs;
    for (;;) {
      const left = until - Date.now();
      if (left <= 0 || this.woken) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(CLUSTER_IDLE_MS, left));
        this.idle = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.idle = undefined;
      if (this.woken) break;
      const ready = await this.readByPriority(max);
      if (ready.length) return ready;
    }
    this.woken = false;
    return [];
  }

  /**
   * XREADGROUP (never blocking) over `streams` from `ids`: one command, or on Redis Cluster one
   * per partition (one slot), all in one pipeline per node.
   */
  private async readGroup(streams: readonly string[], ids: readonly string[], count: number): Promise<StreamReply> {
    if (!this.cluster) {
      return (await this.o.redis.xreadgroup('GROUP', this.o.group, this.o.consumer, 'COUNT', count, 'STREAMS', ...streams, ...ids)) as StreamReply;
    }
    const byPartition = new Map<number, number[]>();
    streams.forEach((s, i) => {
      const p = this.where.get(s)?.partition ?? -1;
      const list = byPartition.get(p);
      if (list) list.push(i);
      else byPartition.set(p, [i]);
    });
    const pipe = slotPipeline(this.o.redis);
    for (const idx of byPartition.values()) {
      const keys = idx.map((i) => streams[i]!);
      pipe.add(keys[0]!, (q) => q.xreadgroup('GROUP', this.o.group, this.o.consumer, 'COUNT', count, 'STREAMS', ...keys, ...idx.map((i) => ids[i]!)));
    }
    const out: NonNullable<StreamReply> = [];
    for (const [err, reply] of await pipe.exec()) {
      if (err) throw err;
      if (reply) out.push(...(reply as NonNullable<StreamReply>));
    }
    return out.length ? out : null;
  }

  /**
   * Entries delivered to this consumer before a restart and never acknowledged, walked once with a
   * cursor per stream (an entry left pending again, e.g. to be retried, is not re-read in a loop).
   */
  private async readOwnPending(max: number): Promise<RawEntry[]> {
    // Stages: one entry at a time. Every read of the history counts a delivery, and entries coming
    // back from a crash must be tried alone, so a poison entry's crashes count against it only, not
    // against the batch mates it took down with it. Sinks run no code that crashes on an entry.
    if (this.o.isolateRedeliveries === false) return this.readOwnPendingBatch(max);
    for (const stream of without([...this.pendingCursor.keys()], this.paused)) {
      const reply = await this.readGroup([stream], [this.pendingCursor.get(stream)!], 1);
      const out = this.collect(reply, 0, []);
      if (!out.length) {
        this.pendingCursor.delete(stream);
        continue;
      }
      this.pendingCursor.set(stream, out[0]!.id);
      await this.fillDeliveries(out);
      return out;
    }
    return [];
  }

  /** Read these streams' own pending entries again first (a batch that failed around its processing). */
  rewind(streams: readonly string[]): void {
    for (const s of streams) if (this.allStreams.includes(s)) this.pendingCursor.set(s, '0');
    if (streams.length) this.recovering = true;
  }

  /** Own pending entries, up to about `max`, with a cursor per stream. */
  private async readOwnPendingBatch(max: number): Promise<RawEntry[]> {
    const streams = without([...this.pendingCursor.keys()], this.paused);
    if (!streams.length) return [];
    const reply = await this.readGroup(
      streams,
      streams.map((s) => this.pendingCursor.get(s)!),
      this.perStream(max),
    );
    const out = this.collect(reply, 0, []);
    const seen = new Set<string>();
    for (const e of out) {
      this.pendingCursor.set(e.stream, e.id);
      seen.add(e.stream);
    }
    for (const s of streams) if (!seen.has(s)) this.pendingCursor.delete(s);
    await this.fillDeliveries(out);
    return out;
  }

  /**
   * Entries idle past the visibility timeout (their consumer died or hung) become this consumer's
   * (XAUTOCLAIM JUSTID: no delivery counted yet), then are read back one at a time like its own.
   */
  private async claimIdle(max: number): Promise<RawEntry[]> {
    const streams = without(this.allStreams, this.paused);
    if (!streams.length) return [];
    const pipe = slotPipeline(this.o.redis);
    for (const s of streams) pipe.add(s, (q) => q.xautoclaim(s, this.o.group, this.o.consumer, this.o.visibilityTimeoutMs, '0-0', 'COUNT', 1000, 'JUSTID'));
    const res = await pipe.exec();
    res.forEach(([err, value], idx) => {
      if (err) throw err;
      const [, ids] = value as [string, string[]];
      if (ids.length) {
        this.pendingCursor.set(streams[idx]!, '0');
        this.recovering = true;
      }
    });
    return this.recovering ? this.readOwnPending(max) : [];
  }

  /** Delivery counts for re-read entries, from XPENDING (rare path: restarts and reclaims). */
  private async fillDeliveries(entries: RawEntry[]): Promise<void> {
    if (!entries.length) return;
    const byStream = new Map<string, RawEntry[]>();
    for (const e of entries) byStream.get(e.stream)?.push(e) ?? byStream.set(e.stream, [e]);
    const pipe = slotPipeline(this.o.redis);
    const order: RawEntry[][] = [];
    for (const [stream, list] of byStream) {
      pipe.add(stream, (q) => q.xpending(stream, this.o.group, list[0]!.id, list[list.length - 1]!.id, list.length + 10));
      order.push(list);
    }
    const res = await pipe.exec();
    res.forEach(([err, value], i) => {
      if (err) throw err;
      const counts = new Map((value as [string, string, number, number][]).map(([id, , , n]) => [id, n]));
      for (const e of order[i]!) e.deliveries = counts.get(e.id) ?? Math.max(e.deliveries, 1);
    });
  }

  private collect(reply: StreamReply, deliveries: number, out: RawEntry[]): RawEntry[] {
    if (!reply) return out;
    for (const [stream, entries] of reply) {
      for (const [id, fields] of entries) out.push(this.entry(stream, id, fields, deliveries));
    }
    return out;
  }

  private entry(stream: string, id: string, fields: string[] | null, deliveries: number): RawEntry {
    const w = this.where.get(stream);
    if (!w) throw new Error(`entry from unexpected stream ${stream}`);
    return { stream, partition: w.partition, lane: w.lane, id, fields, deliveries };
  }
}
