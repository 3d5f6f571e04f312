// `rill status [--watch [SECONDS]] [--json] [--topology FILE]`: the pipeline at a glance, from
// Redis alone (no process is scraped): topics × lanes with length, rate in, and each consumer
// group's lag, pending and rate out; stages and sinks with their live workers and rates; workers
// with their last heartbeat.
//
// Rates: in = growth of the lane streams' entries-added (XINFO STREAM), out = growth of each
// group's acknowledged progress (entries-read − pending), both between two samples (~1 s apart,
// or one --watch period); stage events/s, retries/s and sink rows/s come from the workers'
// heartbeats (their cumulative counters at the last two beats).
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { readEnv } from '../../core/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { Keys } from '../../core/keys.ts';
import type { RedisClient } from '../../core/redis.ts';
import { loadTopology } from '../../core/topology/load.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { buildReport, collect } from '../../core/observability/status-report.ts';
import { redisMemoryByFamily } from '../../core/redis-memory.ts';
import type { RedisMemoryReport } from '../../core/redis-memory.ts';
import type { Sample, StatusReport } from '../../core/observability/status-report.ts';
export type { StatusReport } from '../../core/observability/status-report.ts';
import { connectForCommand } from '../command-redis.ts';
import { describe, processIO, runCommand, table } from '../io.ts';
import type { CommandIO } from '../io.ts';
import { describeChains } from '../../core/topology/describe.ts';

export const STATUS_USAGE = `usage: rill status [--watch [SECONDS]] [--json] [--topology FILE]

Shows topics × lanes (length, lag, pending, rates in and out), stages (live workers, events/s,
retries/s, dead letters, delay set, parked), sinks (rows/s, last flush) and workers (host, components,
last heartbeat), read from Redis; without --watch also Redis memory by key family (streams per
topic, idempotency, per-transaction records, refundable payins, ...: MEMORY USAGE of a sample). Rates in and out are measured over ~1 s (or one --watch
period); stage and sink rates come from the workers' heartbeats. A lag marked ≤ is an upper
bound (Redis cannot tell it exactly after XDEL).

Options:
  --watch [SECONDS]  redraw every SECONDS (default 2) until Ctrl-C
  --json             one JSON object (with --watch: one per line, every period)
  --topology FILE    the topology (default $RILL_TOPOLOGY, else ./topology.yaml)
  -h, --help         show this help
`;

const OPTIONS = {
  json: { type: 'boolean' },
  topology: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface StatusIO extends CommandIO {
  /** Ends --watch (besides SIGINT/SIGTERM); for tests. */
  signal?: AbortSignal;
  /** Whether stdout is a terminal (redraws clear the screen); default: process.stdout.isTTY. */
  tty?: boolean;
}

/** `argv` is what follows `rill status`. Resolves to the exit code. */
export function statusCommand(argv: string[], io: StatusIO = processIO()): Promise<number> {
  return runCommand('status', io, () => run(argv, io));
}

/** --watch takes an optional value, which parseArgs cannot express: take it out first. */
function takeWatch(argv: readonly string[]): { rest: string[]; watch: number | undefined } {
  const rest: string[] = [];
  let watch: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const inline = /^--watch=(.*)$/.exec(a);
    if (a === '--watch' || a === '-w' || inline) {
      let v = inline?.[1];
      if (v === undefined && argv[i + 1] !== undefined && /^\d+(\.\d+)?$/.test(argv[i + 1]!)) v = argv[++i];
      if (v === undefined) watch = 2;
      else {
        const n = Number(v);
        if (!/^\d+(\.\d+)?$/.test(v) || n < 0.2 || n > 3600) throw new ConfigError(`--watch takes seconds from 0.2 to 3600, got "${v}"`);
        watch = n;
      }
    } else rest.push(a);
  }
  return { rest, watch };
}

