// Redis memory by key family: which of an instance's keys hold how many bytes. Every key of a
// prefix is classified from the key layout (core/keys.ts, ingest's rate-limit bucket, the
// processors' partitioned state); a sample of each family is weighed with MEMORY USAGE and the
// family's total extrapolated from its key count. `rill status` shows it; the bench turns it into
// bytes per transaction and a projection of Redis memory after a day.
import type { Redis } from 'ioredis';
import type { RedisClient } from './redis-client.ts';
import { onEveryMaster } from './slot-pipeline.ts';

/**
 * How a family grows: `stream` with the entries a topic keeps, `per-event` with every transaction
 * (until its TTL), `per-merchant` with the merchants (not the rate), `transient` with what is in
 * flight (empty in a steady state), `fixed` neither.
 */
export type FamilyKind = 'stream' | 'per-event' | 'per-merchant' | 'transient' | 'fixed';

export interface FamilyMemory {
  /** e.g. `stream:transactions`, `idempotency`, `ledger-records`. */
  family: string;
  kind: FamilyKind;
  /** Keys of the family (extrapolated when the scan was cut short). */
  keys: number;
  /** Keys weighed with MEMORY USAGE. */
  sampled: number;
  /** Estimated bytes: the sampled keys' mean × keys. */
  bytes: number;
  /** Stream entries (XLEN) or hash fields (HLEN) of the family, estimated the same way. */
  entries: number | null;
  /** The largest PTTL among the sampled keys, ms (null: none of them expires). */
  ttlMs: number | null;
}

export interface RedisMemoryReport {
  prefix: string;
  /** INFO memory used_memory of the server(s): every prefix and client, not only this one. */
  usedMemory: number;
  families: FamilyMemory[];
  /** Sum of the families' bytes. */
  bytes: number;
  keys: number;
  /** False when the scan stopped at `maxKeys` and the key counts are extrapolated. */
  complete: boolean;
}

export interface MemoryOptions {
  /** Topic names (their lane streams are `<topic>:<lane>`). */
  topics: readonly string[];
  /** Keys weighed per family and Redis node (default 64). */
  samplesPerFamily?: number;
  /** MEMORY USAGE … SAMPLES n for streams and hashes: 0 = exact (default 5, Redis's own). */
  memorySamples?: number;
  /** Stop scanning after this many keys of the prefix per node and extrapolate (default: scan all). */
  maxKeys?: number;
}

interface FamilyRule {
  family: string;
  kind: FamilyKind;
  /** The segment after `<prefix>:{<partition>}:`. */
  head: string;
  /** What to count as entries: stream entries or hash fields. */
  count?: 'xlen' | 'hlen';
}

/** Partitioned keys by their first segment after the hash tag. */
const RULES: readonly FamilyRule[] = [
  { head: 'idem', family: 'idempotency', kind: 'per-event' },
  { head: 'risk', family: 'risk-records', kind: 'per-event' },
  { head: 'ledger', family: 'ledger-records', kind: 'per-event' },
  { head: 'payins', family: 'refundable-payins', kind: 'per-event', count: 'hlen' },
  { head: 'rl', family: 'rate-limit', kind: 'per-merchant' },
  { head: 'vel', family: 'velocity', kind: 'per-merchant' },
  { head: 'riskf', family: 'risk-features', kind: 'per-merchant' },
  { head: 'risk-prior', family: 'risk-features', kind: 'per-merchant' },
  { head: 'wallet', family: 'ledger-state', kind: 'per-merchant' },
  { head: 'alerted', family: 'ledger-state', kind: 'per-merchant' },
  // the ledger's count of a merchant's refunds let through (processors/ledger: the cold-payin check)
  { head: 'refunds', family: 'ledger-state', kind: 'per-merchant' },
  { head: 'review', family: 'review', kind: 'transient' },
  { head: 'review-decided', family: 'review', kind: 'transient' },
  { head: 'park', family: 'parked', kind: 'transient' },
  { head: 'delay', family: 'retries', kind: 'transient' },
  { head: 'dlq', family: 'dead-letters', kind: 'transient', count: 'xlen' },
  { head: 'dlq-index', family: 'dead-letters', kind: 'transient' },
  { head: 'lease', family: 'leases', kind: 'fixed' },
  { head: 'wh', family: 'webhooks', kind: 'transient' },
];
const BY_HEAD = new Map(RULES.map((r) => [r.head, r]));
const STREAM_RULE = { kind: 'stream', count: 'xlen' } as const;

/** The family of one key of `prefix` (undefined: not a key of this prefix). */
export function classifyKey(
  prefix: string,
  key: string,
  topics: ReadonlySet<string>,
): { family: string; kind: FamilyKind; count?: 'xlen' | 'hlen' } | undefined {
  if (!key.startsWith(`${prefix}:`)) return undefined;
  const rest = key.slice(prefix.length + 1);
  if (rest.startsWith('g:')) return { family: 'global', kind: 'fixed' };
  const tag = /^\{\d+\}:/.exec(rest);
  if (!tag) return { family: 'other', kind: 'fixed' };
  const tail = rest.slice(tag[0].length);
  const cut = tail.lastIndexOf(':');
  // a topic's lane stream: <topic>:<lane> (a topic name has no colon)
  if (cut > 0 && tail.indexOf(':') === cut && topics.has(tail.slice(0, cut))) return { family: `stream:${tail.slice(0, cut)}`, ...STREAM_RULE };
  const head = tail.split(':', 1)[0]!;
  const rule = BY_HEAD.get(head);
  return rule ? { family: rule.family, kind: rule.kind, count: rule.count } : { family: 'other', kind: 'fixed' };
}

