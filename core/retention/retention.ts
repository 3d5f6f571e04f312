// Topic retention: Redis is the hot tier. Each lane stream is trimmed by its topic's `retention`
// (the hot window, a byte cap for the whole topic, entries per lane), but never of an entry some
// consumer group has not acknowledged. A pass looks at every partition (groups, lengths and, for
// topics with a byte cap, memory), then trims each partition: every pipeline holds one
// partition's keys only (one hash tag, one Redis Cluster slot), partitions side by side.
//
// Safe with concurrent passes (several workers, or a pass overlapping a slow one): a group's
// safe point only moves forward, so a cut computed from an older look is still safe, and XTRIM
// MINID is idempotent; each removed entry is counted by the one XTRIM that removed it.
// Not covered: a group moved back (XGROUP SETID, replay) or created at 0 while a pass runs can find
// older entries gone, as it could after any earlier pass.
import type { Keys } from '../keys.ts';
import type { Logger } from '../logger.ts';
import type { Registry } from '../metrics.ts';
import { counter, gauge } from '../metrics.ts';
import type { RedisClient, RedisPipeline } from '../redis.ts';
import type { Topology } from '../topology/schema.ts';
import { readersOf } from '../topology/readers.ts';
import { execAll } from '../redis.ts';
import { checkLag, hotWindow, lenLimit, safePoint, trimCut } from './plan.ts';
import type { GroupState, Retention } from './plan.ts';
import { nextId } from '../stream-id.ts';

/** At most this many entries are trimmed for max_len or max_bytes per stream and pass (reads their ids). */
export const MAX_LEN_TRIM_PER_PASS = 10_000;
/** How soon the next pass runs when one stopped at that cap. */
const CATCH_UP_MS = 1_000;
/** A warning that persists is logged again after this long. */
const WARN_LOG_EVERY_MS = 10 * 60_000;

export interface RetentionOptions {
  redis: RedisClient;
  keys: Keys;
  topology: Topology;
  registry: Registry;
  logger: Logger;
  /** Between passes (default 60 s). */
  intervalMs?: number;
  /** Clock for the hot window (tests). */
  now?: () => number;
  /**
   * The longest a topic waits between timed passes (default intervalMs: every topic every pass).
   * Each topic is passed every tenth of its hot window within [intervalMs, slowestMs].
   */
  slowestMs?: number;
  /** Asked before each timed pass; false skips it (another process leads this interval). */
  shouldRun?: () => Promise<boolean>;
}

export interface StreamTrim {
  topic: string;
  partition: number;
  lane: string;
  stream: string;
  /** The XTRIM MINID threshold used, or undefined when nothing could be trimmed. */
  cut?: string;
  trimmed: number;
  /** Why nothing may be trimmed here. */
  skipped?: 'no-stream' | 'no-groups' | 'missing-group';
}

export interface LagWarning {
  topic: string;
  group: string;
  stream: string;
  oldestAgeMs: number | null;
  backlog: number | null;
}

export interface TrimReport {
  trimmed: number;
  streams: StreamTrim[];
  warnings: LagWarning[];
  /** Some stream hit MAX_LEN_TRIM_PER_PASS: more to trim. */
  more: boolean;
}

export interface RetentionHandle {
  stop(): Promise<void>;
  /** One pass over every topic (or those given). */
  runOnce(topics?: ReadonlySet<string>): Promise<TrimReport>;
}

interface LaneStream {
  topic: string;
  lane: string;
  key: string;
  retention: Retention;
  /** Stages and sinks the topology declares on this topic: each needs its group. */
  consumers: string[];
}

interface Inspected extends LaneStream {
  length: number;
  /** MEMORY USAGE, for topics with a byte cap. */
  bytes: number;
  groups: GroupState[] | undefined;
}

/**
 * How often retention passes run: `ceiling`, or a tenth of the shortest hot window when that is
 * shorter (at least 1 s), so a topic kept for a minute is trimmed every 6 s, not every 30, and
 * holds about its window of entries rather than up to 1.5 times it.
 */
