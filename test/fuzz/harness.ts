// Shared by the fuzz and security tests: the ingest app in-process with the same dependencies
// startTestIngest (ingest/testing.ts) gives the server, a log capture, route discovery, the
// problem+json checks, and stream-length bookkeeping for "nothing appended" assertions.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { Keys } from '../../core/keys.ts';
import { createRegistry } from '../../core/metrics.ts';
import type { Registry } from '../../core/metrics.ts';
import type { PgPool } from '../../core/postgres.ts';
import type { RedisClient } from '../../core/redis.ts';
import { loadTopology } from '../../core/topology/load.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { createIngestApp } from '../../ingest/app.ts';
import type { IngestApp, IngestDeps, IngestLimits } from '../../ingest/app.ts';
import { KeyStore } from '../../core/api-keys.ts';
import type { KeyStoreOptions } from '../../core/api-keys.ts';
import { loadSampler, pipelineKeys } from '../../ingest/backpressure/measure.ts';
import { LoadShedder } from '../../ingest/backpressure/shedder.ts';
import type { LoadGate } from '../../ingest/backpressure/shedder.ts';
import { TOPOLOGY_FILE } from '../../ingest/testing.ts';
import type { RillEnv } from '../../core/config.ts';

/** Collects pino's JSON lines; `onLine` sees each one as it is written. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  constructor(
    private readonly keep = 10_000,
    readonly onLine?: (line: string) => void,
  ) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      this.onLine?.(line);
      if (this.lines.length < this.keep) this.lines.push(line);
    }
    done();
  }
  text(): string {
    return this.lines.join('\n');
  }
  /** Lines at pino level >= `level` (50 = error). */
  atLeast(level: number): string[] {
    return this.lines.filter((l) => {
      try {
        return (JSON.parse(l) as { level?: number }).level! >= level;
      } catch {
        return true;
      }
    });
  }
}

export interface InProcessIngest {
  app: IngestApp;
  deps: IngestDeps;
  topology: Topology;
  registry: Registry;
  keyStore: KeyStore;
  logger: Logger;
  /** Stops the load shedder (when one runs). */
  stop(): Promise<void>;
}

export interface InProcessOptions {
  /** pino level of the captured logger (default 'info'). */
  level?: string;
  log?: Writable;
  limits?: Partial<IngestLimits>;
  keyStore?: KeyStoreOptions;
  /** 'shedder' (default): a LoadShedder sampling Redis, as startIngest runs; or a gate of your own. */
  load?: 'shedder' | LoadGate;
  topology?: Topology;
}

/**
 * createIngestApp with the dependencies startTestIngest builds (the shipped topology, a fresh
 * registry, a KeyStore on the instance's pool) plus the load shedder startIngest would start:
 * the same app the test server serves, driven through `app.fetch` without sockets.
 */
export function inProcessIngest(instance: { env: RillEnv; redis: RedisClient; pool: PgPool }, opts: InProcessOptions = {}): InProcessIngest {
  const topology = opts.topology ?? loadTopology(TOPOLOGY_FILE);
  const registry = createRegistry();
  const keyStore = new KeyStore(instance.pool, opts.keyStore);
  const logger = pino({ level: opts.level ?? 'info' }, opts.log ?? new LogCapture());
  const base: IngestDeps = {
    env: instance.env,
    topology,
    redis: instance.redis,
    pool: instance.pool,
    registry,
    logger,
    keyStore,
    ...(opts.limits ? { limits: opts.limits } : {}),
  };
  let shedder: LoadShedder | undefined;
  let load: LoadGate;
  if (opts.load === undefined || opts.load === 'shedder') {
    shedder = new LoadShedder({
      measure: loadSampler(instance.redis, pipelineKeys(topology, new Keys(instance.env.prefix)), topology.ingest.backpressure.max_memory_bytes),
      config: topology.ingest.backpressure,
      registry,
      logger,
      timeoutMs: 2_000,
    });
    shedder.start();
    load = shedder;
  } else {
    load = opts.load;
  }
  const deps: IngestDeps = { ...base, load };
  return {
    app: createIngestApp(deps),
    deps,
    topology,
    registry,
    keyStore,
    logger,
    stop: async () => {
      await shedder?.stop();
    },
  };
}

export interface RouteInfo {
  method: string;
  /** Hono pattern, e.g. /v1/transactions/:id */
  path: string;
}

