// Runs one stage: reads batches from its input topic, hands them to the processor, and settles
// every entry (ack + result, one atomic script per input stream, one pipeline per batch).
//  - ordering none: every partition through the shared group; a retry is parked in the stage's
//    delay set and moved back when due (move-due script), so other events flow past it.
//  - ordering key: only the partitions this consumer holds a lease on; a retry holds its stream
//    (that partition's lane) in place, with backoff, so a merchant's events keep their order.
import type { Redis } from 'ioredis';
import type { Keys } from '../keys.ts';
import type { Logger } from '../logger.ts';
import type { Registry } from '../metrics.ts';
import { counter, histogram, LATENCY_BUCKETS } from '../metrics.ts';
import type { Emitted, Outcome, Processor, StreamEvent } from '../processor.ts';
import { outcomeFromError } from '../processor.ts';
import type { StageConfig, Topology } from '../topology/schema.ts';
import type { TransactionEvent } from '../event.ts';
import { entryArgs, F_ATTEMPTS, F_EVENT, F_FIRST_FAILED, F_TRACE, F_TX, fieldsToMap } from '../entry.ts';
import { LaneMap } from '../lanes.ts';
import { backoffMs } from '../retry.ts';
import { coreScript } from '../scripts.ts';
import { runScript } from '../redis.ts';
import { slotPipeline } from '../slot-pipeline.ts';
import { faultPoint } from '../faults.ts';
import { FatalError, RetryableError } from '../errors.ts';
import { endSpan, startEventSpan, traceIdOf, traceparentOf, tracingEnabled } from '../tracing.ts';
import type { Span } from '../tracing.ts';
import { PartitionLeases } from '../leases/partition-leases.ts';
import type { LeaseHandover } from '../leases/handover.ts';
import { LaneReader } from './lane-reader.ts';
import type { RawEntry } from './lane-reader.ts';
import { runLoop } from './loop.ts';
import type { Loop } from './loop.ts';
import { Settlement } from './settlement.ts';
import type { Output } from './settlement.ts';

export interface StageRunnerOptions {
  name: string;
  config: StageConfig;
  topology: Topology;
  keys: Keys;
  /** Dedicated connection for this loop (blocking reads). */
  redis: Redis;
  processor: Processor;
  consumer: string;
  registry: Registry;
  logger: Logger;
  /** Longest a read waits for new entries (default 1 s); 0: never wait (a driver calls step()). */
  blockMs?: number;
  /**
   * After a small batch (under a quarter of `batch`), wait this long before the next read (default
   * 0), so batches fill: at moderate rates a read per few events costs more than the events.
   */
  lingerMs?: number;
  /** Lease TTL for ordered stages: how fast a dead worker's partitions move. */
  leaseTtlMs?: number;
  /** Ordered stages in a worker process: partitions change hands at once (core/leases/handover.ts). */
  handover?: LeaseHandover;
  /** Clock (default Date.now) and backoff jitter source (default Math.random), for simulation. */
  now?: () => number;
  random?: () => number;
}

/** An ordered stream waiting out a retry: its failed entry and everything after it. */
interface Held {
  entries: RawEntry[];
  dueAt: number;
}

const SETTLE = coreScript('settle');
const MOVE_DUE = coreScript('moveDue');

export class StageRunner {
  private loop: Loop | undefined;
  private readonly reader: LaneReader;
  private readonly lanes: LaneMap;
  private readonly laneIndex: Map<string, number>;
  private readonly partitions: number;
  private readonly leases: PartitionLeases | undefined;
  private readonly held = new Map<string, Held>();
  /** In-place retries so far, by stream and entry id (ids are unique per stream only; ordered stages: no redelivery counts them). */
  private readonly localRetries = new Map<string, number>();
  private nextLeaseSync = 0;
  /** Ordered stages: partitions whose lease this member holds and whose pending entries it has taken over. */
  private readonly served = new Set<number>();
  private nextMoveAt = 0;
  private readonly outcomes;
  private readonly duration;
  private readonly now: () => number;

