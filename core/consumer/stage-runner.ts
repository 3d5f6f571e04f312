// Runs one stage: reads batches from its input topic, hands them to the processor, and settles
// every entry (ack + result, one atomic script per input stream, one pipeline per batch).
//  - ordering none: every partition through the shared group; a retry is parked in the stage's
//    delay set and moved back when due (move-due script), so other events flow past it.
//  - ordering key: only the partitions this consumer holds a lease on (ordered-partitions.ts). An
//    event that must retry or wait is parked with its merchant's later events of that lane
//    (parking.ts); the lane goes on with every other merchant. Due parked queues are taken and
//    processed like a read.
// Here: the wiring, the order of each step, and a batch's run and settle (the parts: docs/architecture.md).
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
import type { RawEntry } from './lane-reader.ts';
import type { Loop } from './loop.ts';
import { GroupConsumer } from './group-consumer.ts';
import { Settlement } from './settlement.ts';
import { runBatch } from './chain-batch.ts';
import type { BatchContext, TaskStage } from './batch-types.ts';
import { endSpans } from './spans.ts';
import { DueRetries } from './retry-schedule.ts';
import { OrderedPartitions } from './ordered-partitions.ts';
import { CapHold } from './cap-hold.ts';
import { ChainSideReaders } from './chain-side-readers.ts';

/** A stage chained behind the runner's own (core/topology/chains.ts): its events arrive in memory. */
export type ChainedStageOptions = Pick<TaskStage, 'name' | 'config' | 'processor'>;

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

export class StageRunner {
  private readonly group: GroupConsumer;
  /** What every batch is run with: the task's stages (this one, then those chained behind it), lanes, keys. */
  private readonly batch: Omit<BatchContext, 'now'>;
  private readonly side: ChainSideReaders;
  private readonly capHold: CapHold;
  private readonly retries: DueRetries | undefined; // ordering: none
  /** ordering: key: the leases, the partitions they let this member serve, and their parked queues. */
  private readonly leases: PartitionLeases | undefined;
  private readonly ordered: OrderedPartitions | undefined;
  /** The last iteration handled parked entries: this one reads the streams (no starvation). */
  private tookParked = false;
  private readonly outcomes;
  private readonly duration;
  private readonly now: () => number;

  constructor(private readonly o: StageRunnerOptions) {
    this.now = o.now ?? Date.now;
    const partitions = o.topology.topics[o.config.input]!.partitions;
    const lanes = o.topology.priorities;
    const keyed = o.config.ordering === 'key';
    // what every part is built with
    const wiring = { redis: o.redis, keys: o.keys, consumer: o.consumer, logger: o.logger, now: this.now, lanes, partitions };
    const visibilityTimeoutMs = o.config.visibility_timeout;
    this.group = new GroupConsumer({ ...wiring, loop: `stage:${o.name}`, topic: o.config.input, group: o.name, visibilityTimeoutMs, leased: keyed });
    const chained = keyed ? (o.chain ?? []) : [];
    const task = [{ name: o.name, config: o.config, processor: o.processor }, ...chained];
    this.side = new ChainSideReaders({ ...wiring, visibilityTimeoutMs }, chained);
    const readers = [{ reader: this.group.reader, group: o.name }, ...this.side.readers];
    this.capHold = new CapHold(readers.map((r) => r.reader));
    if (keyed) {
      const ttlMs = o.leaseTtlMs ?? 10_000;
      const onSyncNeeded = () => this.ordered?.syncSoon();
      const leases = (this.leases = new PartitionLeases({ ...wiring, stage: o.name, member: o.consumer, ttlMs, handover: o.handover, onSyncNeeded }));
      const onLost = (p: number) => this.capHold.forgetPartition(p);
      const onTakenOver = () => this.side.readSoon(); // entries left in the intermediate topics go first
      this.ordered = new OrderedPartitions({ ...wiring, leases, ttlMs, readers, stages: task, onLost, onTakenOver });
    } else {
      this.retries = new DueRetries({ ...wiring, stage: o.name, streamsOf: (p) => this.group.reader.streamsOf(p) });
    }
    const stages = task.map((s, k) => ({ ...s, parking: this.ordered?.parkings[k], onDelayed: this.retries?.onDelayed }));
    const laneIndex = new Map(lanes.map((p, i) => [p.name, i + 1]));
    this.batch = { stages, topology: o.topology, keys: o.keys, lanes: new LaneMap(lanes), laneIndex, random: o.random };
    this.outcomes = counter(o.registry, 'rill_stage_events_total', 'Events settled by a stage, by outcome', ['stage', 'outcome']);
    this.duration = histogram(o.registry, 'rill_stage_batch_duration_seconds', 'Time to process and settle one batch', ['stage'], LATENCY_BUCKETS);
  }

