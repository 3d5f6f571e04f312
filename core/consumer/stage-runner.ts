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
import type { Processor } from '../processor.ts';
import type { StageConfig, Topology } from '../topology/schema.ts';
import { LaneMap } from '../lanes.ts';
import { faultPoint } from '../faults.ts';
import { PartitionLeases } from '../leases/partition-leases.ts';
import type { LeaseHandover } from '../leases/handover.ts';
import { LaneReader } from './lane-reader.ts';
import type { RawEntry } from './lane-reader.ts';
import { runLoop } from './loop.ts';
import type { Loop } from './loop.ts';
import { Settlement } from './settlement.ts';
import { Parking } from './parking.ts';
import { runBatch } from './chain-batch.ts';
import type { TaskStage } from './batch-types.ts';
import { endSpans } from './spans.ts';
import { moveDueRetries } from './retry-schedule.ts';
import { takeOverPending } from './ordered-partitions.ts';

/** A stage chained behind the runner's own (core/topology/chains.ts): its events arrive in memory. */
export interface ChainedStageOptions {
  name: string;
  config: StageConfig;
  processor: Processor;
}

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
  /**
   * ordering: key: the stages chained behind this one, in order. The task reads this stage's input,
   * holds its leases, and settles each read entry once, at the end of the chain.
   */
  chain?: readonly ChainedStageOptions[];
}

/** What a lane stream left unsettled because parking was at a cap is tried again after this. */
const CAP_PAUSE_MS = 250;
/** A chain reads its intermediate topics (redriven dead letters, entries left from before chaining) this often. */
const SIDE_READ_MS = 1_000;

