// The pipeline at a glance, from Redis alone: two samples of the streams, groups and worker
// heartbeats, and the report built from them (rates between the samples). One home for
// `rill status` and the console's live views.
import type { Keys } from '../keys.ts';
import type { RedisClient } from '../redis.ts';
import type { Topology } from '../topology/schema.ts';
import { readWorkers } from './heartbeat.ts';
import type { WorkerStats, WorkerView } from './heartbeat.ts';
import { collectStreamStats } from './stream-stats.ts';
import type { StreamStats } from './stream-stats.ts';

export interface Sample {
  streams: StreamStats;
  workers: WorkerView[];
}

/** One sample of the streams and heartbeats; two of them make a report (buildReport). */
export async function collect(redis: RedisClient, keys: Keys, topology: Topology): Promise<Sample> {
  const [streams, workers] = await Promise.all([collectStreamStats(redis, keys, topology, { entriesAdded: true }), readWorkers(redis, keys)]);
  return { streams, workers };
}

// ---------------------------------------------------------------------------------------------
// The report (also the --json output)

export interface StatusReport {
  at: string;
  /** Seconds between the two stream samples the rates in and out are measured over. */
  sample_seconds: number;
  topics: {
    topic: string;
    partitions: number;
    external: boolean;
    lanes: {
      lane: string;
      length: number;
      in_per_sec: number | null;
      groups: { group: string; lag: number; lag_exact: boolean; pending: number; out_per_sec: number | null }[];
    }[];
  }[];
  stages: {
    stage: string;
    input: string;
    output: string;
    ordering: string;
    live_workers: number;
    events_per_sec: number | null;
    retries_per_sec: number | null;
    dead_lettered_per_sec: number | null;
    dead_letters: number;
    delay_set: number;
    /** ordering key: events parked (a waiting event and its merchant's later ones); null for ordering none. */
    parked: number | null;
  }[];
  sinks: {
    sink: string;
    input: string;
    table: string;
    live_workers: number;
    rows_per_sec: number | null;
    last_flush_at: string | null;
    last_flush_age_seconds: number | null;
    dead_letters: number;
  }[];
  workers: {
    id: string;
    host: string;
    pid: number;
    components: string[];
    live: boolean;
    started_at: string;
    seen_at: string;
    seen_age_seconds: number;
  }[];
}

export function buildReport(topology: Topology, a: Sample, b: Sample): StatusReport {
  const now = b.streams.at;
  const dt = Math.max(0.001, (b.streams.at - a.streams.at) / 1000);
  const rate = (x: number | null | undefined, y: number | null | undefined) =>
    x === null || x === undefined || y === null || y === undefined ? null : round(Math.max(0, y - x) / dt);
  const before = new Map(a.streams.lanes.map((l) => [`${l.topic}/${l.lane}`, l]));
  const topics: StatusReport['topics'] = Object.entries(topology.topics).map(([topic, t]) => ({
    topic,
    partitions: t.partitions,
    external: t.external,
    lanes: b.streams.lanes
      .filter((l) => l.topic === topic)
      .map((l) => {
        const old = before.get(`${topic}/${l.lane}`);
        return {
          lane: l.lane,
          length: l.length,
          in_per_sec: rate(old?.entriesAdded, l.entriesAdded),
          groups: l.groups.map((g) => ({
            group: g.group,
            lag: g.lag,
            lag_exact: g.lagExact,
            pending: g.pending,
            out_per_sec: rate(old?.groups.find((x) => x.group === g.group)?.acked, g.acked),
          })),
        };
      }),
  }));
  const live = b.workers.filter((w) => w.live);
  const liveOf = (name: string) => live.filter((w) => w.components.includes(name));
  const stages: StatusReport['stages'] = Object.entries(topology.stages).map(([stage, s]) => {
    const ws = liveOf(stage);
    const r = (pick: (x: WorkerStats['stages'][string]) => number) => heartbeatRate(ws, (st) => (st.stages[stage] ? pick(st.stages[stage]) : 0));
    return {
      stage,
      input: s.input,
      output: s.output,
      ordering: s.ordering,
      live_workers: ws.length,
      events_per_sec: r((x) => x.ok + x.retry + x.dead_letter),
      retries_per_sec: r((x) => x.retry),
      dead_lettered_per_sec: r((x) => x.dead_letter),
      dead_letters: b.streams.deadLetters[stage] ?? 0,
      delay_set: b.streams.delaySets[stage] ?? 0,
      parked: b.streams.parked[stage] ?? null,
    };
  });
  const sinks: StatusReport['sinks'] = Object.entries(topology.sinks).map(([sink, s]) => {
    const ws = liveOf(sink);
    // the last flush is history: dead workers' records count too
    const flushes = b.workers.map((w) => w.stats.sinks[sink]?.last_flush_at ?? null).filter((x): x is number => typeof x === 'number');
    const last = flushes.length ? Math.max(...flushes) : null;
    return {
      sink,
      input: s.input,
      table: s.type === 'postgres' ? s.table : '-',
      live_workers: ws.length,
      rows_per_sec: heartbeatRate(ws, (st) => st.sinks[sink]?.rows ?? 0),
      last_flush_at: last === null ? null : new Date(last).toISOString(),
      last_flush_age_seconds: last === null ? null : round(Math.max(0, now - last) / 1000),
      dead_letters: b.streams.deadLetters[sink] ?? 0,
    };
  });
  const workers: StatusReport['workers'] = b.workers.map((w) => ({
    id: w.id,
    host: w.host,
    pid: w.pid,
    components: w.components,
    live: w.live,
    started_at: new Date(w.started_at).toISOString(),
    seen_at: new Date(w.seen_at).toISOString(),
    seen_age_seconds: round(Math.max(0, now - w.seen_at) / 1000),
  }));
  return { at: new Date(now).toISOString(), sample_seconds: round(dt), topics, stages, sinks, workers };
}

/** Summed per-second rate of a counter over workers, each from its last two heartbeats; null when none can tell yet. */
function heartbeatRate(workers: readonly WorkerView[], value: (s: WorkerStats) => number): number | null {
  let total = 0;
  let known = false;
  for (const w of workers) {
    if (!w.prev || !(w.seen_at > w.prev.seen_at)) continue;
    total += Math.max(0, value(w.stats) - value(w.prev.stats)) / ((w.seen_at - w.prev.seen_at) / 1000);
    known = true;
  }
  return known ? round(total) : null;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

// ---------------------------------------------------------------------------------------------
// The screen
