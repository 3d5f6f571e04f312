// Stream statistics: for every topic × partition × lane stream its length and each consumer
// group's lag and pending count, every stage's (and sink's) dead-letter streams and every stage's
// delay sets. Collected on a timer (never per event) in one pipelined round trip (on Redis
// Cluster: one per partition's slot, all at once, since a cluster pipeline cannot span slots),
// summed over partitions and exported as gauges:
//
//   rill_stream_length{topic,lane}          entries in the lane streams
//   rill_group_lag{topic,lane,group}        entries not yet delivered to the group
//   rill_group_pending{topic,lane,group}    delivered, not yet acknowledged
//   rill_dead_letters{stage}                entries in the stage's (or sink's) dead-letter streams
//   rill_delay_set_size{stage}              retries waiting in the stage's delay sets
//   rill_parked_events{stage}               events parked in an ordered stage
//   rill_live_workers{component}            workers with a fresh heartbeat running a stage or sink
//
// Every worker runs a collector, so these series exist once per worker: aggregate them with
// max by (...), not sum. `rill status` calls collectStreamStats directly.
//
// Lag: Redis 7 reports it per group, but answers null when it cannot tell (entries deleted with
// XDEL inside the unread range, or a group created at an arbitrary id). Then the lag here is an
// upper bound, min(length, entries-added − entries-read), and `lagExact` is false.
import { Cluster } from 'ioredis';
import type { Keys } from '../keys.ts';
import type { Logger } from '../logger.ts';
import type { Registry } from '../metrics.ts';
import { gauge } from '../metrics.ts';
import type { RedisClient, RedisPipeline } from '../redis.ts';
import type { Topology } from '../topology/schema.ts';
import { liveWorkersBy, readWorkers } from './heartbeat.ts';
import { within } from './within.ts';

export interface GroupStats {
  group: string;
  /** Entries not yet delivered to the group (an upper bound when lagExact is false). */
  lag: number;
  lagExact: boolean;
  /** Delivered to a consumer, not yet acknowledged. */
  pending: number;
  /**
   * Acknowledged progress: entries-read − pending, summed over partitions. Its growth between
   * two samples is the group's rate out. null when Redis cannot tell for some partition.
   */
  acked: number | null;
}

export interface LaneStats {
  topic: string;
  lane: string;
  length: number;
  /** Entries ever added (XINFO STREAM entries-added); only with `entriesAdded: true`. */
  entriesAdded: number | null;
  groups: GroupStats[];
}

export interface StreamStats {
  /** Unix ms when the sample was taken. */
  at: number;
  /** Topic × lane, in topology order, summed over partitions. */
  lanes: LaneStats[];
  /** Stage or sink → entries in its dead-letter streams. */
  deadLetters: Record<string, number>;
  /** Stage → retries waiting in its delay sets. */
  delaySets: Record<string, number>;
  /** Ordered stage → events parked (waiting, or behind a waiting event of their merchant). */
  parked: Record<string, number>;
}

export interface CollectOptions {
  /** Use XINFO STREAM instead of XLEN, for entries-added (rates in). Heavier: it returns the first and last entries. */
  entriesAdded?: boolean;
}

type Probe =
  | { kind: 'lane'; partition: number; key: string; topic: string; lane: string }
  | { kind: 'dlq'; partition: number; key: string; owner: string }
  | { kind: 'delay'; partition: number; key: string; owner: string }
  | { kind: 'parked'; partition: number; key: string; owner: string };

interface RawGroup {
  name: string;
  pending: number;
  entriesRead: number | null;
  lag: number | null;
}

/** One sample of every stream, dead-letter stream and delay set of the topology. */
export async function collectStreamStats(redis: RedisClient, keys: Keys, topology: Topology, opts: CollectOptions = {}): Promise<StreamStats> {
  const probes = probesOf(keys, topology);
  const at = Date.now();
  const replies = new Map<Probe, unknown[]>();
  if (redis instanceof Cluster) {
    const byPartition = new Map<number, Probe[]>();
    for (const p of probes) byPartition.get(p.partition)?.push(p) ?? byPartition.set(p.partition, [p]);
    await Promise.all(
      [...byPartition.values()].map(async (part) => {
        const res = await run(redis.pipeline(), part, opts);
        part.forEach((p, i) => replies.set(p, res[i]!));
      }),
    );
  } else {
    const res = await run(redis.pipeline(), probes, opts);
    probes.forEach((p, i) => replies.set(p, res[i]!));
  }
  return summarize(topology, probes, replies, at, opts);
}