  async start(): Promise<void> {
    const prepare = () => this.side.ensureGroups(); // the intermediate topics' groups too
    await this.group.start((loop) => this.step(loop), prepare);
  }

  /** Stop reading; resolves when the in-flight batch is settled and leases are released. */
  async stop(): Promise<void> {
    await this.group.stop();
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
      this.capHold.clear();
      this.group.reader.recover();
      this.side.recover();
      await this.ordered?.recover();
      throw err;
    }
  }

  private async iterate(loop?: Pick<Loop, 'stopping'>): Promise<void> {
    const { ordered, retries } = this;
    const now = this.now();
    if (ordered && now >= ordered.nextSyncAt) await ordered.sync();
    if (retries && now >= retries.nextMoveAt) await retries.move();
    if (loop?.stopping) return;
    const held = this.capHold.take(now);
    if (held.length) {
      await this.handle(held);
      this.capHold.release(held);
      return;
    }
    if (ordered && !this.tookParked && ordered.parkedDue() <= now) {
      const parked = await ordered.takeParked(now, this.o.config.batch);
      if (parked.length) {
        this.tookParked = true;
        return this.handle(parked);
      }
    }
    this.tookParked = false;
    if (now >= this.side.nextReadAt) {
      const side = await this.side.read(this.o.config.batch);
      if (side.length) return this.handle(side);
    }
    const wakeAt = Math.min(this.nextWake(), this.now() + (this.o.blockMs ?? 1_000));
    const entries = await this.group.reader.read(this.o.config.batch, Math.max(this.o.blockMs === 0 ? 0 : 1, wakeAt - this.now()));
    if (!entries.length) return;
    await this.handle(entries);
    const linger = this.o.lingerMs ?? 0;
    if (linger > 0 && entries.length < this.o.config.batch / 4 && !loop?.stopping) await new Promise((r) => setTimeout(r, linger));
  }

  /** The earliest moment something other than new entries needs this loop. */
  private nextWake(): number {
    const t = this.ordered ? Math.min(this.ordered.nextSyncAt, this.ordered.parkedDue()) : this.retries!.nextMoveAt;
    return Math.min(t, this.side.nextReadAt, this.capHold.nextDue());
  }

  /** Process one batch through the task's stages and settle every entry in it. */
  async handle(entries: readonly RawEntry[]): Promise<void> {
    const o = this.o;
    const end = this.duration.startTimer({ stage: o.name });
    const settlement = new Settlement(o.name);
    const now = this.now();
    const result = await runBatch({ ...this.batch, now }, entries, settlement);
    faultPoint('stage-before-settle');
    const { stopped } = await settlement.exec(o.redis);
    faultPoint('stage-after-settle');
    if (stopped.length) {
      // parking is at a cap: the rest of these lanes stays pending, tried again (in order) after a
      // pause, from memory (a re-read would count a delivery against each of them)
      this.capHold.hold(stopped, entries, now);
      const streams = stopped.map((s) => s.input);
      o.logger.warn({ stage: o.name, streams, left: stopped.reduce((n, s) => n + s.ids.length, 0) }, 'parking is at a cap: lane paused');
      await this.ordered?.mirror([...new Set(entries.map((e) => e.partition))]);
    } else {
      await this.ordered?.refresh(result.touched);
    }
    endSpans(result);
    // logged once the settle script has written them (a failed exec leaves them pending: not dead yet)
    for (const d of result.deadLettered) o.logger.warn(d, 'dead-lettered');
    for (const [stage, counts] of result.counts) for (const [outcome, n] of Object.entries(counts)) if (n) this.outcomes.inc({ stage, outcome }, n);
    end();
  }
}
