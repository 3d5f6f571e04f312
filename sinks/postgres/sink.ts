// The Postgres sink: a consumer group on its input topic that buffers entries and flushes them
// at `batch_rows` or `max_wait`, whichever comes first. Entries are acknowledged only after the
// batch's COMMIT; a failed flush keeps its batch and is tried again with backoff.
//
// With `overlap` (what `rill worker` runs) a batch is written while the next one is read and
// parsed: reading costs about a third of the time per batch, and Postgres waits meanwhile
// otherwise. Still one write at a time, in order: a batch starts after the one before it
// committed, and a failed one goes back in front of the buffer.
import type { Redis } from 'ioredis';
import type { Keys } from '../../core/keys.ts';
import type { Logger } from '../../core/logger.ts';
import type { Registry } from '../../core/metrics.ts';
import { counter, gauge, histogram, LATENCY_BUCKETS } from '../../core/metrics.ts';
import type { PostgresSinkConfig, Topology } from '../../core/topology/schema.ts';
import type { TransactionEvent } from '../../core/event.ts';
import { F_EVENT, F_TRACE, fieldOf } from '../../core/entry.ts';
import { GroupConsumer } from '../../core/consumer/index.ts';
import type { Loop, RawEntry } from '../../core/consumer/index.ts';
import { faultPoint } from '../../core/faults.ts';
import { endSpan, startEventSpan, tracingEnabled } from '../../core/tracing.ts';
import type { BatchWriter } from './batch-writer.ts';
import type { WriteResult } from './batch-writer.ts';
import { encodeRow, ledgerProblem } from './rows.ts';
import type { SinkRow } from './rows.ts';

export interface PostgresSinkOptions {
  name: string;
  config: PostgresSinkConfig;
  topology: Topology;
  keys: Keys;
  /** Dedicated connection for this loop (blocking reads). */
  redis: Redis;
  writer: BatchWriter;
  consumer: string;
  registry: Registry;
  logger: Logger;
  /** Cap on how long a read waits for new entries (default none); 0: never wait (a driver calls step()). */
  blockMs?: number;
  /** Clock (default Date.now), for simulation. */
  now?: () => number;
  /** Read the next batch while the last one is written (default false: each step() finishes its flush). */
  overlap?: boolean;
  /** After a small read, wait up to this long (never past the batch's max_wait) before the next (default 0). */
  lingerMs?: number;
  /**
   * Connection for acknowledgements and dead letters (default `redis`). With `overlap` give one of
   * its own: on `redis` they would queue behind the next blocking read.
   */
  ackRedis?: Redis;
}

/** Entries per read while a batch is being written (about 10-20 ms of accepting). */
const READ_SLICE = 500;

interface Writing {
  done: Promise<void>;
  finished: boolean;
  error?: unknown;
}

interface Buffered {
  raw: RawEntry;
  row: SinkRow;
}

export class PostgresSink {
  private readonly group: GroupConsumer;
  private buffer: Buffered[] = [];
  private firstAt = 0;
  /** The batch being written in the background (overlap), and how that ended. */
  private writing: Writing | undefined;
  private readonly rows;
  private readonly ledgerEntries;
  private readonly partitionsCreated;
  private readonly batchSize;
  private readonly flushSeconds;
  private readonly endToEnd;
  private readonly failed;
  private readonly lastFlush;

  private readonly now: () => number;

  private readonly ackRedis: Redis;

  constructor(private readonly o: PostgresSinkOptions) {
    this.now = o.now ?? Date.now;
    this.ackRedis = o.ackRedis ?? o.redis;
    this.group = new GroupConsumer({
      loop: `sink:${o.name}`,
      redis: o.redis,
      keys: o.keys,
      topic: o.config.input,
      partitions: o.topology.topics[o.config.input]!.partitions,
      lanes: o.topology.priorities,
      group: o.name,
      consumer: o.consumer,
      visibilityTimeoutMs: o.config.visibility_timeout,
      logger: o.logger,
      now: o.now,
      isolateRedeliveries: false, // nothing here crashes on an entry: recover in whole batches
    });
    const r = o.registry;
    this.rows = counter(r, 'rill_sink_rows_total', 'Rows written by a sink (new, not duplicates)', ['sink']);
    this.ledgerEntries = counter(r, 'rill_sink_ledger_entries_total', 'Ledger entries written by a sink (new, not duplicates)', ['sink']);
    this.partitionsCreated = counter(r, 'rill_partitions_created_total', 'Daily transaction partitions created', ['by']);
    this.batchSize = histogram(r, 'rill_sink_batch_rows', 'Rows per sink flush', ['sink'], [1, 10, 100, 500, 1000, 2500, 5000, 10000, 50000]);
    this.flushSeconds = histogram(r, 'rill_sink_flush_duration_seconds', 'Sink flush time (COPY, merge, commit, ack)', ['sink'], LATENCY_BUCKETS);
    this.lastFlush = gauge(r, 'rill_sink_last_flush_timestamp_seconds', 'When a sink last committed a batch', ['sink']);
    this.failed = counter(
      r,
      'rill_transactions_failed_total',
      'Transactions committed with status failed, by failure_code (a redelivered batch may count again)',
      ['code'],
    );
    this.endToEnd = histogram(r, 'rill_end_to_end_latency_seconds', 'From ingest to sink commit', ['sink'], [...LATENCY_BUCKETS, 30, 60]);
  }