async function run(argv: string[], io: StatusIO): Promise<number> {
  const { rest, watch } = takeWatch(argv);
  const { values } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: false, strict: true });
  if (values.help) {
    io.stdout.write(STATUS_USAGE);
    return 0;
  }
  const env = readEnv(io.env);
  const topology = loadTopology(values.topology ?? env.topologyPath);
  const keys = new Keys(env.prefix);
  const redis = await connectForCommand(env, 'rill:status'); // a later error is reported once, by the failing call
  try {
    const where = { redis: redactUrl(env.redisUrl), prefix: env.prefix };
    if (watch === undefined) {
      const a = await collect(redis, keys, topology);
      await sleep(1_000);
      const b = await collect(redis, keys, topology);
      const report = withChains(buildReport(topology, a, b), topology);
      const memory = await redisMemoryByFamily(redis, env.prefix, { topics: Object.keys(topology.topics), maxKeys: MEMORY_SCAN_KEYS });
      io.stdout.write(values.json ? `${JSON.stringify({ ...report, memory }, null, 2)}\n` : `${render(report, where)}\n\n${renderMemory(memory)}\n`);
      return 0;
    }
    return await watchLoop(redis, keys, topology, watch, values.json ?? false, io, where);
  } finally {
    redis.disconnect();
  }
}

async function watchLoop(
  redis: RedisClient,
  keys: Keys,
  topology: Topology,
  seconds: number,
  json: boolean,
  io: StatusIO,
  where: { redis: string; prefix: string },
): Promise<number> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  io.signal?.addEventListener('abort', onSignal, { once: true });
  const tty = io.tty ?? Boolean((process.stdout as { isTTY?: boolean }).isTTY);
  const pause = async (ms: number) => {
    await sleep(ms, undefined, { signal: stop.signal }).catch(() => undefined);
  };
  try {
    let prev: Sample | undefined;
    let first = true;
    while (!stop.signal.aborted) {
      let started = Date.now();
      let out: string;
      try {
        if (!prev) {
          // the first screen needs two samples for its rates
          prev = await collect(redis, keys, topology);
          await pause(Math.min(1_000, seconds * 1_000));
          if (stop.signal.aborted) break;
          started = Date.now();
        }
        const next = await collect(redis, keys, topology);
        const report = withChains(buildReport(topology, prev, next), topology);
        prev = next;
        out = json ? JSON.stringify(report) : render(report, where);
      } catch (err) {
        // keep watching: Redis may come back; the next good sample starts the rates again
        prev = undefined;
        out = json
          ? JSON.stringify({ error: describe(err), at: new Date().toISOString() })
          : `rill status: ${describe(err)} (retrying every ${seconds}s; Ctrl-C to stop)`;
      }
      if (json) io.stdout.write(`${out}\n`);
      else io.stdout.write(tty ? `\x1b[H\x1b[2J${out}\n` : `${first ? '' : '\n'}${out}\n`);
      first = false;
      await pause(Math.max(0, seconds * 1_000 - (Date.now() - started)));
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    io.signal?.removeEventListener('abort', onSignal);
  }
}

/** The report with the topology's chains of stages (core/topology/chains.ts), one line each. */
function withChains(report: StatusReport, topology: Topology): StatusReport & { chains: string[] } {
  return { ...report, chains: describeChains(topology) };
}

