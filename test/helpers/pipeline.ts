// Inspecting an instance's pipeline: is every group caught up, what is in the dead-letter streams.
import type { Redis } from 'ioredis';
import type { Keys } from '../../core/keys.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { isCluster } from '../../core/slot-pipeline.ts';

/**
 * Entries still on their way: lag + pending over every group on every lane stream of every topic,
 * plus retries waiting in the stages' delay sets and events parked by ordered stages. One MULTI, so an entry moving between a delay
 * set and a stream is never missed (or counted twice) between two reads.
 */
export async function outstanding(redis: Redis, keys: Keys, topology: Topology): Promise<number> {
  if (isCluster(redis)) {
    // a MULTI takes one slot: one per partition (an entry only ever moves within its partition)
    const n = Math.max(0, ...Object.values(topology.topics).map((t) => t.partitions));
    const counts = await Promise.all(Array.from({ length: n }, (_, p) => outstandingIn(redis, keys, topology, p)));
    return counts.reduce((a, b) => a + b, 0);
  }
  return outstandingIn(redis, keys, topology);
}

/** `outstanding` over every partition, or only partition `only`. */
async function outstandingIn(redis: Redis, keys: Keys, topology: Topology, only?: number): Promise<number> {
  const multi = redis.multi();
  const mine = (p: number) => only === undefined || p === only;
  for (const [topic, t] of Object.entries(topology.topics)) {
    for (let p = 0; p < t.partitions; p++) {
      if (mine(p)) for (const lane of topology.priorities) multi.xinfo('GROUPS', keys.lane(topic, p, lane.name));
    }
  }
  const partitions = Object.values(topology.topics)[0]?.partitions ?? 0;
  for (const stage of Object.keys(topology.stages)) for (let p = 0; p < partitions; p++) if (mine(p)) multi.zcard(keys.delay(stage, p));
  // ordered stages: events parked (waiting, or behind their merchant's waiting event)
  for (const [stage, s] of Object.entries(topology.stages)) {
    if (s.ordering === 'key') for (let p = 0; p < partitions; p++) if (mine(p)) multi.get(keys.parked(stage, p, 'count'));
  }
  const res = (await multi.exec()) ?? [];
  let total = 0;
  for (const [err, value] of res) {
    if (err) {
      if (String(err.message).includes('no such key')) continue;
      throw err;
    }
    if (typeof value === 'number' || typeof value === 'string' || value === null) {
      total += Number(value ?? 0);
      continue;
    }
    for (const g of value as (string | number | null)[][]) {
      const info = new Map<string, string | number | null>();
      for (let i = 0; i + 1 < g.length; i += 2) info.set(String(g[i]), g[i + 1]!);
      total += Number(info.get('pending') ?? 0) + Number(info.get('lag') ?? 0);
    }
  }
  return total;
}

/** Every dead-letter entry of a stage, across partitions. */
export async function deadLetters(redis: Redis, keys: Keys, stage: string, partitions: number): Promise<Map<string, string>[]> {
  const out: Map<string, string>[] = [];
  for (let p = 0; p < partitions; p++) {
    const entries = (await redis.xrange(keys.deadLetter(stage, p), '-', '+')) as [string, string[]][];
    for (const [, fields] of entries) {
      const m = new Map<string, string>();
      for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
      out.push(m);
    }
  }
  return out;
}