  async start(): Promise<void> {
    await this.group.start((loop) => this.step(loop));
  }

  /** Stop reading, flush what is buffered (if Postgres lets us), and resolve. */
  async stop(): Promise<void> {
    await this.group.stop();
    await this.settleWrite().catch(() => undefined); // its batch went back into the buffer
    if (this.buffer.length) await this.flush(this.takeBuffer()).catch((err) => this.o.logger.warn({ err }, 'final flush failed; entries stay pending'));
    await this.o.writer.close();
  }

  /** One iteration of the loop: one read into the buffer, then a flush if the batch is full or due. */
  async step(loop?: Pick<Loop, 'stopping'>): Promise<void> {
    const { batch_rows: maxRows, max_wait: maxWait } = this.o.config;
    const room = maxRows - this.buffer.length;
    const writing = this.writing !== undefined && !this.writing.finished;
    let read = 0;
    if (room > 0 && !loop?.stopping) {
      const waitMs = Math.min(this.o.blockMs ?? Infinity, this.buffer.length ? Math.max(0, this.firstAt + maxWait - this.now()) : 1_000);
      // with a write under way, read in slices: accepting a read (parse + encode) runs without a
      // break, and the write's COPY data and replies wait for the event loop meanwhile
      const want = writing ? Math.min(room, READ_SLICE) : room;
      const entries = await this.group.reader.read(want, waitMs);
      read = entries.length;
      if (entries.length) await this.accept(entries);
      // a small read while the batch is not due yet: let entries gather instead of reading again at once
      const linger = Math.min(this.o.lingerMs ?? 0, this.firstAt + maxWait - this.now());
      if (linger > 0 && this.buffer.length && entries.length < want / 4 && this.buffer.length < maxRows && !loop?.stopping) {
        await new Promise((r) => setTimeout(r, linger));
      }
    }
    const full = this.buffer.length >= maxRows;
    if (!full && !(this.buffer.length && this.now() >= this.firstAt + maxWait)) return;
    // due, but the batch before is still being written, so this one could not start yet: it takes
    // in what there is to read meanwhile (fewer, fuller batches when Postgres is the slower side)
    if (!full && writing && read > 0 && !loop?.stopping) return;
    await this.settleWrite(); // one write at a time: the batch before this one first
    const batch = this.takeBuffer();
    const w: Writing = { done: Promise.resolve(), finished: false };
    w.done = this.flush(batch).then(
      () => {
        w.finished = true;
      },
      (err) => {
        // a failed batch goes back in front of what was read since: it is tried again first
        w.error = err;
        this.buffer = batch.concat(this.buffer);
        w.finished = true;
      },
    );
    this.writing = w;
    if (!this.o.overlap) await this.settleWrite();
  }

  /** Waits for the background write; throws its error (its batch is back in the buffer by then). */
  private async settleWrite(): Promise<void> {
    const w = this.writing;
    if (!w) return;
    await w.done;
    this.writing = undefined;
    if (w.error !== undefined) throw w.error;
  }

  private takeBuffer(): Buffered[] {
    const batch = this.buffer;
    this.buffer = [];
    return batch;
  }

  private async accept(entries: readonly RawEntry[]): Promise<void> {
    const unreadable: { raw: RawEntry; error: Error }[] = [];
    for (const raw of entries) {
      const ev = raw.fields ? fieldOf(raw.fields, F_EVENT) : undefined;
      let event: TransactionEvent | undefined;
      try {
        event = ev ? (JSON.parse(ev) as TransactionEvent) : undefined;
      } catch {
        event = undefined;
      }
      if (!event || typeof event.id !== 'string') {
        unreadable.push({ raw, error: new Error(raw.fields ? 'entry body is not a transaction' : 'entry was trimmed before the sink read it') });
        continue;
      }
      // a ledger that can never be posted would fail every batch it is in: dead-letter it instead
      const problem = ledgerProblem(event);
      if (problem) {
        unreadable.push({ raw, error: new Error(`transaction ${event.id}: ${problem}`) });
        continue;
      }
      if (!this.buffer.length) this.firstAt = this.now();
      const row: SinkRow = { event, streamId: raw.id, attempts: Math.max(1, raw.deliveries) };
      // encoded now, while the batch before is being written: the flush only concatenates
      row.encoded = encodeRow(row);
      this.buffer.push({ raw, row });
    }
    if (unreadable.length) await this.deadLetter(unreadable);
  }

