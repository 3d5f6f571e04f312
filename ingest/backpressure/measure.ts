// Measuring load for the shedder: entries waiting in the pipeline and Redis memory, in one
// pipelined round trip (on Redis Cluster: one per partition's slot and one INFO per master, all
// concurrent, since a cluster pipeline cannot span slots).
//
// Only the topology's own consumer groups count (one per stage and sink, named after it): a
// reader outside the pipeline (an external topic's notifier, a forgotten debugging group) must not
// be able to stop payments ingest by falling behind.
import { Cluster } from 'ioredis';
import type { Keys } from '../../core/keys.ts';
import type { RedisClient, RedisPipeline } from '../../core/redis.ts';
import type { Topology } from '../../core/topology/schema.ts';
import type { LoadSample } from './hysteresis.ts';

export interface PipelineKeys {
  /** Lane streams that some stage or sink reads, with the groups that read them. */
  streams: { key: string; partition: number; readers: string[] }[];
  /** The stages' delay sets: retries waiting for their time are in the pipeline too. */
  delaySets: { key: string; partition: number }[];
}

export function pipelineKeys(topology: Topology, keys: Keys): PipelineKeys {
  const readers = new Map<string, string[]>();
  for (const [name, c] of [...Object.entries(topology.stages), ...Object.entries(topology.sinks)]) {
    readers.set(c.input, [...(readers.get(c.input) ?? []), name]);
  }
  const out: PipelineKeys = { streams: [], delaySets: [] };
  for (const [topic, t] of Object.entries(topology.topics)) {
    const r = readers.get(topic);
    if (!r) continue; // external: nothing in the pipeline waits on it
    for (let p = 0; p < t.partitions; p++) {
      for (const lane of topology.priorities) out.streams.push({ key: keys.lane(topic, p, lane.name), partition: p, readers: r });
    }
  }
  const partitions = topology.topics[topology.ingest.topic]?.partitions ?? 0;
  for (const stage of Object.keys(topology.stages)) {
    for (let p = 0; p < partitions; p++) out.delaySets.push({ key: keys.delay(stage, p), partition: p });
  }
  return out;
}

export interface GroupInfo {
  name: string;
  pending: number;
  /** null when Redis cannot tell (entries deleted inside the unread range). */
  lag: number | null;
}

/**
 * What one stream holds for its readers: lag + pending of each reader's group. A group that does
 * not exist yet will read the whole stream (groups start at 0); an unknown lag is at most that.
 */
export function waitingIn(readers: readonly string[], groups: readonly GroupInfo[], length: number): number {
  const byName = new Map(groups.map((g) => [g.name, g]));
  let n = 0;
  for (const r of readers) {
    const g = byName.get(r);
    n += g ? g.pending + (g.lag ?? length) : length;
  }
  return n;
}

/**
 * Share of the system memory a Redis without maxmemory (and no max_memory_bytes given) may use,
 * as the default budget: half, leaving the rest to the OS, the fork of a persistence rewrite and
 * whatever shares the machine. Shedding starts at backpressure.max_memory of it (0.8: 40 %).
 */
export const DEFAULT_SYSTEM_MEMORY_SHARE = 0.5;

/**
 * used_memory against maxmemory, or against `budget` when maxmemory is 0, or against half of
 * Redis's total_system_memory without either (never unbounded); undefined when none is known.
 */
export function memoryShareOf(info: string, budget: number | undefined): number | undefined {
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? NaN);
  const used = field('used_memory');
  const system = field('total_system_memory');
  const max = field('maxmemory') || budget || (Number.isFinite(system) && system > 0 ? system * DEFAULT_SYSTEM_MEMORY_SHARE : undefined);
  if (!max || !Number.isFinite(used)) return undefined;
  return used / max;
}

export function loadSampler(redis: RedisClient, keys: PipelineKeys, memoryBudget: number | undefined): () => Promise<LoadSample> {
  if (redis instanceof Cluster) return () => sampleCluster(redis, keys, memoryBudget);
  return async () => {
    const pipe = redis.pipeline().info('memory');
    const waiting = queueWaiting(pipe, keys);
    const res = await exec(pipe);
    return { memoryShare: memoryShareOf(String(res[0]), memoryBudget), waiting: waiting(res.slice(1)) };
  };
}

async function sampleCluster(redis: Cluster, keys: PipelineKeys, budget: number | undefined): Promise<LoadSample> {
  const bySlot = new Map<number, PipelineKeys>();
  const slot = (p: number) => bySlot.get(p) ?? bySlot.set(p, { streams: [], delaySets: [] }).get(p)!;
  for (const s of keys.streams) slot(s.partition).streams.push(s);
  for (const d of keys.delaySets) slot(d.partition).delaySets.push(d);
  const [counts, shares] = await Promise.all([
    Promise.all(
      [...bySlot.values()].map(async (part) => {
        const pipe = redis.pipeline();
        const waiting = queueWaiting(pipe, part);
        return waiting(await exec(pipe));
      }),
    ),
    // the fullest shard is the one that runs out first
    Promise.all(redis.nodes('master').map(async (n) => memoryShareOf(await n.info('memory'), budget))),
  ]);
  const known = shares.filter((s): s is number => s !== undefined);
  return { waiting: counts.reduce((a, b) => a + b, 0), memoryShare: known.length ? Math.max(...known) : undefined };
}

/** Queue XINFO GROUPS and XLEN per stream, ZCARD per delay set; returns how to sum their replies. */
function queueWaiting(pipe: RedisPipeline, keys: PipelineKeys): (replies: unknown[]) => number {
  for (const s of keys.streams) pipe.xinfo('GROUPS', s.key).xlen(s.key);
  for (const d of keys.delaySets) pipe.zcard(d.key);
  return (replies) => {
    let total = 0;
    keys.streams.forEach((s, i) => {
      const groups = replies[2 * i];
      // no such key: XINFO failed (exec maps that to null) and XLEN is 0
      total += waitingIn(s.readers, groups === null ? [] : parseGroups(groups), Number(replies[2 * i + 1]));
    });
    for (const n of replies.slice(2 * keys.streams.length)) total += Number(n);
    return total;
  };
}

async function exec(pipe: RedisPipeline): Promise<unknown[]> {
  const res = (await pipe.exec()) ?? [];
  return res.map(([err, value]) => {
    if (!err) return value;
    if (/no such key/i.test(err.message)) return null;
    throw err;
  });
}

function parseGroups(reply: unknown): GroupInfo[] {
  if (!Array.isArray(reply)) throw new Error(`unexpected XINFO GROUPS reply: ${JSON.stringify(reply)}`);
  return reply.map((flat: unknown[]) => {
    const f = new Map<string, unknown>();
    for (let i = 0; i + 1 < flat.length; i += 2) f.set(String(flat[i]), flat[i + 1]);
    const lag = f.get('lag');
    return { name: String(f.get('name')), pending: Number(f.get('pending') ?? 0), lag: lag === null || lag === undefined ? null : Number(lag) };
  });
}