  constructor(private readonly o: StageRunnerOptions) {
    this.now = o.now ?? Date.now;
    this.partitions = o.topology.topics[o.config.input]!.partitions;
    this.lanes = new LaneMap(o.topology.priorities);
    this.laneIndex = new Map(o.topology.priorities.map((p, i) => [p.name, i + 1]));
    const keyed = o.config.ordering === 'key';
    this.reader = new LaneReader({
      redis: o.redis,
      keys: o.keys,
      topic: o.config.input,
      partitions: keyed ? [] : this.all(),
      lanes: o.topology.priorities,
      group: o.name,
      consumer: o.consumer,
      visibilityTimeoutMs: o.config.visibility_timeout,
      now: o.now,
    });
    if (keyed) {
      this.leases = new PartitionLeases({
        redis: o.redis, keys: o.keys, stage: o.name, member: o.consumer, partitions: this.partitions,
        ttlMs: o.leaseTtlMs ?? 10_000, logger: o.logger, now: o.now,
        handover: o.handover, onSyncNeeded: () => this.syncSoon(),
      });
    }
    this.outcomes = counter(o.registry, 'rill_stage_events_total', 'Events settled by a stage, by outcome', ['stage', 'outcome']);
    this.duration = histogram(o.registry, 'rill_stage_batch_duration_seconds', 'Time to process and settle one batch', ['stage'], LATENCY_BUCKETS);
  }

  private all(): number[] {
    return Array.from({ length: this.partitions }, (_, i) => i);
  }

  async start(): Promise<void> {
    await this.reader.ensureGroups(this.all());
    this.loop = runLoop(`stage:${this.o.name}`, this.o.logger, (loop) => this.step(loop));
  }

  /** Another member joined or gave partitions up: sync leases at the next batch boundary. */
  private syncSoon(): void {
    this.nextLeaseSync = 0;
    this.reader.wake();
  }

  /** Stop reading; resolves when the in-flight batch is settled and leases are released. */
  async stop(): Promise<void> {
    this.loop?.stop();
    this.reader.wake();
    await this.loop?.done;
    await this.leases?.stop();
  }

  /** One iteration of the loop: leases or due retries, then one read, process and settle. */
  async step(loop?: Pick<Loop, 'stopping'>): Promise<void> {
    try {
      await this.iterate(loop);
    } catch (err) {
      // what this step read may be pending unsettled (and retries held for a settle that failed):
      // the next read takes this consumer's pending entries up again first, in stream order, so
      // nothing read later overtakes them (per-merchant order on ordering: key stages)
      this.held.clear();
      this.reader.paused.clear();
      this.reader.recover();
      throw err;
    }
  }

  private async iterate(loop?: Pick<Loop, 'stopping'>): Promise<void> {
    const now = this.now();
    if (this.leases && now >= this.nextLeaseSync) await this.syncLeases();
    if (!this.leases && now >= this.nextMoveAt) await this.moveDue();
    if (loop?.stopping) return;
    const due = this.takeDueHeld();
    if (due.length) return this.run(due);
    const wakeAt = Math.min(this.nextWake(), this.now() + (this.o.blockMs ?? 1_000));
    const entries = await this.reader.read(this.o.config.batch, Math.max(this.o.blockMs === 0 ? 0 : 1, wakeAt - this.now()));
    if (!entries.length) return;
    await this.run(entries);
    const linger = this.o.lingerMs ?? 0;
    if (linger > 0 && entries.length < this.o.config.batch / 4 && !loop?.stopping) await new Promise((r) => setTimeout(r, linger));
  }

  private async run(entries: RawEntry[]): Promise<void> {
    const end = this.duration.startTimer({ stage: this.o.name });
    await this.handle(entries);
    end();
  }

  /** The earliest moment something other than new entries needs this loop. */
  private nextWake(): number {
    let t = this.leases ? this.nextLeaseSync : this.nextMoveAt;
    for (const h of this.held.values()) t = Math.min(t, h.dueAt);
    return t;
  }