  private async flush(batch: Buffered[]): Promise<void> {
    const end = this.flushSeconds.startTimer({ sink: this.o.name });
    // a span per event, child of the last stage's, ended at the commit: the trace's last hop
    const spans = tracingEnabled()
      ? batch.map((b) =>
          startEventSpan(`sink ${this.o.name}`, b.raw.fields ? fieldOf(b.raw.fields, F_TRACE) : undefined, {
            'rill.sink': this.o.name,
            'rill.tx_id': b.row.event.id,
          }),
        )
      : undefined;
    let written: WriteResult;
    let refused: { raw: RawEntry; error: Error }[] = [];
    try {
      ({ written, refused } = await this.writeIsolating(batch));
    } catch (err) {
      spans?.forEach((span) => endSpan(span, err as Error));
      throw err;
    }
    spans?.forEach((span) => endSpan(span));
    faultPoint('sink-after-commit');
    if (refused.length) {
      // rows Postgres refuses for their data would stall the sink forever: dead-letter them (ack +
      // add), acknowledging the rest, in one settle
      const why = new Map(refused.map((r) => [r.raw, r.error]));
      await this.group.settle(
        this.ackRedis,
        batch.map(({ raw }) => ({ raw, error: why.get(raw) })),
        this.now(),
      );
    } else {
      await this.ack(batch.map((b) => b.raw));
    }
    end();
    this.rows.inc({ sink: this.o.name }, written.transactions);
    if (written.ledgerEntries) this.ledgerEntries.inc({ sink: this.o.name }, written.ledgerEntries);
    if (written.partitionsCreated) {
      this.partitionsCreated.inc({ by: 'sink' }, written.partitionsCreated);
      this.o.logger.warn({ partitions: written.partitionsCreated }, 'created missing daily partitions for a batch (is maintenance running?)');
    }
    this.batchSize.observe({ sink: this.o.name }, batch.length);
    this.lastFlush.set({ sink: this.o.name }, Date.now() / 1000);
    const now = this.now();
    for (const b of batch) {
      this.endToEnd.observe({ sink: this.o.name }, (now - b.row.event.ingested_at) / 1000);
      const e = b.row.event;
      if (e.status === 'failed') this.failed.inc({ code: e.failure_code ?? 'unknown' });
    }
  }

  /**
   * Write a batch; when Postgres refuses it for its data (SQLSTATE class 22 or 23), write halves
   * until the refused rows stand alone, and hand those back. Connection and server errors are thrown
   * (the loop retries the whole batch later: nothing is lost, nothing dead-lettered for an outage).
   */
  private async writeIsolating(batch: readonly Buffered[]): Promise<{ written: WriteResult; refused: { raw: RawEntry; error: Error }[] }> {
    try {
      return { written: await this.o.writer.writeBatch(batch.map((b) => b.row)), refused: [] };
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? '');
      if (!/^2[23]/.test(code)) throw err;
      if (batch.length === 1)
        return { written: { transactions: 0, ledgerEntries: 0, wallets: 0, partitionsCreated: 0 }, refused: [{ raw: batch[0]!.raw, error: err as Error }] };
      const mid = Math.ceil(batch.length / 2);
      const [a, b] = [await this.writeIsolating(batch.slice(0, mid)), await this.writeIsolating(batch.slice(mid))];
      const sum = (k: keyof WriteResult) => a.written[k] + b.written[k];
      return {
        written: {
          transactions: sum('transactions'),
          ledgerEntries: sum('ledgerEntries'),
          wallets: sum('wallets'),
          partitionsCreated: sum('partitionsCreated'),
        },
        refused: [...a.refused, ...b.refused],
      };
    }
  }

  /** Acknowledged on the ack connection: on the reader's they would queue behind the next blocking read. */
  private async ack(entries: readonly RawEntry[]): Promise<void> {
    await this.group.ack(this.ackRedis, entries);
  }

  /** An entry the sink cannot read goes to the sink's dead-letter stream (ack and add in one script). */
  private async deadLetter(items: readonly { raw: RawEntry; error: Error }[]): Promise<void> {
    await this.group.settle(this.ackRedis, items, this.now());
  }
}