/** The app's routes (not its middleware), one per method and pattern. */
export function discoverRoutes(app: IngestApp): RouteInfo[] {
  const seen = new Set<string>();
  const out: RouteInfo[] = [];
  for (const r of app.routes) {
    if (r.method === 'ALL') continue;
    const k = `${r.method} ${r.path}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ method: r.method, path: r.path });
  }
  return out;
}

/** Routes behind an API key: everything under /v1/. */
export const isApiRoute = (r: RouteInfo): boolean => r.path.startsWith('/v1/');
export const isWriteMethod = (m: string): boolean => !['GET', 'HEAD', 'OPTIONS'].includes(m.toUpperCase());

/** Every lane stream of every topic of the instance: where an accepted event can land. */
export function streamKeys(topology: Topology, prefix: string): string[] {
  const keys = new Keys(prefix);
  const out: string[] = [];
  for (const [topic, t] of Object.entries(topology.topics)) {
    for (let p = 0; p < t.partitions; p++) for (const lane of topology.priorities) out.push(keys.lane(topic, p, lane.name));
  }
  return out;
}

/** Sum of XLEN over `keys`: one pipeline per hash tag (one slot each, so Redis Cluster works too), all at once. */
export async function totalLength(redis: RedisClient, keys: readonly string[]): Promise<number> {
  const bySlot = new Map<string, string[]>();
  for (const k of keys) {
    const tag = /\{[^}]*\}/.exec(k)?.[0] ?? k;
    bySlot.set(tag, [...(bySlot.get(tag) ?? []), k]);
  }
  const sums = await Promise.all(
    [...bySlot.values()].map(async (group) => {
      const pipe = redis.pipeline();
      for (const k of group) pipe.xlen(k);
      let n = 0;
      for (const [err, v] of (await pipe.exec()) ?? []) {
        if (err) throw err;
        n += Number(v);
      }
      return n;
    }),
  );
  return sums.reduce((a, b) => a + b, 0);
}

/** How many events a 2xx answer says it appended: 1 for a fresh 202, the accepted lines of a batch. */
export function appendedBy(status: number, headers: Headers, body: string): number {
  if (status !== 202) return 0;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return 0;
  }
  if (parsed && typeof parsed === 'object' && Array.isArray((parsed as { results?: unknown }).results)) {
    return (parsed as { results: { status?: unknown }[] }).results.filter((r) => r?.status === 'accepted').length;
  }
  if ((parsed as { status?: unknown })?.status === 'accepted' && headers.get('idempotent-replayed') !== 'true') return 1;
  return 0;
}

const STACK = /\bat .+\.(ts|js|mjs|cjs):\d+/;

/**
 * Why an error answer is not RFC 9457 problem+json as design §3 requires (undefined when it is).
 * `body` is undefined for HEAD answers, which carry no body.
 */
export function problemViolation(status: number, headers: Headers, body: string | undefined): string | undefined {
  const type = headers.get('content-type') ?? '';
  if (!/^application\/problem\+json\b/i.test(type)) return `content-type is "${type}", not application/problem+json`;
  if (body === undefined) return undefined;
  if (STACK.test(body)) return 'the body carries a stack trace';
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(body) as Record<string, unknown>;
  } catch {
    return 'the body is not JSON';
  }
  if (!p || typeof p !== 'object' || Array.isArray(p)) return 'the body is not a JSON object';
  for (const f of ['type', 'title', 'detail'] as const) if (typeof p[f] !== 'string' || !(p[f] as string).length) return `"${f}" is not a non-empty string`;
  if (p.status !== status) return `"status" is ${JSON.stringify(p.status)}, the answer ${status}`;
  if (p.errors !== undefined) {
    if (!Array.isArray(p.errors)) return '"errors" is not a list';
    for (const e of p.errors as unknown[]) {
      const fe = e as { path?: unknown; message?: unknown };
      if (!fe || typeof fe.path !== 'string' || typeof fe.message !== 'string') return `"errors" has an entry without path/message: ${JSON.stringify(e)}`;
      if (fe.path !== '' && !fe.path.startsWith('/')) return `"errors" path ${JSON.stringify(fe.path)} is not a JSON Pointer`;
    }
  }
  return undefined;
}

/** Headers each status must carry (design §3): Retry-After on 429/503, a challenge on 401, Allow on 405. */
export function headerViolation(status: number, headers: Headers): string | undefined {
  if ((status === 429 || status === 503) && !/^\d+$/.test(headers.get('retry-after') ?? '')) return `${status} without a Retry-After in seconds`;
  if (status === 401 && !/^Bearer\b/i.test(headers.get('www-authenticate') ?? '')) return '401 without WWW-Authenticate: Bearer';
  if (status === 405 && !headers.get('allow')) return '405 without Allow';
  return undefined;
}

/** Keys on Object.prototype that should not be there: prototype pollution. */
export function prototypePollution(): string[] {
  const found: string[] = [];
  for (const k in {}) found.push(k);
  for (const k of ['polluted', 'isAdmin', 'merchant_id', 'amount', 'x']) if (k in Object.prototype) found.push(k);
  return found;
}

/** Open tap connections of these key ids (named rill:tap:<key id> in CLIENT LIST). */
export async function tapClients(redis: RedisClient, keyIds: readonly string[]): Promise<{ id: string; name: string }[]> {
  const list = String(await (redis as import('ioredis').Redis).client('LIST'));
  const out: { id: string; name: string }[] = [];
  for (const line of list.split('\n')) {
    const name = /\bname=(\S*)/.exec(line)?.[1] ?? '';
    const id = /\bid=(\d+)/.exec(line)?.[1];
    if (id && keyIds.some((k) => name === `rill:tap:${k}`)) out.push({ id, name });
  }
  return out;
}

/** Close tap connections of these key ids (only ours, by client id): their streams then end and release their slots. */
export async function killTapClients(redis: RedisClient, keyIds: readonly string[]): Promise<number> {
  const clients = await tapClients(redis, keyIds);
  for (const c of clients) await (redis as import('ioredis').Redis).client('KILL', 'ID', c.id).catch(() => 0);
  return clients.length;
}