  private async syncLeases(): Promise<void> {
    const leases = this.leases!;
    let failed: unknown;
    try {
      await leases.sync();
      this.nextLeaseSync = this.now() + Math.floor((this.o.leaseTtlMs ?? 10_000) / 3);
    } catch (err) {
      failed = err; // a sync that failed half-way may still have taken or given up leases
    }
    // serve exactly the partitions whose lease this member holds, whatever the last sync reported
    const owned = new Set(leases.owned());
    for (const p of [...this.served]) {
      if (owned.has(p)) continue;
      this.served.delete(p);
      for (const s of this.reader.streamsOf(p)) {
        this.held.delete(s);
        this.reader.paused.delete(s);
      }
    }
    try {
      // the lease says nobody else works on these partitions now: take their pending entries
      // (JUSTID: no delivery counted) so this consumer finishes them first, in order
      for (const p of owned) {
        if (this.served.has(p)) continue;
        await this.takeOver(this.reader.streamsOf(p));
        this.served.add(p);
      }
    } finally {
      this.reader.setPartitions([...this.served]);
    }
    if (failed) throw failed;
  }

  private async takeOver(streams: readonly string[]): Promise<void> {
    for (const s of streams) {
      let cursor = '0-0';
      do {
        const [next] = (await this.o.redis.xautoclaim(s, this.o.name, this.o.consumer, 0, cursor, 'COUNT', 1000, 'JUSTID')) as [string, string[]];
        cursor = next;
      } while (cursor !== '0-0');
    }
  }

  /** Move due retries from the delay sets back onto the input streams (all partitions, one round trip). */
  private async moveDue(): Promise<void> {
    const pipe = slotPipeline(this.o.redis);
    const now = this.now();
    for (let p = 0; p < this.partitions; p++) {
      const keys = [this.o.keys.delay(this.o.name, p), ...this.reader.streamsOf(p)];
      pipe.add(keys[0]!, (q) => void runScript(q, MOVE_DUE, keys, [now, 1000]));
    }
    const res = await pipe.exec();
    let next = this.now() + 1_000;
    for (const [err, v] of res) {
      if (err) throw err;
      const [moved, nextDue] = v as [number, string | number];
      if (moved >= 1000) next = this.now();
      const due = Number(nextDue);
      if (due >= 0) next = Math.min(next, due);
    }
    this.nextMoveAt = next;
    faultPoint('move-due-after');
  }

  private takeDueHeld(): RawEntry[] {
    const now = this.now();
    const out: RawEntry[] = [];
    for (const [stream, h] of this.held) {
      if (h.dueAt > now) continue;
      this.held.delete(stream);
      out.push(...h.entries);
    }
    return out;
  }

  /** Process one batch and settle every entry in it. */
  async handle(entries: readonly RawEntry[]): Promise<void> {
    const attempts = this.o.config.retry.attempts;
    const outcomes: (Outcome | undefined)[] = new Array(entries.length);
    const events: StreamEvent[] = [];
    const slots: number[] = [];
    entries.forEach((raw, i) => {
      const decoded = decode(raw);
      if (decoded instanceof Error) outcomes[i] = { kind: 'fatal', error: decoded };
      else if (this.attemptOf(raw) > attempts) {
        // poison-pill guard: delivered more often than the stage may try it (e.g. it crashes workers)
        outcomes[i] = { kind: 'fatal', error: new Error(`delivered ${this.attemptOf(raw)} times (attempts: ${attempts})`) };
      } else {
        events.push(decoded);
        slots.push(i);
      }
    });
    if (events.length) {
      let results: Outcome[];
      try {
        results = await this.o.processor.process(events);
        if (results.length !== events.length) throw new Error(`processor returned ${results.length} outcomes for ${events.length} events`);
      } catch (err) {
        if (!(err instanceof RetryableError) && !(err instanceof FatalError)) {
          // not a verdict on the events but a failure around them (Redis or Postgres went away
          // mid-call; its effects may have happened): leave them pending and read them again
          // after the loop's backoff; the processors' effects are idempotent by tx id
          this.reader.rewind(entries.map((e) => e.stream));
          throw err;
        }
        const o = outcomeFromError<TransactionEvent>(err);
        results = events.map(() => o);
      }
      results.forEach((r, j) => (outcomes[slots[j]!] = r));
    }
    const spans = tracingEnabled() ? entries.map((raw) => this.spanFor(raw)) : undefined;
    await this.settle(entries, outcomes as Outcome[], spans);
    spans?.forEach((span, i) => {
      const o = outcomes[i]!;
      span?.setAttribute('rill.outcome', o.kind);
      endSpan(span, o.kind === 'ok' ? undefined : o.error);
    });
  }