export function retentionInterval(topology: Topology, ceilingMs: number): number {
  return Math.min(ceilingMs, ...Object.values(topology.topics).map((t) => topicInterval(t.retention, ceilingMs)));
}

/** How often one topic needs a pass: a tenth of its hot window, within [1 s, ceiling]. */
function topicInterval(r: Retention | undefined, ceilingMs: number): number {
  const hot = r ? hotWindow(r) : undefined;
  return hot === undefined ? ceilingMs : Math.max(1_000, Math.min(ceilingMs, Math.floor(hot / 10)));
}

export function startRetention(o: RetentionOptions): RetentionHandle {
  const intervalMs = o.intervalMs ?? 60_000;
  const now = o.now ?? Date.now;
  const trimmedTotal = counter(o.registry, 'rill_retention_trimmed_total', 'Entries removed from topic lane streams by retention', ['topic', 'lane']);
  const lagWarning = gauge(o.registry, 'rill_retention_lag_warning', '1 while a group is so far behind that retention cannot hold the topic to its limits', [
    'topic',
    'group',
  ]);
  const warned = new Map<string, number>(); // "topic\0group" -> last logged
  const streamsByPartition = laneStreams(o.keys, o.topology);
  // each topic's own pace: a 15-minute window needs no pass every second because another topic's does
  const slowest = Math.max(intervalMs, o.slowestMs ?? intervalMs);
  const topicEvery = new Map(Object.entries(o.topology.topics).map(([name, t]) => [name, Math.max(intervalMs, topicInterval(t.retention, slowest))]));
  const lastPass = new Map<string, number>();

  async function runOnce(topics?: ReadonlySet<string>): Promise<TrimReport> {
    const at = now();
    const parts = [...streamsByPartition].map(([p, streams]) => [p, topics ? streams.filter((s) => topics.has(s.topic)) : streams] as const);
    // 1. look at every partition; the byte caps need every partition's share of its topic
    const looks = await Promise.allSettled(parts.map(([, streams]) => lookPartition(o.redis, streams)));
    const topicBytes = new Map<string, number>();
    for (const l of looks) if (l.status === 'fulfilled') for (const s of l.value) topicBytes.set(s.topic, (topicBytes.get(s.topic) ?? 0) + s.bytes);
    // 2. trim each partition
    const settled = await Promise.allSettled(
      looks.map((l, i) => (l.status === 'fulfilled' ? trimPartition(o.redis, parts[i]![0], l.value, topicBytes, at) : Promise.reject(l.reason))),
    );
    const report: TrimReport = { trimmed: 0, streams: [], warnings: [], more: false };
    const groupsSeen = new Set<string>();
    for (const s of settled) {
      if (s.status === 'rejected') continue;
      report.streams.push(...s.value.streams);
      report.warnings.push(...s.value.warnings);
      report.more ||= s.value.more;
      for (const g of s.value.groups) groupsSeen.add(g);
    }
    for (const t of report.streams) {
      report.trimmed += t.trimmed;
      if (t.trimmed) trimmedTotal.inc({ topic: t.topic, lane: t.lane }, t.trimmed);
    }
    publishWarnings(report.warnings, groupsSeen, at);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return report;
  }

  /** Timed passes: the topics whose own interval is up (all of them after a capped pass). */
  function dueTopics(at: number, catchUp: boolean): Set<string> {
    const due = new Set<string>();
    for (const [topic, every] of topicEvery) {
      // half a tick of slack: a topic due every tick is not skipped for a timer that fired early
      if (catchUp || at - (lastPass.get(topic) ?? -Infinity) >= every - intervalMs / 2) due.add(topic);
    }
    for (const t of due) lastPass.set(t, at);
    return due;
  }

  function publishWarnings(warnings: readonly LagWarning[], groupsSeen: ReadonlySet<string>, at: number): void {
    const worst = new Map<string, LagWarning>();
    for (const w of warnings) {
      const k = `${w.topic}\0${w.group}`;
      const prev = worst.get(k);
      if (!prev || (w.oldestAgeMs ?? 0) > (prev.oldestAgeMs ?? 0)) worst.set(k, w);
    }
    for (const k of groupsSeen) {
      const [topic, group] = k.split('\0') as [string, string];
      const w = worst.get(k);
      lagWarning.set({ topic, group }, w ? 1 : 0);
      if (!w) warned.delete(k);
      else if (at - (warned.get(k) ?? -Infinity) >= WARN_LOG_EVERY_MS) {
        warned.set(k, at);
        o.logger.warn(w, 'consumer group is far behind: retention keeps what it has not acknowledged, so the topic outgrows its retention');
      }
    }
  }

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(tick, ms);
    timer.unref(); // retention never keeps a process alive
  };
  let catchUp = false;
  const tick = () => {
    const lead = o.shouldRun ? o.shouldRun() : Promise.resolve(true);
    running = lead
      .then((yes) => (yes ? runOnce(dueTopics(now(), catchUp)) : { more: false }))
      .then(
        (r) => {
          catchUp = r.more;
          schedule(r.more ? Math.min(CATCH_UP_MS, intervalMs) : intervalMs);
        },
        (err: unknown) => {
          o.logger.error({ err }, 'retention pass failed; trying again next interval');
          schedule(intervalMs);
        },
      );
  };
  schedule(intervalMs);

  return {
    runOnce,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/** Lane streams of topics with retention, by partition. */
function laneStreams(keys: Keys, topology: Topology): Map<number, LaneStream[]> {
  const out = new Map<number, LaneStream[]>();
  for (const [topic, t] of Object.entries(topology.topics)) {
    const r = t.retention;
    if (!r || (hotWindow(r) === undefined && r.max_len === undefined && r.max_bytes === undefined)) continue;
    const consumers = readersOf(topology, topic);
    for (let p = 0; p < t.partitions; p++) {
      const list = out.get(p) ?? [];
      for (const lane of topology.priorities) list.push({ topic, lane: lane.name, key: keys.lane(topic, p, lane.name), retention: r, consumers });
      out.set(p, list);
    }
  }
  return out;
}

interface PartitionPass {
  streams: StreamTrim[];
  warnings: LagWarning[];
  /** "topic\0group" of every group seen. */
  groups: string[];
  more: boolean;
}

/**
 * One partition's look: groups, lengths, memory (topics with a byte cap), and per group its
 * smallest pending id or (for age warnings) its first unread entry. Two round trips at most.
 */
async function lookPartition(redis: RedisClient, streams: readonly LaneStream[]): Promise<Inspected[]> {
  // 1. groups, lengths and memory
  const look = redis.pipeline();
  for (const s of streams) {
    look.xinfo('GROUPS', s.key).xlen(s.key);
    if (s.retention.max_bytes !== undefined) look.call('MEMORY', 'USAGE', s.key);
  }
  const info = await execSettled(look);
  let r = 0;
  const inspected: Inspected[] = streams.map((s) => {
    const [err, groups] = info[r++]!;
    if (err && !/no such key/i.test(err.message)) throw err;
    const length = Number(info[r++]![1] ?? 0);
    const bytes = s.retention.max_bytes === undefined ? 0 : Number(info[r++]![1] ?? 0);
    return { ...s, length, bytes, groups: err ? undefined : parseGroups(groups) };
  });

  // 2. per group: its smallest pending id, or (for age warnings) its first unread entry
  const detail = redis.pipeline();
  const fill: ((v: unknown) => void)[] = [];
  for (const s of inspected) {
    const hot = hotWindow(s.retention);
    for (const g of s.groups ?? []) {
      if (g.pending > 0) {
        detail.xpending(s.key, g.name);
        fill.push((v) => (g.smallestPending = ((v as unknown[])[1] as string | null) ?? undefined));
      } else if (hot !== undefined && hot > 0 && g.lag !== 0) {
        detail.xrange(s.key, `(${g.lastDelivered}`, '+', 'COUNT', 1);
        fill.push((v) => (g.firstUnread = (v as [string, string[]][])[0]?.[0]));
      }
    }
  }
  if (fill.length) (await execAll(detail)).forEach((v, i) => fill[i]!(v));
  return inspected;
}

/** One partition's trim: what groups still need, the length limits' cuts, XTRIM. Two round trips at most. */
async function trimPartition(
  redis: RedisClient,
  partition: number,
  inspected: readonly Inspected[],
  topicBytes: ReadonlyMap<string, number>,
  now: number,
): Promise<PartitionPass> {
  // 3. max_len and max_bytes: the excess entries the groups are done with (ids only matter; the cap bounds the read)
  const result: StreamTrim[] = [];
  const todo: { s: Inspected; out: StreamTrim; safe: string; limit?: number; lenRead?: number }[] = [];
  const lenPipe = redis.pipeline();
  for (const s of inspected) {
    const out: StreamTrim = { topic: s.topic, partition, lane: s.lane, stream: s.key, trimmed: 0 };
    result.push(out);
    const safe = safePoint(s.groups ?? []);
    if (!s.groups) out.skipped = 'no-stream';
    else if (safe === undefined) out.skipped = 'no-groups';
    else if (s.consumers.some((c) => !s.groups!.some((g) => g.name === c))) out.skipped = 'missing-group'; // it will start from 0
    if (out.skipped || safe === undefined) continue;
    const t: (typeof todo)[number] = { s, out, safe };
    t.limit = lenLimit(s.retention, s.length, topicBytes.get(s.topic) ?? 0);
    const excess = t.limit === undefined ? 0 : s.length - t.limit;
    if (excess > 0) {
      t.lenRead = Math.min(excess, MAX_LEN_TRIM_PER_PASS);
      lenPipe.xrange(s.key, '-', `(${safe}`, 'COUNT', t.lenRead);
    }
    todo.push(t);
  }
  const lenReplies = lenPipe.length ? await execAll(lenPipe) : [];
  let more = false;
  let r = 0;
  const trim = redis.pipeline();
  const trimmed: StreamTrim[] = [];
  for (const t of todo) {
    let lenCut: string | undefined;
    if (t.lenRead !== undefined) {
      const ids = lenReplies[r++] as [string, string[]][];
      if (ids.length) lenCut = nextId(ids[ids.length - 1]![0]);
      if (ids.length === MAX_LEN_TRIM_PER_PASS && t.s.length - ids.length > t.limit!) more = true;
    }
    const cut = trimCut(t.safe, now, t.s.retention, lenCut);
    if (cut === undefined) continue;
    t.out.cut = cut;
    // 4. exact (not ~) so nothing at or after the cut goes; whole-node removal keeps it cheap
    trim.xtrim(t.s.key, 'MINID', cut);
    trimmed.push(t.out);
  }
  if (trimmed.length) (await execAll(trim)).forEach((n, i) => (trimmed[i]!.trimmed = Number(n)));

  const warnings: LagWarning[] = [];
  const groups: string[] = [];
  for (const s of inspected) {
    for (const g of s.groups ?? []) {
      groups.push(`${s.topic}\0${g.name}`);
      const c = checkLag(g, s.retention, now);
      if (c.warn) warnings.push({ topic: s.topic, group: g.name, stream: s.key, oldestAgeMs: c.oldestAgeMs, backlog: c.backlog });
    }
  }
  return { streams: result, warnings, groups, more };
}

/** XINFO GROUPS: one flat field/value list per group. */
function parseGroups(reply: unknown): GroupState[] {
  return (reply as unknown[][]).map((flat) => {
    const f = new Map<string, unknown>();
    for (let i = 0; i + 1 < flat.length; i += 2) f.set(String(flat[i]), flat[i + 1]);
    const lag = f.get('lag');
    return {
      name: String(f.get('name')),
      pending: Number(f.get('pending') ?? 0),
      lastDelivered: String(f.get('last-delivered-id') ?? '0-0'),
      // Redis < 7 has no lag field; null when it cannot tell
      lag: lag === undefined || lag === null ? null : Number(lag),
    };
  });
}

async function execSettled(pipe: RedisPipeline): Promise<[Error | null, unknown][]> {
  return ((await pipe.exec()) ?? []) as [Error | null, unknown][];
}