export function render(r: StatusReport & { chains?: string[] }, where: { redis: string; prefix: string }): string {
  const out: string[] = [];
  out.push(`rill status  ${r.at.replace(/\.\d+Z$/, 'Z')}  ${where.redis}  prefix ${where.prefix}  rates over ${r.sample_seconds.toFixed(1)}s`);
  out.push('');
  const topicRows: string[][] = [];
  for (const t of r.topics) {
    for (const l of t.lanes) {
      const head = [t.topic + (t.external ? ' (ext)' : ''), l.lane, int(l.length), num(l.in_per_sec)];
      if (!l.groups.length) topicRows.push([...head, '-', '-', '-', '-']);
      for (const g of l.groups) topicRows.push([...head, g.group, `${g.lag_exact ? '' : '≤'}${int(g.lag)}`, int(g.pending), num(g.out_per_sec)]);
    }
  }
  out.push(table(['TOPIC', 'LANE', 'LENGTH', 'IN/S', 'GROUP', 'LAG', 'PENDING', 'OUT/S'], topicRows, [2, 3, 5, 6, 7]));
  if (r.stages.length) {
    out.push('');
    out.push(
      table(
        ['STAGE', 'INPUT', 'ORDERING', 'WORKERS', 'EVENTS/S', 'RETRIES/S', 'DEAD LETTERS', 'DELAY SET', 'PARKED'],
        r.stages.map((s) => [
          s.stage,
          s.input,
          s.ordering,
          String(s.live_workers),
          num(s.events_per_sec),
          num(s.retries_per_sec),
          int(s.dead_letters),
          int(s.delay_set),
          s.parked === null ? '-' : int(s.parked),
        ]),
        [3, 4, 5, 6, 7, 8],
      ),
    );
    if (r.chains) out.push(`chains: ${r.chains.join('; ')}`);
  }
  if (r.sinks.length) {
    out.push('');
    out.push(
      table(
        ['SINK', 'INPUT', 'TABLE', 'WORKERS', 'ROWS/S', 'LAST FLUSH', 'DEAD LETTERS'],
        r.sinks.map((s) => [
          s.sink,
          s.input,
          s.table,
          String(s.live_workers),
          num(s.rows_per_sec),
          s.last_flush_age_seconds === null ? 'never' : `${age(s.last_flush_age_seconds)} ago`,
          int(s.dead_letters),
        ]),
        [3, 4, 6],
      ),
    );
  }
  out.push('');
  if (r.workers.length) {
    const now = Date.parse(r.at);
    out.push(
      table(
        ['WORKER', 'HOST', 'PID', 'COMPONENTS', 'UP', 'LAST SEEN', 'STATE'],
        r.workers.map((w) => [
          w.id,
          w.host,
          String(w.pid),
          w.components.join(',') || '-',
          age((now - Date.parse(w.started_at)) / 1000),
          `${age(w.seen_age_seconds)} ago`,
          w.live ? 'live' : 'DEAD',
        ]),
        [2],
      ),
    );
  } else out.push('no workers have sent a heartbeat (is any `rill worker` running with this RILL_PREFIX?)');
  return out.join('\n');
}

/** Keys scanned per Redis node for the memory table; past it the counts are extrapolated. */
const MEMORY_SCAN_KEYS = 200_000;

/** Redis memory by key family, largest first. */
export function renderMemory(m: RedisMemoryReport): string {
  const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MB`;
  const rows = m.families.map((f) => [
    f.family,
    f.kind,
    `${m.complete ? '' : '~'}${int(f.keys)}`,
    f.entries === null ? '-' : int(f.entries),
    mb(f.bytes),
    f.ttlMs === null ? '-' : age(f.ttlMs / 1000),
  ]);
  const head = `Redis memory of prefix ${m.prefix}: ${mb(m.bytes)} in ${int(m.keys)} keys (the server's used_memory: ${mb(m.usedMemory)})`;
  return `${head}\n${table(['FAMILY', 'GROWS', 'KEYS', 'ENTRIES', 'BYTES', 'TTL'], rows, [2, 3, 4])}`;
}

function int(n: number): string {
  return n.toLocaleString('en-US');
}

function num(n: number | null): string {
  if (n === null) return '-';
  return n >= 1000 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

/** 0.4s, 12s, 3m12s, 2h05m, 3d04h */
export function age(seconds: number): string {
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, '0')}h`;
}

/** The Redis URL without its password. */
function redactUrl(url: string): string {
  return url
    .split(',')
    .map((u) => {
      try {
        const parsed = new URL(u.trim());
        if (parsed.password) parsed.password = '***';
        return parsed.toString().replace(/\/$/, '');
      } catch {
        return u;
      }
    })
    .join(',');
}