  private spanFor(raw: RawEntry): Span | undefined {
    const map = raw.fields ? fieldsToMap(raw.fields) : undefined;
    return startEventSpan(`stage ${this.o.name}`, map?.get(F_TRACE), {
      'rill.stage': this.o.name, 'rill.tx_id': map?.get(F_TX) ?? '', 'rill.partition': raw.partition, 'rill.lane': raw.lane,
    });
  }

  /** Attempts so far, this delivery included: earlier retries' count + Redis deliveries + in-place retries. */
  private attemptOf(raw: RawEntry): number {
    const before = raw.fields ? Number(fieldsToMap(raw.fields).get(F_ATTEMPTS) ?? 0) : 0;
    return before + Math.max(1, raw.deliveries) + (this.localRetries.get(`${raw.stream} ${raw.id}`) ?? 0);
  }

  private async settle(entries: readonly RawEntry[], outcomes: readonly Outcome[], spans?: readonly (Span | undefined)[]): Promise<void> {
    const settlement = new Settlement(this.o.name, SETTLE);
    const counts = { ok: 0, retry: 0, dead_letter: 0 };
    const now = this.now();
    const retry = this.o.config.retry;
    const blocked = new Set<string>();
    const deadLettered: Record<string, unknown>[] = [];
    entries.forEach((raw, i) => {
      if (blocked.has(raw.stream)) {
        // an earlier entry of this ordered stream is waiting for its retry: this one waits behind it
        this.held.get(raw.stream)!.entries.push(raw);
        return;
      }
      const outcome = outcomes[i]!;
      const attempt = this.attemptOf(raw);
      if (outcome.kind === 'retry' && (outcome.deferred || attempt < retry.attempts)) {
        counts.retry++;
        const wait = backoffMs(attempt, retry, this.o.random);
        if (this.leases) {
          if (!outcome.deferred) this.localRetries.set(`${raw.stream} ${raw.id}`, (this.localRetries.get(`${raw.stream} ${raw.id}`) ?? 0) + 1);
          this.held.set(raw.stream, { entries: [raw], dueAt: now + wait });
          this.reader.paused.add(raw.stream);
          blocked.add(raw.stream);
        } else {
          settlement.add(raw, [this.parkForRetry(raw, outcome.deferred ? attempt - 1 : attempt, now + wait, now)]);
          this.nextMoveAt = Math.min(this.nextMoveAt, now + wait);
        }
        return;
      }
      this.localRetries.delete(`${raw.stream} ${raw.id}`);
      if (outcome.kind === 'ok') {
        counts.ok++;
        const tp = traceparentOf(spans?.[i]);
        settlement.add(raw, [this.forward(raw, outcome.event, tp), ...(outcome.emit ?? []).map((e) => this.emitted(raw, e, tp))]);
      } else {
        counts.dead_letter++;
        const error = outcome.kind === 'retry' ? new Error(`${outcome.error.message} (gave up after ${attempt} attempts)`, { cause: outcome.error }) : outcome.error;
        if (outcome.kind === 'retry') error.name = outcome.error.name;
        settlement.add(raw, deadLetterOutputs(this.o.keys, this.o.name, raw, error, now, attempt));
        const map = raw.fields ? fieldsToMap(raw.fields) : undefined;
        deadLettered.push({ tx: map?.get(F_TX), trace_id: traceIdOf(map?.get(F_TRACE)), entry: raw.id, attempts: attempt, error: error.name, reason: error.message });
      }
    });
    for (const stream of this.reader.paused) if (!this.held.has(stream)) this.reader.paused.delete(stream);
    faultPoint('stage-before-settle');
    await settlement.exec(this.o.redis);
    faultPoint('stage-after-settle');
    // logged once the settle script has written them (a failed exec leaves them pending: not dead yet)
    for (const d of deadLettered) this.o.logger.warn(d, 'dead-lettered');
    for (const [outcome, n] of Object.entries(counts)) if (n) this.outcomes.inc({ stage: this.o.name, outcome }, n);
  }

  /** `traceparent`: this stage's span for the event, so the next stage's span is its child. */
  private forward(raw: RawEntry, event: TransactionEvent, traceparent?: string): Output {
    const routes = this.o.config.routes;
    const routed = routes ? routes.to[String((event as unknown as Record<string, unknown>)[routes.by])] : undefined;
    const topic = routed ?? this.o.config.output;
    const tp = traceparent ?? (raw.fields ? fieldsToMap(raw.fields).get(F_TRACE) : undefined);
    return { op: 'x', key: this.o.keys.lane(topic, raw.partition, this.lanes.laneOf(event.type)), fields: entryArgs({ tx: event.id, ev: JSON.stringify(event), tp }) };
  }

