// Worker heartbeats: every worker publishes, once per interval, who it is, what it runs and its
// cumulative counters, so operators (`rill status`) see live and dead workers and their rates
// without scraping any process.
//
//   <prefix>:g:workers       hash  worker id → JSON WorkerRecord
//   <prefix>:g:workers-seen  zset  worker id → last heartbeat (unix ms)
//
// A worker is live while its last heartbeat is at most LIVE_INTERVALS intervals old. A worker
// that stops cleanly removes its entries; a crashed one stays (shown as dead) until some other
// worker forgets it, `forgetAfterMs` after its last heartbeat.
//
// The two keys have no hash tag (they are global), so they are written with separate commands,
// never a MULTI: that also works on Redis Cluster. Readers take the sorted set's score as the
// truth for "last seen" and fall back to the record's seen_at.
import { existsSync, readFileSync } from 'node:fs';
import type { Keys } from '../keys.ts';
import type { Logger } from '../logger.ts';
import type { Registry } from '../metrics.ts';
import { gauge } from '../metrics.ts';
import type { RedisClient } from '../redis.ts';
import { TIMED_OUT, within } from './within.ts';

/** This build's version (package.json), so operators see which versions run side by side. */
const RILL_VERSION: string = (() => {
  try {
    // beside the sources, or two levels up from a build in dist/
    const file = [new URL('../../package.json', import.meta.url), new URL('../../../package.json', import.meta.url)].find((u) => existsSync(u));
    return file ? String((JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version ?? 'unknown') : 'unknown';
  } catch {
    return 'unknown';
  }
})();

/** A worker is live while seen within this many of its heartbeat intervals. */
export const LIVE_INTERVALS = 3;
export const DEFAULT_HEARTBEAT_MS = 5_000;
const DEFAULT_FORGET_MS = 3_600_000;
const STOP_WAIT_MS = 2_000;

/** Cumulative counters of one worker process (they restart from zero with the process). */
export interface WorkerStats {
  /** rill_stage_events_total by stage and outcome. */
  stages: Record<string, { ok: number; retry: number; dead_letter: number }>;
  sinks: Record<
    string,
    {
      /** rill_sink_rows_total: new rows written. */
      rows: number;
      /** Flushes done (rill_sink_flush_duration_seconds_count). */
      flushes: number;
      /** Unix ms of the last flush (to within one heartbeat interval), null before the first. */
      last_flush_at: number | null;
    }
  >;
}

export interface WorkerRecord {
  id: string;
  host: string;
  pid: number;
  components: string[];
  /** Unix ms. */
  started_at: number;
  /** Unix ms of this heartbeat. */
  seen_at: number;
  interval_ms: number;
  /** Rill's package version and the Node.js version the worker runs (absent from older workers). */
  version?: string;
  node?: string;
  stats: WorkerStats;
  /** The previous heartbeat's counters, so one read gives a rate: (stats − prev.stats) / (seen_at − prev.seen_at). */
  prev?: { seen_at: number; stats: WorkerStats };
}

export interface WorkerView extends WorkerRecord {
  live: boolean;
}

export interface HeartbeatOptions {
  redis: RedisClient;
  keys: Keys;
  /** Stable worker id, e.g. `<host>-<consumer id or pid>`. */
  id: string;
  host: string;
  components: string[];
  registry: Registry;
  logger: Logger;
  intervalMs?: number;
  /** Entries of workers unseen this long are removed by whichever worker notices (default 1 h). */
  forgetAfterMs?: number;
  /** For tests. */
  now?: () => number;
}

export interface Heartbeat {
  stop(): Promise<void>;
}

export function startHeartbeat(o: HeartbeatOptions): Heartbeat {
  const intervalMs = o.intervalMs ?? DEFAULT_HEARTBEAT_MS;
  const forgetAfterMs = Math.max(o.forgetAfterMs ?? DEFAULT_FORGET_MS, LIVE_INTERVALS * intervalMs);
  const now = o.now ?? Date.now;
  const hashKey = o.keys.global('workers');
  const seenKey = o.keys.global('workers-seen');
  const stamp = gauge(o.registry, 'rill_worker_heartbeat_timestamp_seconds', 'Unix time of the last heartbeat this worker published to Redis', ['worker']);
  const startedAt = now();
  const flushes = new FlushClock();
  let prev: WorkerRecord['prev'];
  let stopped = false;
  let failing = false;
  let inFlight: Promise<void> | undefined;

  const beat = async (): Promise<void> => {
    try {
      const stats = await readWorkerStats(o.registry, flushes, now());
      const seenAt = now();
      const record: WorkerRecord = {
        id: o.id,
        host: o.host,
        pid: process.pid,
        components: [...o.components],
        started_at: startedAt,
        seen_at: seenAt,
        interval_ms: intervalMs,
        version: RILL_VERSION,
        node: process.version,
        stats,
        ...(prev ? { prev } : {}),
      };
      // the hash first: a reader that sees the score finds the record
      await o.redis.hset(hashKey, o.id, JSON.stringify(record));
      await o.redis.zadd(seenKey, seenAt, o.id);
      if (stopped) return; // stop() ran meanwhile and removes what was just written
      prev = { seen_at: seenAt, stats };
      stamp.set({ worker: o.id }, seenAt / 1000);
      await forgetDead(o.redis, hashKey, seenKey, seenAt - forgetAfterMs);
      if (failing) o.logger.info({ worker: o.id }, 'heartbeat published again');
      failing = false;
    } catch (err) {
      // logged once per outage, not once per interval
      if (!failing) o.logger.warn({ err, worker: o.id }, 'heartbeat failed; will retry every interval');
      failing = true;
    }
  };

  const tick = () => {
    // a beat still waiting for Redis is not queued behind: the next one carries newer numbers
    if (inFlight) return;
    inFlight = beat().finally(() => (inFlight = undefined));
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();

  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      // never hold a shutdown for long: an unreachable Redis makes the entry dead by itself
      await within(STOP_WAIT_MS, inFlight ?? Promise.resolve());
      stamp.remove({ worker: o.id });
      try {
        const removed = await within(STOP_WAIT_MS, Promise.all([o.redis.zrem(seenKey, o.id), o.redis.hdel(hashKey, o.id)]));
        if (removed === TIMED_OUT) throw new Error(`Redis did not answer within ${STOP_WAIT_MS} ms`);
      } catch (err) {
        o.logger.warn({ err, worker: o.id }, 'could not remove the heartbeat; it turns dead by itself');
      }
    },
  };
}

