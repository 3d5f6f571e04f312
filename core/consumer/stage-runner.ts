// Runs one stage: reads batches from its input topic, hands them to the processor, and settles
// every entry (ack + result, one atomic script per input stream, one pipeline per batch).
//  - ordering none: every partition through the shared group; a retry is parked in the stage's
//    delay set and moved back when due (move-due script), so other events flow past it.
//  - ordering key: only the partitions this consumer holds a lease on. An event that must retry
//    or wait is parked with its merchant's later events of that lane (parking.ts); the lane goes
//    on with every other merchant. Due parked queues are taken and processed like a read.
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
import { Parking } from './parking.ts';
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

/** How long a waiting event (a refund for its payin) may sleep before it is looked at again. */
const WAIT_RECHECK_MS = 5_000;
/** What a lane stream left unsettled because parking was at a cap is tried again after this. */
const CAP_PAUSE_MS = 250;

const SETTLE = coreScript('settle');
const MOVE_DUE = coreScript('moveDue');

export class StageRunner {
  private loop: Loop | undefined;
  private readonly reader: LaneReader;
  private readonly lanes: LaneMap;
  private readonly laneIndex: Map<string, number>;
  private readonly partitions: number;
  private readonly leases: PartitionLeases | undefined;
  private readonly parking: Parking | undefined;
  /**
   * Lane streams paused because parking was at a cap: the entries left unsettled (still pending
   * here), tried again in memory when `until` comes, so waiting costs them no delivery.
   */
  private readonly capHeld = new Map<string, { entries: RawEntry[]; until: number }>();
  /** The last iteration handled parked entries: this one reads the streams (no starvation). */
  private tookParked = false;
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
        redis: o.redis,
        keys: o.keys,
        stage: o.name,
        member: o.consumer,
        partitions: this.partitions,
        ttlMs: o.leaseTtlMs ?? 10_000,
        logger: o.logger,
        now: o.now,
        handover: o.handover,
        onSyncNeeded: () => this.syncSoon(),
      });
      this.parking = new Parking({
        redis: o.redis,
        keys: o.keys,
        stage: o.name,
        maxPerKey: o.config.parking.max_per_key,
        maxPerPartition: o.config.parking.max_per_partition,
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
      for (const stream of this.capHeld.keys()) this.reader.paused.delete(stream);
      this.capHeld.clear(); // still pending here: recover() reads them again, in order
      this.reader.recover();
      // parked queues may have changed half-way: mirror them from Redis again
      if (this.parking) await this.parking.load([...this.served]).catch(() => this.resetServed());
      throw err;
    }
  }

  private async iterate(loop?: Pick<Loop, 'stopping'>): Promise<void> {
    const now = this.now();
    if (this.leases && now >= this.nextLeaseSync) await this.syncLeases();
    if (!this.leases && now >= this.nextMoveAt) await this.moveDue();
    if (loop?.stopping) return;
    const held = this.takeCapHeld(now);
    if (held.length) {
      await this.run(held);
      for (const stream of new Set(held.map((e) => e.stream))) if (!this.capHeld.has(stream)) this.reader.paused.delete(stream);
      return;
    }
    if (this.parking && !this.tookParked && this.parking.nextDue() <= now) {
      const parked = await this.parking.takeDue(now, this.o.config.batch);
      if (parked.length) {
        this.tookParked = true;
        return this.run(parked);
      }
    }
    this.tookParked = false;
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
    if (this.parking) t = Math.min(t, this.parking.nextDue());
    for (const h of this.capHeld.values()) t = Math.min(t, h.until);
    return t;
  }

  /** The entries held at a cap whose pause is over, in stream order. */
  private takeCapHeld(now: number): RawEntry[] {
    const out: RawEntry[] = [];
    for (const [stream, h] of this.capHeld) {
      if (h.until > now) continue;
      this.capHeld.delete(stream);
      out.push(...h.entries);
    }
    return out;
  }

  /** Forget what this member serves (a failed mirror load): the next lease sync takes it over again. */
  private resetServed(): void {
    for (const p of this.served) this.parking?.forget(p);
    this.served.clear();
    this.reader.setPartitions([]);
    this.nextLeaseSync = 0;
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
      this.parking?.forget(p);
      for (const s of this.reader.streamsOf(p)) {
        this.capHeld.delete(s);
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
      // mirror the parked queues again at every sync, not only at takeover: a stale former owner
      // (paused past its lease) may still have parked an entry it acknowledged; it is found here
      // within a sync period instead of waiting for the next takeover
      await this.parking?.load([...this.served]);
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

  /** Process one batch and settle every entry in it. */
  async handle(entries: readonly RawEntry[]): Promise<void> {
    const attempts = this.o.config.retry.attempts;
    const outcomes: (Outcome | undefined)[] = new Array(entries.length);
    const members: (string | undefined)[] = new Array(entries.length);
    const events: StreamEvent[] = [];
    const slots: number[] = [];
    entries.forEach((raw, i) => {
      const decoded = decode(raw);
      if (decoded instanceof Error) outcomes[i] = { kind: 'fatal', error: decoded };
      else {
        members[i] = memberOf(raw.lane, decoded.event);
        // a merchant with parked events of this lane: this one waits behind them, untried
        if (this.parking && !raw.parked && this.parking.isParked(raw.partition, members[i]!)) return;
        if (this.attemptOf(raw) > attempts) {
          // poison-pill guard: delivered more often than the stage may try it (e.g. it crashes workers)
          outcomes[i] = { kind: 'fatal', error: new Error(`delivered ${this.attemptOf(raw)} times (attempts: ${attempts})`) };
        } else {
          events.push(decoded);
          slots.push(i);
        }
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
    await this.settle(entries, outcomes, members, spans);
    spans?.forEach((span, i) => {
      const o = outcomes[i];
      span?.setAttribute('rill.outcome', o?.kind ?? 'parked');
      endSpan(span, !o || o.kind === 'ok' ? undefined : o.error);
    });
  }

  private spanFor(raw: RawEntry): Span | undefined {
    const map = raw.fields ? fieldsToMap(raw.fields) : undefined;
    return startEventSpan(`stage ${this.o.name}`, map?.get(F_TRACE), {
      'rill.stage': this.o.name,
      'rill.tx_id': map?.get(F_TX) ?? '',
      'rill.partition': raw.partition,
      'rill.lane': raw.lane,
    });
  }

  /** Attempts so far, this delivery included: earlier retries' count + Redis deliveries (or takes of a parked head). */
  private attemptOf(raw: RawEntry): number {
    const before = raw.fields ? Number(fieldsToMap(raw.fields).get(F_ATTEMPTS) ?? 0) : 0;
    return before + Math.max(1, raw.deliveries);
  }

  /**
   * Settle a batch in order. `outcomes[i]` undefined: the entry was not tried because its merchant
   * has parked events of its lane, so it is parked behind them.
   */
  private async settle(
    entries: readonly RawEntry[],
    outcomes: readonly (Outcome | undefined)[],
    members: readonly (string | undefined)[],
    spans?: readonly (Span | undefined)[],
  ): Promise<void> {
    const settlement = new Settlement(this.o.name, SETTLE);
    const counts = { ok: 0, retry: 0, dead_letter: 0, parked: 0 };
    const now = this.now();
    const retry = this.o.config.retry;
    const parking = this.parking;
    /** Parked queues whose head stays parked in this batch: their later items stay untouched. */
    const stuck = new Set<string>();
    /** Parked queues settled in this batch: which are empty now is asked from Redis after. */
    const touched = new Map<number, Set<string>>();
    const deadLettered: Record<string, unknown>[] = [];
    entries.forEach((raw, i) => {
      const member = members[i];
      if (raw.parked) {
        if (stuck.has(raw.parked.queue)) return;
        touched.get(raw.partition)?.add(raw.parked.member) ?? touched.set(raw.partition, new Set([raw.parked.member]));
      }
      const outcome = outcomes[i];
      if (parking && member !== undefined && !raw.parked && (!outcome || parking.isParked(raw.partition, member))) {
        // behind its merchant's parked events (parked before, or earlier in this batch): tried later, in order
        counts.parked++;
        settlement.add(raw, [parking.park(raw, member, raw.fields!, 0)]);
        return;
      }
      if (!outcome) return;
      const attempt = this.attemptOf(raw);
      if (outcome.kind === 'retry' && (outcome.wait || outcome.deferred || attempt < retry.attempts)) {
        counts.retry++;
        const free = Boolean(outcome.wait || outcome.deferred); // a wait costs no attempt
        const dueAt = outcome.wait ? Math.min(outcome.wait.until, now + WAIT_RECHECK_MS) : now + backoffMs(free ? 1 : attempt, retry, this.o.random);
        const fields = retryFields(raw, free ? attempt - 1 : attempt, now);
        if (parking && member !== undefined) {
          const token = outcome.wait?.token;
          if (raw.parked) {
            stuck.add(raw.parked.queue);
            settlement.add(
              raw,
              [...parking.unwait(raw.partition, raw.parked.token !== token ? raw.parked.token : undefined), parking.rewrite(raw, member, fields, dueAt, token)],
              true,
            );
          } else {
            settlement.add(raw, [parking.park(raw, member, fields, dueAt, token)]);
          }
        } else {
          settlement.add(raw, [this.parkForRetry(raw, fields, dueAt)]);
          this.nextMoveAt = Math.min(this.nextMoveAt, dueAt);
        }
        return;
      }
      const done = parking && raw.parked ? parking.unwait(raw.partition, raw.parked.token) : [];
      if (outcome.kind === 'ok') {
        counts.ok++;
        const tp = traceparentOf(spans?.[i]);
        const wakes = parking && outcome.signals?.length ? parking.wake(raw.partition, outcome.signals, now) : [];
        settlement.add(raw, [...done, this.forward(raw, outcome.event, tp), ...(outcome.emit ?? []).map((e) => this.emitted(raw, e, tp)), ...wakes]);
      } else {
        counts.dead_letter++;
        const error =
          outcome.kind === 'retry' ? new Error(`${outcome.error.message} (gave up after ${attempt} attempts)`, { cause: outcome.error }) : outcome.error;
        if (outcome.kind === 'retry') error.name = outcome.error.name;
        settlement.add(raw, [...done, ...deadLetterOutputs(this.o.keys, this.o.name, raw, error, now, attempt)]);
        const map = raw.fields ? fieldsToMap(raw.fields) : undefined;
        deadLettered.push({
          tx: map?.get(F_TX),
          trace_id: traceIdOf(map?.get(F_TRACE)),
          entry: raw.id,
          attempts: attempt,
          error: error.name,
          reason: error.message,
        });
      }
    });
    faultPoint('stage-before-settle');
    const { stopped } = await settlement.exec(this.o.redis);
    faultPoint('stage-after-settle');
    if (parking && (touched.size || stopped.length)) {
      if (stopped.length) {
        // parking is at a cap: the rest of these lanes stays pending, tried again (in order) after a
        // pause, from memory (a re-read would count a delivery against each of them)
        const streams = stopped.map((s) => s.input);
        for (const { input, ids } of stopped) {
          const left = new Set(ids);
          this.capHeld.set(input, { entries: entries.filter((e) => e.stream === input && !e.parked && left.has(e.id)), until: now + CAP_PAUSE_MS });
          this.reader.paused.add(input);
        }
        this.o.logger.warn({ stage: this.o.name, streams, left: stopped.reduce((n, s) => n + s.ids.length, 0) }, 'parking is at a cap: lane paused');
        await parking.load([...new Set(entries.map((e) => e.partition))]);
      } else {
        await parking.refresh(touched);
      }
    }
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
    return {
      op: 'x',
      key: this.o.keys.lane(topic, raw.partition, this.lanes.laneOf(event.type)),
      fields: entryArgs({ tx: event.id, ev: JSON.stringify(event), tp }),
    };
  }

  /** A processor's extra event, appended in the same partition (same script, same slot). */
  private emitted(raw: RawEntry, e: Emitted, traceparent?: string): Output {
    if (!this.o.topology.topics[e.topic]) throw new Error(`stage ${this.o.name} emitted to undeclared topic "${e.topic}"`);
    const tp = traceparent ?? (raw.fields ? fieldsToMap(raw.fields).get(F_TRACE) : undefined);
    return {
      op: 'x',
      key: this.o.keys.lane(e.topic, raw.partition, this.lanes.laneOf(e.event.type)),
      fields: entryArgs({ tx: e.event.id, ev: JSON.stringify(e.event), tp }),
    };
  }

  /** A retry (ordering none) waits in the delay set, keeping its attempts and first failure time. */
  private parkForRetry(raw: RawEntry, fields: string[], dueAt: number): Output {
    const member = JSON.stringify({ l: this.laneIndex.get(raw.lane) ?? 1, f: fields, u: `${raw.stream}/${raw.id}` });
    return { op: 'z', key: this.o.keys.delay(this.o.name, raw.partition), score: dueAt, member };
  }
}

/** The parked entry's fields: the event as read, with its attempts so far and first failure time. */
function retryFields(raw: RawEntry, attempts: number, now: number): string[] {
  const map = fieldsToMap(raw.fields!);
  const fields = [F_TX, map.get(F_TX)!, F_EVENT, map.get(F_EVENT)!, F_ATTEMPTS, String(attempts), F_FIRST_FAILED, map.get(F_FIRST_FAILED) ?? String(now)];
  const tp = map.get(F_TRACE);
  if (tp) fields.push(F_TRACE, tp);
  return fields;
}

/** The parking member of an event: its merchant within its lane. */
function memberOf(lane: string, event: TransactionEvent): string {
  return `${lane}|${String(event.merchant_id)}`;
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
  if (tx)
    out.push({
      op: 'h',
      key: keys.deadLetterIndex(raw.partition),
      field: tx,
      value: JSON.stringify({ stage, error: error.name, message: error.message.slice(0, 500), at: now }),
    });
  return out;
}

/** A dead letter keeps the event and everything needed to understand and redrive it. */
export function deadLetterFields(stage: string, raw: RawEntry, error: Error, now: number, attempts = Math.max(1, raw.deliveries)): string[] {
  const map = raw.fields ? fieldsToMap(raw.fields) : new Map<string, string>();
  const fields = [
    F_TX,
    map.get(F_TX) ?? '',
    F_EVENT,
    map.get(F_EVENT) ?? '',
    'error',
    error.name || 'Error',
    'message',
    error.message.slice(0, 2_000),
    'stage',
    stage,
    'attempts',
    String(attempts),
    'origin_stream',
    raw.stream,
    'origin_id',
    raw.id,
    'first_failed_at',
    map.get(F_FIRST_FAILED) ?? String(now),
    'last_failed_at',
    String(now),
  ];
  const tp = map.get(F_TRACE);
  if (tp) fields.push(F_TRACE, tp);
  return fields;
}