  /** A processor's extra event, appended in the same partition (same script, same slot). */
  private emitted(raw: RawEntry, e: Emitted, traceparent?: string): Output {
    if (!this.o.topology.topics[e.topic]) throw new Error(`stage ${this.o.name} emitted to undeclared topic "${e.topic}"`);
    const tp = traceparent ?? (raw.fields ? fieldsToMap(raw.fields).get(F_TRACE) : undefined);
    return { op: 'x', key: this.o.keys.lane(e.topic, raw.partition, this.lanes.laneOf(e.event.type)), fields: entryArgs({ tx: e.event.id, ev: JSON.stringify(e.event), tp }) };
  }

  /** A retry waits in the delay set, keeping its attempts and first failure time. */
  private parkForRetry(raw: RawEntry, attempt: number, dueAt: number, now: number): Output {
    const map = fieldsToMap(raw.fields!);
    const fields = [F_TX, map.get(F_TX)!, F_EVENT, map.get(F_EVENT)!, F_ATTEMPTS, String(attempt), F_FIRST_FAILED, map.get(F_FIRST_FAILED) ?? String(now)];
    const tp = map.get(F_TRACE);
    if (tp) fields.push(F_TRACE, tp);
    const member = JSON.stringify({ l: this.laneIndex.get(raw.lane) ?? 1, f: fields, u: `${raw.stream}/${raw.id}` });
    return { op: 'z', key: this.o.keys.delay(this.o.name, raw.partition), score: dueAt, member };
  }
}

function decode(raw: RawEntry): StreamEvent | Error {
  if (!raw.fields) return new Error('entry was trimmed from the stream before it was processed');
  const map = fieldsToMap(raw.fields);
  const tx = map.get(F_TX);
  const ev = map.get(F_EVENT);
  if (!tx || !ev) return new Error(`entry lacks the ${tx ? F_EVENT : F_TX} field`);
  let event: TransactionEvent;
  try {
    event = JSON.parse(ev) as TransactionEvent;
  } catch {
    return new Error('entry body is not JSON');
  }
  return {
    entryId: raw.id,
    stream: raw.stream,
    partition: raw.partition,
    lane: raw.lane,
    txId: tx,
    event,
    traceparent: map.get(F_TRACE),
    deliveries: Math.max(1, raw.deliveries),
  };
}

/** The dead letter itself and its line in the partition's dead-letter index (tx id → where, why). */
export function deadLetterOutputs(keys: Keys, stage: string, raw: RawEntry, error: Error, now: number, attempts?: number): Output[] {
  const fields = deadLetterFields(stage, raw, error, now, attempts);
  const tx = raw.fields ? fieldsToMap(raw.fields).get(F_TX) : undefined;
  const out: Output[] = [{ op: 'x', key: keys.deadLetter(stage, raw.partition), fields }];
  if (tx) out.push({ op: 'h', key: keys.deadLetterIndex(raw.partition), field: tx, value: JSON.stringify({ stage, error: error.name, message: error.message.slice(0, 500), at: now }) });
  return out;
}

/** A dead letter keeps the event and everything needed to understand and redrive it. */
export function deadLetterFields(stage: string, raw: RawEntry, error: Error, now: number, attempts = Math.max(1, raw.deliveries)): string[] {
  const map = raw.fields ? fieldsToMap(raw.fields) : new Map<string, string>();
  const fields = [
    F_TX, map.get(F_TX) ?? '',
    F_EVENT, map.get(F_EVENT) ?? '',
    'error', error.name || 'Error',
    'message', error.message.slice(0, 2_000),
    'stage', stage,
    'attempts', String(attempts),
    'origin_stream', raw.stream,
    'origin_id', raw.id,
    'first_failed_at', map.get(F_FIRST_FAILED) ?? String(now),
    'last_failed_at', String(now),
  ];
  const tp = map.get(F_TRACE);
  if (tp) fields.push(F_TRACE, tp);
  return fields;
}