function probesOf(keys: Keys, topology: Topology): Probe[] {
  const probes: Probe[] = [];
  for (const [topic, t] of Object.entries(topology.topics)) {
    for (const lane of topology.priorities) {
      for (let p = 0; p < t.partitions; p++) probes.push({ kind: 'lane', partition: p, key: keys.lane(topic, p, lane.name), topic, lane: lane.name });
    }
  }
  const partitionsOf = (input: string) => topology.topics[input]?.partitions ?? 0;
  for (const [name, stage] of Object.entries(topology.stages)) {
    for (let p = 0; p < partitionsOf(stage.input); p++) {
      probes.push({ kind: 'dlq', partition: p, key: keys.deadLetter(name, p), owner: name });
      probes.push({ kind: 'delay', partition: p, key: keys.delay(name, p), owner: name });
      if (stage.ordering === 'key') probes.push({ kind: 'parked', partition: p, key: keys.parked(name, p, 'count'), owner: name });
    }
  }
  for (const [name, sink] of Object.entries(topology.sinks)) {
    for (let p = 0; p < partitionsOf(sink.input); p++) probes.push({ kind: 'dlq', partition: p, key: keys.deadLetter(name, p), owner: name });
  }
  return probes;
}

/** Queue every probe's commands on one pipeline; one reply list per probe. */
async function run(pipe: RedisPipeline, probes: readonly Probe[], opts: CollectOptions): Promise<unknown[][]> {
  const counts: number[] = [];
  for (const p of probes) {
    if (p.kind === 'lane') {
      if (opts.entriesAdded) pipe.xinfo('STREAM', p.key);
      else pipe.xlen(p.key);
      pipe.xinfo('GROUPS', p.key);
      counts.push(2);
    } else {
      if (p.kind === 'dlq') pipe.xlen(p.key);
      else if (p.kind === 'parked') pipe.get(p.key);
      else pipe.zcard(p.key);
      counts.push(1);
    }
  }
  const res = (await pipe.exec()) ?? [];
  const flat = res.map(([err, value]) => {
    if (!err) return value;
    if (/no such key/i.test(err.message)) return null; // XINFO on a stream nobody wrote yet
    throw err;
  });
  const out: unknown[][] = [];
  let i = 0;
  for (const n of counts) {
    out.push(flat.slice(i, i + n));
    i += n;
  }
  return out;
}

function summarize(topology: Topology, probes: readonly Probe[], replies: Map<Probe, unknown[]>, at: number, opts: CollectOptions): StreamStats {
  const lanes = new Map<string, LaneStats>();
  for (const topic of Object.keys(topology.topics)) {
    for (const lane of topology.priorities) {
      lanes.set(`${topic}\u0000${lane.name}`, { topic, lane: lane.name, length: 0, entriesAdded: opts.entriesAdded ? 0 : null, groups: [] });
    }
  }
  const deadLetters: Record<string, number> = {};
  const delaySets: Record<string, number> = {};
  for (const name of [...Object.keys(topology.stages), ...Object.keys(topology.sinks)]) deadLetters[name] = 0;
  const parked: Record<string, number> = {};
  for (const name of Object.keys(topology.stages)) delaySets[name] = 0;
  for (const [name, stage] of Object.entries(topology.stages)) if (stage.ordering === 'key') parked[name] = 0;

  for (const probe of probes) {
    const [first, second] = replies.get(probe)!;
    if (probe.kind === 'dlq') {
      deadLetters[probe.owner]! += Number(first ?? 0);
      continue;
    }
    if (probe.kind === 'delay') {
      delaySets[probe.owner]! += Number(first ?? 0);
      continue;
    }
    if (probe.kind === 'parked') {
      parked[probe.owner]! += Number(first ?? 0);
      continue;
    }
    const stats = lanes.get(`${probe.topic}\u0000${probe.lane}`)!;
    let length: number;
    let added: number | null = null;
    if (opts.entriesAdded) {
      const info = first === null || first === undefined ? undefined : fieldMap(first);
      length = Number(info?.get('length') ?? 0);
      const a = info?.get('entries-added');
      added = info === undefined ? 0 : a === null || a === undefined ? null : Number(a);
      stats.entriesAdded = stats.entriesAdded === null || added === null ? null : stats.entriesAdded + added;
    } else {
      length = Number(first ?? 0);
    }
    stats.length += length;
    const groups = second === null || second === undefined ? [] : parseGroups(second);
    for (const g of groups) {
      let sum = stats.groups.find((x) => x.group === g.name);
      if (!sum) {
        sum = { group: g.name, lag: 0, lagExact: true, pending: 0, acked: 0 };
        stats.groups.push(sum);
      }
      if (g.lag !== null) sum.lag += g.lag;
      else {
        sum.lagExact = false;
        const bound = added !== null && g.entriesRead !== null ? Math.max(0, added - g.entriesRead) : length;
        sum.lag += Math.min(length, bound);
      }
      sum.pending += g.pending;
      // a group that never read has no entries-read yet, but its lag then says how far it is
      const read = g.entriesRead ?? (added !== null && g.lag !== null ? Math.max(0, added - g.lag) : null);
      sum.acked = sum.acked === null || read === null ? null : sum.acked + Math.max(0, read - g.pending);
    }
  }
  for (const l of lanes.values()) l.groups.sort((a, b) => a.group.localeCompare(b.group));
  return { at, lanes: [...lanes.values()], deadLetters, delaySets, parked };
}