/** Remove workers last seen before `cutoff` (unix ms). Races with other workers are harmless. */
async function forgetDead(redis: RedisClient, hashKey: string, seenKey: string, cutoff: number): Promise<void> {
  const dead = await redis.zrangebyscore(seenKey, '-inf', `(${cutoff}`, 'LIMIT', 0, 100);
  if (!dead.length) return;
  await redis.hdel(hashKey, ...dead);
  await redis.zrem(seenKey, ...dead);
}

/**
 * Tracks when each sink last flushed: the flush count is read at every heartbeat, and a change
 * dates the last flush to that heartbeat. A `rill_sink_last_flush_timestamp_seconds{sink}` gauge,
 * when a sink exports one, is exact and wins.
 */
export class FlushClock {
  private readonly seen = new Map<string, { flushes: number; at: number | null }>();

  observe(sink: string, flushes: number, now: number): number | null {
    const last = this.seen.get(sink);
    const at = !last ? (flushes > 0 ? now : null) : flushes !== last.flushes ? now : last.at;
    this.seen.set(sink, { flushes, at });
    return at;
  }
}

/** The worker's cumulative counters, from its own metrics registry. */
export async function readWorkerStats(registry: Registry, clock: FlushClock = new FlushClock(), now = Date.now()): Promise<WorkerStats> {
  const stats: WorkerStats = { stages: {}, sinks: {} };
  const sink = (name: string) => (stats.sinks[name] ??= { rows: 0, flushes: 0, last_flush_at: null });
  for (const v of await values(registry, 'rill_stage_events_total')) {
    const stage = String(v.labels.stage ?? '');
    const outcome = String(v.labels.outcome ?? '');
    if (!stage || (outcome !== 'ok' && outcome !== 'retry' && outcome !== 'dead_letter')) continue;
    const s = (stats.stages[stage] ??= { ok: 0, retry: 0, dead_letter: 0 });
    s[outcome] += v.value;
  }
  for (const v of await values(registry, 'rill_sink_rows_total')) if (v.labels.sink) sink(String(v.labels.sink)).rows += v.value;
  for (const v of await values(registry, 'rill_sink_flush_duration_seconds')) {
    if (v.labels.sink && v.metricName === 'rill_sink_flush_duration_seconds_count') sink(String(v.labels.sink)).flushes += v.value;
  }
  for (const [name, s] of Object.entries(stats.sinks)) s.last_flush_at = clock.observe(name, s.flushes, now);
  for (const v of await values(registry, 'rill_sink_last_flush_timestamp_seconds')) {
    if (v.labels.sink && v.value > 0) sink(String(v.labels.sink)).last_flush_at = Math.round(v.value * 1000);
  }
  return stats;
}

interface Sample {
  labels: Record<string, string | number | undefined>;
  value: number;
  metricName?: string;
}

async function values(registry: Registry, name: string): Promise<Sample[]> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return [];
  return (await metric.get()).values as Sample[];
}

/** Every worker that has published a heartbeat (and was not forgotten), live ones first. */
export async function readWorkers(redis: RedisClient, keys: Keys, now = Date.now()): Promise<WorkerView[]> {
  const [hash, seen] = await Promise.all([redis.hgetall(keys.global('workers')), redis.zrange(keys.global('workers-seen'), '0', '-1', 'WITHSCORES')]);
  const seenAt = new Map<string, number>();
  for (let i = 0; i + 1 < seen.length; i += 2) seenAt.set(seen[i]!, Number(seen[i + 1]));
  const out: WorkerView[] = [];
  for (const [id, json] of Object.entries(hash)) {
    let r: WorkerRecord;
    try {
      r = JSON.parse(json) as WorkerRecord;
    } catch {
      continue; // not ours to interpret; the writer will overwrite it
    }
    const seenMs = Math.max(seenAt.get(id) ?? 0, Number(r.seen_at) || 0);
    const interval = Number(r.interval_ms) || DEFAULT_HEARTBEAT_MS;
    out.push({
      ...r,
      id,
      components: Array.isArray(r.components) ? r.components : [],
      stats: r.stats ?? { stages: {}, sinks: {} },
      seen_at: seenMs,
      interval_ms: interval,
      live: now - seenMs <= LIVE_INTERVALS * interval,
    });
  }
  return out.sort((a, b) => Number(b.live) - Number(a.live) || a.id.localeCompare(b.id));
}

/** Live workers per component (stage or sink) named in `components`; components without any count 0. */
export function liveWorkersBy(workers: readonly WorkerView[], components: readonly string[]): Map<string, number> {
  const counts = new Map(components.map((c) => [c, 0]));
  for (const w of workers) {
    if (!w.live) continue;
    for (const c of new Set(w.components)) if (counts.has(c)) counts.set(c, counts.get(c)! + 1);
  }
  return counts;
}