interface Bucket {
  family: string;
  kind: FamilyKind;
  count?: 'xlen' | 'hlen';
  keys: number;
  /** Reservoir sample of the family's keys on this node. */
  sample: string[];
}

interface NodeResult {
  scanned: number;
  complete: boolean;
  families: FamilyMemory[];
}

async function measureNode(node: Redis, prefix: string, topics: ReadonlySet<string>, o: Required<Omit<MemoryOptions, 'topics'>>): Promise<NodeResult> {
  const buckets = new Map<string, Bucket>();
  let cursor = '0';
  let scanned = 0;
  let complete = true;
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const c = classifyKey(prefix, key, topics);
      if (!c) continue;
      let b = buckets.get(c.family);
      if (!b) buckets.set(c.family, (b = { ...c, keys: 0, sample: [] }));
      b.keys++;
      // reservoir sampling: every key of the family equally likely to be weighed
      if (b.sample.length < o.samplesPerFamily) b.sample.push(key);
      else {
        const j = Math.floor(Math.random() * b.keys);
        if (j < o.samplesPerFamily) b.sample[j] = key;
      }
    }
    scanned += keys.length;
    if (cursor !== '0' && scanned >= o.maxKeys) complete = false;
  } while (cursor !== '0' && complete);
  let scale = 1;
  if (!complete) {
    // SCAN visits about COUNT slots a call: the share of the keyspace seen ≈ calls × 1000 / dbsize
    const dbsize = await node.dbsize();
    const calls = Math.ceil(scanned / 1000);
    scale = Math.max(1, dbsize / Math.max(1, calls * 1000));
  }
  const all = [...buckets.values()];
  const pipe = node.pipeline();
  for (const b of all) {
    for (const key of b.sample) {
      pipe.call('MEMORY', 'USAGE', key, 'SAMPLES', String(o.memorySamples));
      pipe.pttl(key);
      if (b.count === 'xlen') pipe.xlen(key);
      else if (b.count === 'hlen') pipe.hlen(key);
    }
  }
  const replies = (await pipe.exec()) ?? [];
  let i = 0;
  const families = all.map((b): FamilyMemory => {
    let bytes = 0;
    let entries = 0;
    let weighed = 0;
    let ttlMs: number | null = null;
    for (let k = 0; k < b.sample.length; k++) {
      const [memErr, mem] = replies[i++]!;
      const [, ttl] = replies[i++]!;
      const [, n] = b.count ? replies[i++]! : [null, 0];
      if (memErr || mem === null) continue; // gone since the scan (expired, trimmed away)
      weighed++;
      bytes += Number(mem);
      entries += Number(n ?? 0);
      if (Number(ttl) > 0) ttlMs = Math.max(ttlMs ?? 0, Number(ttl));
    }
    const keys = Math.round(b.keys * scale);
    const per = weighed ? keys / weighed : 0;
    return {
      family: b.family,
      kind: b.kind,
      keys,
      sampled: weighed,
      bytes: Math.round(bytes * per),
      entries: b.count ? Math.round(entries * per) : null,
      ttlMs,
    };
  });
  return { scanned, complete, families };
}

/** Bytes by key family of one prefix, over every master of a cluster. */
export async function redisMemoryByFamily(redis: RedisClient, prefix: string, opts: MemoryOptions): Promise<RedisMemoryReport> {
  const o = { samplesPerFamily: opts.samplesPerFamily ?? 64, memorySamples: opts.memorySamples ?? 5, maxKeys: opts.maxKeys ?? Number.POSITIVE_INFINITY };
  const topics = new Set(opts.topics);
  const nodes = await onEveryMaster(redis, async (node) => ({
    result: await measureNode(node, prefix, topics, o),
    used: Number(/^used_memory:(\d+)/m.exec(await node.info('memory'))?.[1] ?? 0),
  }));
  const merged = new Map<string, FamilyMemory>();
  for (const { result } of nodes) {
    for (const f of result.families) {
      const m = merged.get(f.family);
      if (!m) merged.set(f.family, { ...f });
      else {
        m.keys += f.keys;
        m.sampled += f.sampled;
        m.bytes += f.bytes;
        m.entries = m.entries === null || f.entries === null ? (m.entries ?? f.entries) : m.entries + f.entries;
        m.ttlMs = f.ttlMs === null ? m.ttlMs : Math.max(m.ttlMs ?? 0, f.ttlMs);
      }
    }
  }
  const families = [...merged.values()].sort((a, b) => b.bytes - a.bytes);
  return {
    prefix,
    usedMemory: nodes.reduce((n, x) => n + x.used, 0),
    families,
    bytes: families.reduce((n, f) => n + f.bytes, 0),
    keys: families.reduce((n, f) => n + f.keys, 0),
    complete: nodes.every((x) => x.result.complete),
  };
}