function fieldMap(reply: unknown): Map<string, unknown> {
  if (!Array.isArray(reply)) throw new Error(`unexpected XINFO reply: ${JSON.stringify(reply)}`);
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) m.set(String(reply[i]), reply[i + 1]);
  return m;
}

function parseGroups(reply: unknown): RawGroup[] {
  if (!Array.isArray(reply)) throw new Error(`unexpected XINFO GROUPS reply: ${JSON.stringify(reply)}`);
  return reply.map((flat: unknown) => {
    const f = fieldMap(flat);
    const num = (k: string) => {
      const v = f.get(k);
      return v === null || v === undefined ? null : Number(v);
    };
    return { name: String(f.get('name')), pending: num('pending') ?? 0, entriesRead: num('entries-read'), lag: num('lag') };
  });
}

export interface StreamStatsOptions {
  redis: RedisClient;
  keys: Keys;
  topology: Topology;
  registry: Registry;
  logger: Logger;
  intervalMs?: number;
}

export interface StreamStatsCollector {
  /** Take a sample now and update the gauges (the timer does this every interval). */
  collect(): Promise<StreamStats | undefined>;
  stop(): Promise<void>;
}

export const DEFAULT_STREAM_STATS_MS = 10_000;

/** Samples every interval and keeps the gauges current. Failures are logged, never thrown. */
export function startStreamStats(o: StreamStatsOptions): StreamStatsCollector {
  const r = o.registry;
  const g = {
    length: gauge(r, 'rill_stream_length', "Entries in a topic's lane streams, summed over partitions", ['topic', 'lane']),
    lag: gauge(r, 'rill_group_lag', 'Entries not yet delivered to a consumer group, summed over partitions (an upper bound where Redis cannot tell)', [
      'topic',
      'lane',
      'group',
    ]),
    pending: gauge(r, 'rill_group_pending', 'Entries delivered to a consumer group and not yet acknowledged, summed over partitions', [
      'topic',
      'lane',
      'group',
    ]),
    deadLetters: gauge(r, 'rill_dead_letters', "Entries in a stage's (or sink's) dead-letter streams, summed over partitions", ['stage']),
    parked: gauge(r, 'rill_parked_events', "Events parked in an ordered stage (waiting, or behind their merchant's waiting event), summed over partitions", [
      'stage',
    ]),
    delay: gauge(r, 'rill_delay_set_size', "Retries waiting in a stage's delay sets, summed over partitions", ['stage']),
    live: gauge(r, 'rill_live_workers', 'Workers with a fresh heartbeat that run a stage or sink', ['component']),
  };
  const components = [...Object.keys(o.topology.stages), ...Object.keys(o.topology.sinks)];
  let failing = false;
  let stopped = false;
  let inFlight: Promise<StreamStats | undefined> | undefined;

  const sample = async (): Promise<StreamStats | undefined> => {
    try {
      const [stats, workers] = await Promise.all([collectStreamStats(o.redis, o.keys, o.topology), readWorkers(o.redis, o.keys)]);
      if (stopped) return stats;
      // replace every series at once (no await in between: a scrape never sees a half update)
      for (const x of Object.values(g)) x.reset();
      for (const l of stats.lanes) {
        g.length.set({ topic: l.topic, lane: l.lane }, l.length);
        for (const grp of l.groups) {
          g.lag.set({ topic: l.topic, lane: l.lane, group: grp.group }, grp.lag);
          g.pending.set({ topic: l.topic, lane: l.lane, group: grp.group }, grp.pending);
        }
      }
      for (const [stage, n] of Object.entries(stats.deadLetters)) g.deadLetters.set({ stage }, n);
      for (const [stage, n] of Object.entries(stats.delaySets)) g.delay.set({ stage }, n);
      for (const [stage, n] of Object.entries(stats.parked)) g.parked.set({ stage }, n);
      for (const [component, n] of liveWorkersBy(workers, components)) g.live.set({ component }, n);
      if (failing) o.logger.info('stream statistics collected again');
      failing = false;
      return stats;
    } catch (err) {
      if (!failing) o.logger.warn({ err }, 'collecting stream statistics failed; gauges keep their last values');
      failing = true;
      return undefined;
    }
  };
  const collect = () => (inFlight ??= sample().finally(() => (inFlight = undefined)));
  void collect();
  const timer = setInterval(() => void collect(), o.intervalMs ?? DEFAULT_STREAM_STATS_MS);
  timer.unref();
  return {
    collect,
    async stop() {
      stopped = true;
      clearInterval(timer);
      if (inFlight) await within(2_000, inFlight);
    },
  };
}
