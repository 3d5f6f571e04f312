// `rill tap <topic>`: print a topic's events, read straight from Redis without joining any consumer
// group (read-only), merged from every partition and lane in time order. NDJSON (the event with
// `_id` and `_stream`) or CSV (a header, then the transaction columns). Stops at --to or at the end
// of the streams as they were when it started, unless --follow.
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { readEnv } from '../../core/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { Keys } from '../../core/keys.ts';
import { createPool } from '../../core/postgres.ts';
import { historyTopics, postgresHistory } from '../../core/tap/history.ts';
import { parseTapEnd, parseTapStart } from '../../core/tap/position.ts';
import { openTap } from '../../core/tap/reader.ts';
import type { TapEvent } from '../../core/tap/reader.ts';
import { loadTopology } from '../../core/topology/load.ts';
import type { TransactionColumn } from '../../core/transactions-table.ts';
import { CommandRedis } from '../command-redis.ts';
import { processIO, runCommand } from '../io.ts';
import type { CommandIO } from '../io.ts';

export const TAP_USAGE = `usage: rill tap <topic> [--from T] [--to T] [--merchant ID] [--type TYPE]
                [--format ndjson|csv] [--follow] [--limit N]

Prints a topic's events in time order, read from Redis directly: no consumer group is joined,
nothing is acknowledged or written. NDJSON (default) is one event per line with its entry id
(_id) and lane stream (_stream); CSV is a header and one row per event.

Options:
  --from T         where to start: earliest, now, a duration back (10m, 1h, 7d), a unix time in
                   ms, an RFC 3339 time, or an entry id like 1717000000000-0 (inclusive)
                   (default: earliest; with --follow: now). earliest is the oldest entry still
                   in Redis; a time before it reads a postgres sink's input topic from Postgres
                   first (other topics refuse it)
  --to T           where to stop (inclusive), same forms as --from; without it the tap stops at
                   the end of the streams as they were when it started (unless --follow)
  --merchant ID    only this merchant's events
  --type TYPE      only events of this type (payin, payout, refund, chargeback, ...)
  --format F       ndjson (default) or csv
  --follow         keep printing new events as they arrive (Ctrl-C to stop; with --to, until
                   the clock passes it)
  --limit N        stop after N events
  --topology FILE  the topology (default $RILL_TOPOLOGY, else ./topology.yaml)
  -h, --help       show this help
`;

