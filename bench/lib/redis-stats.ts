// Watching an instance from the outside, the way an operator would with redis-cli: stream lengths,
// first/last entry ids (their millisecond part times a stage exactly), group lag and pending,
// dead letters, memory and the per-command statistics (INFO commandstats).
import type { Redis } from 'ioredis';
import type { TopologySummary } from './topology.ts';

/** <prefix>:{<partition>}:<topic>:<lane> (design §1, README). */
export function laneKeys(prefix: string, t: TopologySummary, topic: string, lanes: readonly string[] = t.lanes): string[] {
  const partitions = t.topics[topic]?.partitions ?? 0;
  const out: string[] = [];
  for (let p = 0; p < partitions; p++) for (const lane of lanes) out.push(`${prefix}:{${p}}:${topic}:${lane}`);
  return out;
}

export async function totalLength(redis: Redis, keys: readonly string[]): Promise<number> {
  const pipe = redis.pipeline();
  for (const k of keys) pipe.xlen(k);
  const res = (await pipe.exec()) ?? [];
  return res.reduce((n, [err, v]) => n + (err ? 0 : Number(v)), 0);
}

/**
 * Millisecond time of the first and the last entry over a set of streams (undefined when empty),
 * counting only entries added at or after `sinceMs`. Entry ids are Redis's clock at XADD: they
 * time a stage to the millisecond, whenever we look.
 */
export async function entryTimeRange(redis: Redis, keys: readonly string[], sinceMs = 0): Promise<{ first: number; last: number } | undefined> {
  const from = sinceMs > 0 ? String(sinceMs) : '-';
  const pipe = redis.pipeline();
  for (const k of keys) {
    pipe.xrange(k, from, '+', 'COUNT', 1);
    pipe.xrevrange(k, '+', from, 'COUNT', 1);
  }
  const res = (await pipe.exec()) ?? [];
  let first = Infinity;
  let last = -Infinity;
  res.forEach(([err, v], i) => {
    const entries = (err ? [] : v) as [string, string[]][];
    if (!entries.length) return;
    const ms = Number(entries[0]![0].split('-')[0]);
    if (i % 2 === 0) first = Math.min(first, ms);
    else last = Math.max(last, ms);
  });
  return Number.isFinite(first) ? { first, last } : undefined;
}

interface GroupStats {
  lag: number;
  pending: number;
}

function parseGroups(value: unknown): Map<string, GroupStats> {
  const out = new Map<string, GroupStats>();
  for (const g of (value ?? []) as (string | number | null)[][]) {
    const m = new Map<string, string | number | null>();
    for (let i = 0; i + 1 < g.length; i += 2) m.set(String(g[i]), g[i + 1]!);
    out.set(String(m.get('name')), { lag: Number(m.get('lag') ?? 0), pending: Number(m.get('pending') ?? 0) });
  }
  return out;
}

/**
 * Entries still on their way through the pipeline: lag + pending of every stage's and sink's
 * group on its input topic (a group not created yet counts the whole stream), plus retries in the
 * stages' delay sets.
 */
export async function outstanding(redis: Redis, prefix: string, t: TopologySummary, readers?: readonly string[]): Promise<number> {
  const groups = [...Object.entries(t.stages), ...Object.entries(t.sinks)].filter(([n]) => !readers || readers.includes(n));
  const pipe = redis.pipeline();
  const plan: { keyCount: number; names: string[] }[] = [];
  const byTopic = new Map<string, string[]>();
  for (const [name, g] of groups) byTopic.set(g.input, [...(byTopic.get(g.input) ?? []), name]);
  for (const [topic, names] of byTopic) {
    for (const key of laneKeys(prefix, t, topic)) {
      pipe.xinfo('GROUPS', key);
      pipe.xlen(key);
      plan.push({ keyCount: 1, names });
    }
  }
  const stageNames = groups.filter(([n]) => t.stages[n]).map(([n]) => n);
  const partitions = t.topics[t.ingestTopic]?.partitions ?? 0;
  for (const s of stageNames) for (let p = 0; p < partitions; p++) pipe.zcard(`${prefix}:{${p}}:delay:${s}`);
  const res = (await pipe.exec()) ?? [];
  let total = 0;
  plan.forEach((entry, i) => {
    const [infoErr, info] = res[i * 2]!;
    const [, len] = res[i * 2 + 1]!;
    const length = Number(len ?? 0);
    const stats = infoErr ? new Map<string, GroupStats>() : parseGroups(info);
    for (const name of entry.names) {
      const g = stats.get(name);
      total += g ? g.lag + g.pending : length;
    }
  });
  for (let i = plan.length * 2; i < res.length; i++) total += Number(res[i]![1] ?? 0);
  return total;
}

/** Entries in the dead-letter streams of the given stages (and sinks). */
export async function deadLetters(redis: Redis, prefix: string, t: TopologySummary): Promise<number> {
  const partitions = t.topics[t.ingestTopic]?.partitions ?? 0;
  const keys: string[] = [];
  for (const s of [...Object.keys(t.stages), ...Object.keys(t.sinks)]) for (let p = 0; p < partitions; p++) keys.push(`${prefix}:{${p}}:dlq:${s}`);
  return totalLength(redis, keys);
}

export interface CommandStat {
  calls: number;
  usec: number;
}

export async function commandStats(redis: Redis): Promise<Map<string, CommandStat>> {
  const info = await redis.info('commandstats');
  const out = new Map<string, CommandStat>();
  for (const line of info.split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (m) out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out;
}

export interface CommandDelta {
  command: string;
  calls: number;
  /** Total time Redis spent in the command over the window, ms. */
  ms: number;
  usPerCall: number;
  /** Share of Redis's command time over the window. */
  share: number;
}

/** What Redis spent its time on between two snapshots (all clients: other users of a shared Redis too). */
export function commandDelta(before: Map<string, CommandStat>, after: Map<string, CommandStat>, top = 12): CommandDelta[] {
  const rows: CommandDelta[] = [];
  for (const [cmd, a] of after) {
    const b = before.get(cmd) ?? { calls: 0, usec: 0 };
    const calls = a.calls - b.calls;
    const usec = a.usec - b.usec;
    if (calls > 0) rows.push({ command: cmd, calls, ms: usec / 1000, usPerCall: usec / calls, share: 0 });
  }
  const total = rows.reduce((n, r) => n + r.ms, 0) || 1;
  for (const r of rows) {
    r.share = r.ms / total;
    r.ms = Math.round(r.ms);
    r.usPerCall = Math.round(r.usPerCall * 10) / 10;
    r.share = Math.round(r.share * 1000) / 1000;
  }
  return rows.sort((x, y) => y.ms - x.ms).slice(0, top);
}

export async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? 0);
}

export async function redisServerInfo(redis: Redis): Promise<{ version: string; pid: number; ioThreads: number }> {
  const info = await redis.info('server');
  const field = (n: string) => new RegExp(`^${n}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '';
  return { version: field('redis_version'), pid: Number(field('process_id')), ioThreads: Number(field('io_threads_active') || 0) };
}

/** Remove every key under a prefix (SCAN + UNLINK; never KEYS on a shared server). */
export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000);
    cursor = next;
    if (keys.length) n += await redis.unlink(...keys);
  } while (cursor !== '0');
  return n;
}