export class StageRunner {
  private loop: Loop | undefined;
  private readonly reader: LaneReader;
  private readonly lanes: LaneMap;
  private readonly laneIndex: Map<string, number>;
  private readonly partitions: number;
  private readonly leases: PartitionLeases | undefined;
  /** The task's stages: this one, then those chained behind it. */
  private readonly stages: TaskStage[];
  /** A chain's intermediate topics, read by the stage after each (entering the chain there). */
  private readonly sideReaders: LaneReader[] = [];
  private nextSideRead = 0;
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
    }
    const chained = keyed ? (o.chain ?? []) : [];
    this.stages = [{ name: o.name, config: o.config, processor: o.processor }, ...chained].map((s) => ({
      ...s,
      parking: keyed
        ? new Parking({
            redis: o.redis,
            keys: o.keys,
            stage: s.name,
            maxPerKey: s.config.parking.max_per_key,
            maxPerPartition: s.config.parking.max_per_partition,
          })
        : undefined,
      onDelayed: keyed ? undefined : (dueAt: number) => (this.nextMoveAt = Math.min(this.nextMoveAt, dueAt)),
    }));
    for (const s of chained) {
      this.sideReaders.push(
        new LaneReader({
          redis: o.redis,
          keys: o.keys,
          topic: s.config.input,
          partitions: [],
          lanes: o.topology.priorities,
          group: s.name,
          consumer: o.consumer,
          visibilityTimeoutMs: o.config.visibility_timeout,
          now: o.now,
        }),
      );
    }
    this.outcomes = counter(o.registry, 'rill_stage_events_total', 'Events settled by a stage, by outcome', ['stage', 'outcome']);
    this.duration = histogram(o.registry, 'rill_stage_batch_duration_seconds', 'Time to process and settle one batch', ['stage'], LATENCY_BUCKETS);
  }

  private all(): number[] {
    return Array.from({ length: this.partitions }, (_, i) => i);
  }

  async start(): Promise<void> {
    await this.reader.ensureGroups(this.all());
    for (const r of this.sideReaders) await r.ensureGroups(this.all());
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
      for (const stream of this.capHeld.keys()) this.readerOf(stream)?.paused.delete(stream);
      this.capHeld.clear(); // still pending here: recover() reads them again, in order
      this.reader.recover();
      for (const r of this.sideReaders) r.recover();
      // parked queues may have changed half-way: mirror them from Redis again
      if (this.leases) await this.loadParking().catch(() => this.resetServed());
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
      for (const stream of new Set(held.map((e) => e.stream))) if (!this.capHeld.has(stream)) this.readerOf(stream)?.paused.delete(stream);
      return;
    }
    if (this.leases && !this.tookParked && this.parkedDue() <= now) {
      const parked = await this.takeParked(now);
      if (parked.length) {
        this.tookParked = true;
        return this.run(parked);
      }
    }
    this.tookParked = false;
    if (this.sideReaders.length && now >= this.nextSideRead) {
      const side = await this.readSide();
      if (side.length) return this.run(side);
    }
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
    if (this.leases) t = Math.min(t, this.parkedDue());
    if (this.sideReaders.length) t = Math.min(t, this.nextSideRead);
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
    for (const p of this.served) for (const s of this.stages) s.parking?.forget(p);
    this.served.clear();
    this.reader.setPartitions([]);
    for (const r of this.sideReaders) r.setPartitions([]);
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
      for (const s of this.stages) s.parking?.forget(p);
      for (const r of [this.reader, ...this.sideReaders]) {
        for (const s of r.streamsOf(p)) {
          this.capHeld.delete(s);
          r.paused.delete(s);
        }
      }
    }
    try {
      // the lease says nobody else works on these partitions now: take their pending entries
      // (JUSTID: no delivery counted) so this consumer finishes them first, in order
      for (const p of owned) {
        if (this.served.has(p)) continue;
        await this.takeOver(this.reader.streamsOf(p), this.o.name);
        for (const [k, r] of this.sideReaders.entries()) await this.takeOver(r.streamsOf(p), this.stages[k + 1]!.name);
        this.served.add(p);
        this.nextSideRead = 0; // entries left in the intermediate topics go first
      }
      // mirror the parked queues again at every sync, not only at takeover: a stale former owner
      // (paused past its lease) may still have parked an entry it acknowledged; it is found here
      // within a sync period instead of waiting for the next takeover
      await this.loadParking();
    } finally {
      this.reader.setPartitions([...this.served]);
      for (const r of this.sideReaders) r.setPartitions([...this.served]);
    }
    if (failed) throw failed;
  }

  /** Mirror every stage's parked queues of the served partitions from Redis. */
  private async loadParking(): Promise<void> {
    for (const s of this.stages) await s.parking?.load([...this.served]);
  }

  /** The earliest time a parked queue of any of the task's stages is due (Infinity: none). */
  private parkedDue(): number {
    let t = Infinity;
    for (const s of this.stages) if (s.parking) t = Math.min(t, s.parking.nextDue());
    return t;
  }

  /** Due parked heads of every stage, each entering the chain at its own stage. */
  private async takeParked(now: number): Promise<RawEntry[]> {
    const out: RawEntry[] = [];
    for (const [k, s] of this.stages.entries()) {
      if (!s.parking || s.parking.nextDue() > now || out.length >= this.o.config.batch) continue;
      const taken = await s.parking.takeDue(now, this.o.config.batch - out.length);
      if (k) for (const e of taken) e.level = k;
      out.push(...taken);
    }
    return out;
  }

  /**
   * A chain's intermediate topics are written only by a dead letter's redrive (or were, before
   * chaining was switched on): what waits there enters the chain at the stage that reads it.
   */
  private async readSide(): Promise<RawEntry[]> {
    this.nextSideRead = this.now() + SIDE_READ_MS;
    const out: RawEntry[] = [];
    for (const [k, r] of this.sideReaders.entries()) {
      const entries = await r.read(this.o.config.batch, 0);
      for (const e of entries) e.level = k + 1;
      out.push(...entries);
    }
    return out;
  }

  private async takeOver(streams: readonly string[], group: string): Promise<void> {
    await takeOverPending(this.o.redis, streams, group, this.o.consumer);
  }

  /** Move due retries from the delay sets back onto the input streams (all partitions, one round trip). */
  private async moveDue(): Promise<void> {
    this.nextMoveAt = await moveDueRetries({
      redis: this.o.redis,
      keys: this.o.keys,
      stage: this.o.name,
      partitions: this.partitions,
      streamsOf: (p) => this.reader.streamsOf(p),
      now: this.now,
    });
  }

  /** Process one batch through the task's stages and settle every entry in it. */
  async handle(entries: readonly RawEntry[]): Promise<void> {
    const settlement = new Settlement(this.o.name);
    const now = this.now();
    const result = await runBatch(
      {
        stages: this.stages,
        topology: this.o.topology,
        keys: this.o.keys,
        lanes: this.lanes,
        laneIndex: this.laneIndex,
        now,
        random: this.o.random,
      },
      entries,
      settlement,
    );
    faultPoint('stage-before-settle');
    const { stopped } = await settlement.exec(this.o.redis);
    faultPoint('stage-after-settle');
    const parkings = this.stages.flatMap((s) => (s.parking ? [s.parking] : []));
    if (stopped.length) {
      // parking is at a cap: the rest of these lanes stays pending, tried again (in order) after a
      // pause, from memory (a re-read would count a delivery against each of them)
      const streams = stopped.map((s) => s.input);
      for (const { input, ids } of stopped) {
        const left = new Set(ids);
        this.capHeld.set(input, { entries: entries.filter((e) => e.stream === input && !e.parked && left.has(e.id)), until: now + CAP_PAUSE_MS });
        this.readerOf(input)?.paused.add(input);
      }
      this.o.logger.warn({ stage: this.o.name, streams, left: stopped.reduce((n, s) => n + s.ids.length, 0) }, 'parking is at a cap: lane paused');
      const partitions = [...new Set(entries.map((e) => e.partition))];
      for (const parking of parkings) await parking.load(partitions);
    } else {
      for (const [k, touched] of result.touched.entries()) if (touched.size) await this.stages[k]!.parking?.refresh(touched);
    }
    endSpans(result);
    // logged once the settle script has written them (a failed exec leaves them pending: not dead yet)
    for (const d of result.deadLettered) this.o.logger.warn(d, 'dead-lettered');
    for (const [stage, counts] of result.counts) for (const [outcome, n] of Object.entries(counts)) if (n) this.outcomes.inc({ stage, outcome }, n);
  }

  /** The reader a lane stream belongs to (the first input's, or an intermediate topic's). */
  private readerOf(stream: string): LaneReader | undefined {
    return [this.reader, ...this.sideReaders].find((r) => r.streams.includes(stream));
  }
}
