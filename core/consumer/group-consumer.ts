// One consumer of a group on one topic: the skeleton every stage and sink runs on. It owns the
// reader (every lane of the topic's partitions), creates the group's streams at start, runs the
// step loop until stopped, and settles what the step decides: plain acknowledgements (XACK) or
// entries given up on (acknowledged and dead-lettered in one settle script, settle()).
import type { Redis } from 'ioredis';
import type { Keys } from '../keys.ts';
import type { Logger } from '../logger.ts';
import type { PriorityConfig } from '../topology/schema.ts';
import { slotPipeline } from '../slot-pipeline.ts';
import { deadLetterOutputs } from '../dead-letter/record.ts';
import { LaneReader } from './lane-reader.ts';
import type { RawEntry } from './lane-reader.ts';
import { runLoop } from './loop.ts';
import type { Loop } from './loop.ts';
import { Settlement } from './settlement.ts';

export interface GroupConsumerOptions {
  /** The loop's name in logs (`stage:<name>`, `sink:<name>`). */
  loop: string;
  /** Dedicated connection for the reader (blocking reads hold it). */
  redis: Redis;
  keys: Keys;
  topic: string;
  /** The topic's partition count: the group is created on every partition. */
  partitions: number;
  lanes: readonly PriorityConfig[];
  group: string;
  consumer: string;
  visibilityTimeoutMs: number;
  logger: Logger;
  /** ordering: key: read no partition until the leases say which (default: read them all). */
  leased?: boolean;
  /** Where a new group starts on each stream (default '0': the whole stream; '$': what comes after). */
  startId?: string;
  /** Read redelivered entries one at a time (default true: stages); false for sinks. */
  isolateRedeliveries?: boolean;
  /** Clock (default Date.now), for simulation. */
  now?: () => number;
}

/**
 * How a sink settles one entry: acknowledged, or (with `error`, an entry it gives up on) acknowledged
 * and dead-lettered; `attempts` made default to the entry's deliveries.
 */
export type SinkSettle = { raw: RawEntry; error?: undefined } | { raw: RawEntry; error: Error; attempts?: number };

export class GroupConsumer {
  readonly reader: LaneReader;
  private loop: Loop | undefined;
  private readonly all: number[];

  constructor(private readonly o: GroupConsumerOptions) {
    this.all = Array.from({ length: o.partitions }, (_, i) => i);
    this.reader = new LaneReader({
      redis: o.redis,
      keys: o.keys,
      topic: o.topic,
      partitions: o.leased ? [] : this.all,
      lanes: o.lanes,
      group: o.group,
      consumer: o.consumer,
      visibilityTimeoutMs: o.visibilityTimeoutMs,
      now: o.now,
      isolateRedeliveries: o.isolateRedeliveries,
    });
  }

  /**
   * Create the group on every partition, run `prepare` (more setup that must come before the
   * first step), then run `step` in a loop until stop().
   */
  async start(step: (loop: Loop) => Promise<void>, prepare?: () => Promise<void>): Promise<void> {
    await this.reader.ensureGroups(this.all, this.o.startId ?? '0');
    await prepare?.();
    this.loop = runLoop(this.o.loop, this.o.logger, step);
  }

  /** Stop the loop (a blocking read is woken); resolves once the in-flight step has finished. */
  async stop(): Promise<void> {
    this.loop?.stop();
    this.reader.wake();
    await this.loop?.done;
  }

  /** Acknowledge `entries` (XACK, one pipeline: one round trip, one per node on a cluster). */
  async ack(redis: Redis, entries: readonly RawEntry[]): Promise<void> {
    const byStream = new Map<string, string[]>();
    for (const e of entries) {
      const ids = byStream.get(e.stream);
      if (ids) ids.push(e.id);
      else byStream.set(e.stream, [e.id]);
    }
    const pipe = slotPipeline(redis);
    for (const [stream, ids] of byStream) pipe.add(stream, (q) => q.xack(stream, this.o.group, ...ids));
    const res = await pipe.exec();
    for (const [err] of res) if (err) throw err;
  }

  /** Settle a batch in one round trip: each entry acknowledged, the ones with an error also dead-lettered. */
  async settle(redis: Redis, items: readonly SinkSettle[], now: number): Promise<void> {
    const settlement = new Settlement(this.o.group);
    for (const item of items)
      settlement.add(item.raw, item.error ? deadLetterOutputs(this.o.keys, this.o.group, item.raw, item.error, now, item.attempts) : []);
    await settlement.exec(redis);
  }
}
