// One topic's partitions × lanes, for one consumer group: each lane stream's length, the group's
// lag and pending count, the age of the oldest entry the group has not acknowledged yet, and, for
// an ordered stage, who holds the partition's lease and how many events are parked in it. Read-only; two pipelined round trips (the second
// only for cells with undelivered entries and nothing pending), safe on Redis Cluster
// (SlotPipeline). `rill status` sums these over partitions (stream-stats.ts); the console shows
// them one by one, to find the lagging partition.
import type { Keys } from '../keys.ts';
import { leaseRedisKey } from '../leases/partition-leases.ts';
import type { RedisClient } from '../redis.ts';
import { slotPipeline } from '../slot-pipeline.ts';
import { idMs } from '../stream-id.ts';
import type { PipelineReply } from '../slot-pipeline.ts';
import type { Topology } from '../topology/schema.ts';
import { readersOf } from '../topology/readers.ts';

export interface PartitionLaneStats {
  partition: number;
  lane: string;
  length: number;
  /** Entries not yet delivered to the group (null when Redis cannot tell, e.g. after XDEL). */
  lag: number | null;
  pending: number;
  /** Age in ms of the oldest entry delivered-but-unacknowledged or undelivered; null when none. */
  oldestAgeMs: number | null;
}

export interface PartitionStats {
  topic: string;
  /** The group whose lag and pending are shown (a stage or sink reading the topic), if any reads it. */
  group: string | undefined;
  /** Groups (stages and sinks) reading the topic. */
  groups: string[];
  at: number;
  cells: PartitionLaneStats[];
  /** Partition → lease holder (the member id) for an ordered stage; empty for other groups. */
  leases: Record<number, string>;
  /** Partition → events parked in it by an ordered stage (all lanes); empty for other groups. */
  parked: Record<number, number>;
}

export async function collectPartitionStats(redis: RedisClient, keys: Keys, topology: Topology, topic: string, group?: string): Promise<PartitionStats> {
  const t = topology.topics[topic];
  if (!t) throw new Error(`no topic named "${topic}"`);
  const groups = readersOf(topology, topic);
  const g = group !== undefined && groups.includes(group) ? group : groups[0];
  const ordered = g !== undefined && topology.stages[g]?.ordering === 'key';
  const lanes = topology.priorities.map((l) => l.name);
  const at = Date.now();

  const pipe = slotPipeline(redis);
  for (let p = 0; p < t.partitions; p++) {
    for (const lane of lanes) {
      const key = keys.lane(topic, p, lane);
      pipe.add(key, (x) => {
        x.xlen(key);
        x.xinfo('GROUPS', key);
        if (g !== undefined) x.xpending(key, g);
      });
    }
    if (ordered) {
      const lease = leaseRedisKey(keys, g!, p);
      const count = keys.parked(g!, p, 'count');
      pipe.add(lease, (x) => x.get(lease).get(count));
    }
  }
  const replies = await pipe.exec();
  let i = 0;
  const next = (): unknown => value(replies[i++]);
  const cells: PartitionLaneStats[] = [];
  const leases: Record<number, string> = {};
  const parked: Record<number, number> = {};
  const undelivered: { cell: PartitionLaneStats; key: string; after: string }[] = [];
  for (let p = 0; p < t.partitions; p++) {
    for (const lane of lanes) {
      const length = Number(next() ?? 0);
      const info = (next() as unknown[] | null) ?? [];
      const summary = g === undefined ? null : (next() as unknown[] | null);
      const mine = info.map(fields).find((f) => f.get('name') === g);
      const lagRaw = mine?.get('lag');
      const cell: PartitionLaneStats = {
        partition: p,
        lane,
        length,
        lag: mine ? (lagRaw === null || lagRaw === undefined ? null : Number(lagRaw)) : g === undefined ? null : length,
        pending: Number(mine?.get('pending') ?? 0),
        oldestAgeMs: null,
      };
      const oldestPending = Array.isArray(summary) && summary[1] ? String(summary[1]) : undefined;
      if (oldestPending) cell.oldestAgeMs = Math.max(0, at - idMs(oldestPending));
      else if (g !== undefined && (cell.lag === null || cell.lag > 0) && length > 0) {
        undelivered.push({ cell, key: keys.lane(topic, p, lane), after: String(mine?.get('last-delivered-id') ?? '0-0') });
      }
      cells.push(cell);
    }
    if (ordered) {
      const holder = next();
      // the lease value is `<member>:<partition>` (partition-leases.ts)
      if (typeof holder === 'string') leases[p] = holder.replace(/:\d+$/, '');
      parked[p] = Number(next() ?? 0);
    }
  }
  if (undelivered.length) {
    const second = slotPipeline(redis);
    for (const u of undelivered) second.add(u.key, (x) => x.xrange(u.key, `(${u.after}`, '+', 'COUNT', 1));
    const res = await second.exec();
    undelivered.forEach((u, j) => {
      const first = (value(res[j]) as [string, string[]][] | null)?.[0];
      if (first) u.cell.oldestAgeMs = Math.max(0, at - idMs(first[0]));
    });
  }
  return { topic, group: g, groups, at, cells, leases, parked };
}

function value(reply: PipelineReply | undefined): unknown {
  if (!reply) return null;
  const [err, v] = reply;
  if (err) {
    if (/no such key|NOGROUP/i.test(err.message)) return null; // nothing written, or no group yet
    throw err;
  }
  return v;
}

function fields(flat: unknown): Map<string, unknown> {
  const m = new Map<string, unknown>();
  if (Array.isArray(flat)) for (let i = 0; i + 1 < flat.length; i += 2) m.set(String(flat[i]), flat[i + 1]);
  return m;
}

/** Every ordered stage's partition leases: stage → partition → holder (member id). */
export async function readLeases(redis: RedisClient, keys: Keys, topology: Topology): Promise<Record<string, Record<number, string>>> {
  const wanted: { stage: string; partition: number; key: string }[] = [];
  for (const [stage, s] of Object.entries(topology.stages)) {
    if (s.ordering !== 'key') continue;
    for (let p = 0; p < (topology.topics[s.input]?.partitions ?? 0); p++) wanted.push({ stage, partition: p, key: leaseRedisKey(keys, stage, p) });
  }
  const pipe = slotPipeline(redis);
  for (const w of wanted) pipe.add(w.key, (x) => x.get(w.key));
  const replies = await pipe.exec();
  const out: Record<string, Record<number, string>> = {};
  wanted.forEach((w, i) => {
    const holder = value(replies[i]);
    out[w.stage] ??= {};
    if (typeof holder === 'string') out[w.stage]![w.partition] = holder.replace(/:\d+$/, '');
  });
  return out;
}