const OPTIONS = {
  from: { type: 'string' },
  to: { type: 'string' },
  merchant: { type: 'string' },
  type: { type: 'string' },
  format: { type: 'string' },
  follow: { type: 'boolean', short: 'f' },
  limit: { type: 'string' },
  topology: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface TapIO extends CommandIO {
  /** Stops a --follow tap (the command installs SIGINT/SIGTERM handlers when none is given). */
  signal?: AbortSignal;
}

/** The CSV's transaction columns, in the CSV's order: columns of the sink's `transactions` table. */
const CSV_TRANSACTION_COLUMNS = [
  ...['id', 'merchant_id', 'type', 'amount', 'currency', 'status', 'reference', 'risk_score'],
  ...['failure_code', 'failure_reason', 'metadata', 'occurred_at', 'ingested_at'],
] as const satisfies readonly TransactionColumn[];

/** The CSV columns: the transaction's, after where the entry sits. */
export const CSV_COLUMNS = ['_id', '_stream', ...CSV_TRANSACTION_COLUMNS] as const;

/** `argv` is what follows `rill tap`. Resolves to the exit code. */
export function tapCommand(argv: string[], io: TapIO = processIO()): Promise<number> {
  return runCommand('tap', io, () => run(argv, io));
}

async function run(argv: string[], io: TapIO): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  if (values.help) {
    io.stdout.write(TAP_USAGE);
    return 0;
  }
  const [topic, ...extra] = positionals;
  if (!topic) throw new ConfigError('missing topic, e.g. rill tap transactions (see rill tap --help)');
  if (extra.length) throw new ConfigError(`unexpected argument "${extra[0]}" (see rill tap --help)`);
  const format = values.format ?? 'ndjson';
  if (format !== 'ndjson' && format !== 'csv') throw new ConfigError(`--format must be ndjson or csv, got "${format}"`);
  const follow = values.follow ?? false;
  const now = Date.now();
  const from = parseTapStart(values.from ?? (follow ? 'now' : 'earliest'), now, '--from');
  const to = values.to === undefined ? undefined : parseTapEnd(values.to, now, '--to');
  const limit = values.limit === undefined ? undefined : parseLimit(values.limit);
  if (values.merchant !== undefined && !values.merchant.trim()) throw new ConfigError('--merchant needs a merchant id');
  if (values.type !== undefined && !values.type.trim()) throw new ConfigError('--type needs an event type');

  const env = readEnv(io.env);
  const topology = loadTopology(values.topology ?? env.topologyPath);
  if (!topology.topics[topic]) throw new ConfigError(`no topic named "${topic}" in the topology (topics: ${Object.keys(topology.topics).join(', ')})`);

  const connection = new CommandRedis(env, 'rill:tap');
  const redis = connection.redis as Redis;
  const abort = new AbortController();
  const stop = () => {
    abort.abort();
    redis.disconnect(); // ends a blocking read at once
  };
  if (io.signal) {
    if (io.signal.aborted) stop();
    else io.signal.addEventListener('abort', stop, { once: true });
  }
  const onSignal = () => stop();
  if (!io.signal) {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
  const out = new Output(io.stdout, follow, stop);
  // a start before the Redis window reads the sink's table; the pool connects only then
  const pool = historyTopics(topology).includes(topic) ? createPool(env, { max: 1, name: 'rill:tap' }) : undefined;
  try {
    await connection.connect();
    const tap = await openTap({
      redis,
      keys: new Keys(env.prefix),
      topology,
      topic,
      from,
      follow,
      signal: abort.signal,
      ...(pool ? { history: postgresHistory(pool, topology, topic) } : {}),
      ...(to ? { to } : {}),
      filter: {
        ...(values.merchant !== undefined ? { merchantId: values.merchant.trim() } : {}),
        ...(values.type !== undefined ? { type: values.type.trim() } : {}),
      },
    });
    if (format === 'csv') out.line(CSV_COLUMNS.join(','));
    let n = 0;
    for await (const ev of tap) {
      out.line(format === 'csv' ? csvRow(ev) : ndjson(ev));
      if (++n === limit) break;
      if (out.closed) break;
      await out.ready();
    }
    await out.flush();
    if (tap.stats.fromHistory) io.stderr.write(`rill tap: ${tap.stats.fromHistory} events from before the Redis window were read from Postgres\n`);
    if (tap.stats.undecodable) io.stderr.write(`rill tap: skipped ${tap.stats.undecodable} entries whose event is not JSON\n`);
    return 0;
  } catch (err) {
    if (abort.signal.aborted || out.closed) {
      await out.flush();
      return 0;
    }
    throw connection.reason(err);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    io.signal?.removeEventListener('abort', stop);
    redis.disconnect();
    await pool?.end();
  }
}

function ndjson(ev: TapEvent): string {
  return JSON.stringify({ _id: ev.id, _stream: ev.stream, ...ev.event });
}

function csvRow(ev: TapEvent): string {
  const e = ev.event;
  const cell = (col: (typeof CSV_COLUMNS)[number]): string => {
    switch (col) {
      case '_id':
        return ev.id;
      case '_stream':
        return ev.stream;
      case 'metadata':
        return e.metadata === undefined || e.metadata === null ? '' : JSON.stringify(e.metadata);
      case 'ingested_at': {
        const ms = e.ingested_at;
        return typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : text(ms);
      }
      default:
        return text(e[col]);
    }
  };
  return CSV_COLUMNS.map((c) => csvField(cell(c))).join(',');
}

function text(v: unknown): string {
  if (v === undefined || v === null) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** RFC 4180: quote fields holding a comma, quote or line break; double the quotes. */
export function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function parseLimit(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 1) throw new ConfigError(`--limit must be a whole number of at least 1, got "${v}"`);
  return n;
}

/**
 * Lines to stdout: batched while catching up (one write per ~64 KiB), each at once when
 * following; waits for 'drain' so a slow pipe holds the reading back; a closed pipe (EPIPE,
 * `| head`) ends the tap quietly.
 */
class Output {
  private buf: string[] = [];
  private size = 0;
  closed = false;
  private readonly stream: Writable | undefined;

  constructor(
    private readonly target: CommandIO['stdout'],
    private readonly eager: boolean,
    onClosed: () => void,
  ) {
    this.stream = target instanceof Writable ? target : undefined;
    this.stream?.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') {
        this.closed = true;
        onClosed();
      }
    });
  }

  line(s: string): void {
    this.buf.push(s);
    this.size += s.length + 1;
    if (this.eager || this.size >= 65_536) this.write();
  }

  private write(): boolean {
    if (!this.buf.length || this.closed) return true;
    const chunk = `${this.buf.join('\n')}\n`;
    this.buf = [];
    this.size = 0;
    return this.target.write(chunk) !== false;
  }

  /** Resolves when the output can take more. */
  async ready(): Promise<void> {
    if (!this.stream?.writableNeedDrain || this.closed) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.stream!.off('drain', done);
        this.stream!.off('close', done);
        this.stream!.off('error', done);
        resolve();
      };
      this.stream!.on('drain', done);
      this.stream!.on('close', done);
      this.stream!.on('error', done);
    });
  }

  async flush(): Promise<void> {
    this.write();
    await this.ready();
  }
}
