// Pipelines that span partitions, safe on Redis Cluster. A cluster pipeline must target one node
// ("All keys in the pipeline should belong to the same slots allocation group"), and every key of
// partition i carries the hash tag {i}, so commands are queued with the key that routes them:
//  - single node: exactly one pipeline, filled as the commands are queued (as before);
//  - Cluster: on exec, one pipeline per node (per slot until the slot map is known), run
//    concurrently; the replies come back in the order the commands were queued.
// Order holds within a slot (so within a partition), not across slots. Also what spans every
// master: onEveryMaster, deleteByPattern.
import { Cluster } from 'ioredis';
import type { Redis } from 'ioredis';
import type { RedisClient, RedisPipeline } from './redis-client.ts';

export type PipelineReply = [Error | null, unknown];

export function isCluster(redis: unknown): redis is Cluster {
  return redis instanceof Cluster;
}

interface Queued {
  slot: number;
  add: (pipe: RedisPipeline) => unknown;
}

export class SlotPipeline {
  private readonly single: RedisPipeline | undefined;
  private readonly queued: Queued[] = [];

  constructor(private readonly redis: RedisClient) {
    if (!isCluster(redis)) this.single = redis.pipeline();
  }

  /** Commands queued so far (a queued function may add several). */
  get length(): number {
    return this.single ? this.single.length : this.queued.length;
  }

  /**
   * Queue what `add` puts on a pipeline; `key` routes it (any key of its slot, e.g. of its
   * partition). Every key `add` touches must be in that slot.
   */
  add(key: string, add: (pipe: RedisPipeline) => unknown): this {
    if (this.single) add(this.single);
    else this.queued.push({ slot: keySlot(key), add });
    return this;
  }

  /** Runs everything queued; one [error, reply] per command, in queued order. */
  async exec(): Promise<PipelineReply[]> {
    if (this.single) return ((await this.single.exec()) ?? []) as PipelineReply[];
    const cluster = this.redis as Cluster;
    const groups = new Map<number, Queued[]>();
    for (const q of this.queued) {
      // the node's group once the slot map is known, else the slot itself (always valid)
      const g = cluster._groupsBySlot?.[q.slot] ?? -1 - q.slot;
      const list = groups.get(g);
      if (list) list.push(q);
      else groups.set(g, [q]);
    }
    const replies = new Map<Queued, PipelineReply[]>();
    await Promise.all(
      [...groups.values()].map(async (list) => {
        const pipe = cluster.pipeline();
        const counts = list.map((q) => {
          const before = pipe.length;
          q.add(pipe);
          return pipe.length - before;
        });
        const res = ((await pipe.exec()) ?? []) as PipelineReply[];
        let at = 0;
        list.forEach((q, i) => replies.set(q, res.slice(at, (at += counts[i]!))));
      }),
    );
    return this.queued.flatMap((q) => replies.get(q)!);
  }
}

/** A pipeline over keys of any partitions (see SlotPipeline). */
export function slotPipeline(redis: RedisClient): SlotPipeline {
  return new SlotPipeline(redis);
}

/** Runs `fn` on every master of a cluster (SCAN, INFO, FLUSH), or once on a single node. */
export async function onEveryMaster<T>(redis: RedisClient, fn: (node: Redis) => Promise<T>): Promise<T[]> {
  if (!isCluster(redis)) return [await fn(redis)];
  return Promise.all(redis.nodes('master').map((n) => fn(n)));
}

/**
 * Delete every key matching a pattern (tests and `rill dev --reset`); SCAN, never KEYS. On Redis
 * Cluster: SCAN on every master, UNLINK one slot's keys at a time.
 */
export async function deleteByPattern(redis: RedisClient, pattern: string): Promise<number> {
  const cluster = isCluster(redis);
  const counts = await onEveryMaster(redis, async (node) => {
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (!keys.length) continue;
      if (!cluster) n += await node.unlink(...keys);
      else for (const group of bySlot(keys)) n += await node.unlink(...group);
    } while (cursor !== '0');
    return n;
  });
  return counts.reduce((a, b) => a + b, 0);
}

/** Keys grouped by hash slot (a multi-key command on a cluster node takes one slot's keys). */
export function bySlot(keys: readonly string[]): string[][] {
  const groups = new Map<number, string[]>();
  for (const k of keys) {
    const slot = keySlot(k);
    const list = groups.get(slot);
    if (list) list.push(k);
    else groups.set(slot, [k]);
  }
  return [...groups.values()];
}

/** The Redis Cluster hash slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key. */
export function keySlot(key: string): number {
  const s = key.indexOf('{');
  if (s >= 0) {
    const e = key.indexOf('}', s + 1);
    if (e > s + 1) key = key.slice(s + 1, e);
  }
  const bytes = Buffer.from(key);
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) & 0xff00) ^ CRC16[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc & 0x3fff;
}

const CRC16 = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();
