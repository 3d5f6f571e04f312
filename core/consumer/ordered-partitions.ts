// Ordered partitions (ordering: key): a task serves exactly the partitions whose lease this member
// holds. A partition's lease says nobody else works on it now, so its new holder takes over the
// pending entries of its streams, and mirrors its parked queues; a partition lost is forgotten at
// once. Leases themselves are core/leases/partition-leases.ts; the parked entries, parking.ts.
import type { Redis } from 'ioredis';
import type { Keys } from '../keys.ts';
import type { RedisClient } from '../redis.ts';
import type { StageConfig } from '../topology/schema.ts';
import type { PartitionLeases } from '../leases/partition-leases.ts';
import type { RawEntry } from './lane-reader.ts';
import { Parking } from './parking.ts';
import type { GroupReader } from './chain-side-readers.ts';

/** Claim every pending entry of `streams` for `consumer` (JUSTID: no delivery counted), so it finishes them first, in order. */
export async function takeOverPending(redis: RedisClient, streams: readonly string[], group: string, consumer: string): Promise<void> {
  for (const s of streams) {
    let cursor = '0-0';
    do {
      const [next] = (await redis.xautoclaim(s, group, consumer, 0, cursor, 'COUNT', 1000, 'JUSTID')) as [string, string[]];
      cursor = next;
    } while (cursor !== '0-0');
  }
}

export interface OrderedPartitionsOptions {
  redis: Redis;
  keys: Keys;
  /** This member's consumer name in every group. */
  consumer: string;
  leases: PartitionLeases;
  ttlMs: number;
  /** The task's readers, each with its group: the first stage's input first, then a chain's intermediate topics. */
  readers: readonly GroupReader[];
  /** The task's stages, in chain order: each has parked queues of its own. */
  stages: readonly { name: string; config: StageConfig }[];
  now: () => number;
  /** A partition is no longer served: forget what was held of its streams. */
  onLost(partition: number): void;
  /** A partition was taken over (its pending entries are this member's now). */
  onTakenOver(partition: number): void;
}

export class OrderedPartitions {
  /** Each stage's parked queues (a mirror of Redis), in chain order. */
  readonly parkings: Parking[];
  /** Partitions whose lease this member holds and whose pending entries it has taken over. */
  private readonly served = new Set<number>();
  private nextSync = 0;

  constructor(private readonly o: OrderedPartitionsOptions) {
    this.parkings = o.stages.map(
      (s) =>
        new Parking({
          redis: o.redis,
          keys: o.keys,
          stage: s.name,
          maxPerKey: s.config.parking.max_per_key,
          maxPerPartition: s.config.parking.max_per_partition,
        }),
    );
  }

  /** When the leases are synced next. */
  get nextSyncAt(): number {
    return this.nextSync;
  }

  /** Another member joined or gave partitions up: sync at the next batch boundary. */
  syncSoon(): void {
    this.nextSync = 0;
    this.o.readers[0]?.reader.wake();
  }

  /** Sync the leases, then serve exactly the partitions whose lease this member holds. */
  async sync(): Promise<void> {
    const leases = this.o.leases;
    let failed: unknown;
    try {
      await leases.sync();
      this.nextSync = this.o.now() + Math.floor(this.o.ttlMs / 3);
    } catch (err) {
      failed = err; // a sync that failed half-way may still have taken or given up leases
    }
    // serve exactly the partitions whose lease this member holds, whatever the last sync reported
    const owned = new Set(leases.owned());
    for (const p of [...this.served]) {
      if (owned.has(p)) continue;
      this.served.delete(p);
      for (const parking of this.parkings) parking.forget(p);
      this.o.onLost(p);
    }
    try {
      // the lease says nobody else works on these partitions now: take their pending entries
      // (JUSTID: no delivery counted) so this consumer finishes them first, in order
      for (const p of owned) {
        if (this.served.has(p)) continue;
        for (const { reader, group } of this.o.readers) await takeOverPending(this.o.redis, reader.streamsOf(p), group, this.o.consumer);
        this.served.add(p);
        this.o.onTakenOver(p);
      }
      // mirror the parked queues again at every sync, not only at takeover: a stale former owner
      // (paused past its lease) may still have parked an entry it acknowledged; it is found here
      // within a sync period instead of waiting for the next takeover
      await this.loadParking();
    } finally {
      for (const { reader } of this.o.readers) reader.setPartitions([...this.served]);
    }
    if (failed) throw failed;
  }

  /** After a failed step: parked queues may have changed half-way, so mirror them from Redis again. */
  async recover(): Promise<void> {
    await this.loadParking().catch(() => this.reset());
  }

  /** Mirror the parked queues of `partitions` from Redis again (a settle stopped at a cap). */
  async mirror(partitions: readonly number[]): Promise<void> {
    for (const parking of this.parkings) await parking.load(partitions);
  }

  /** After a settle: refresh the parked queues it touched (per stage: partition → members). */
  async refresh(touched: readonly Map<number, Set<string>>[]): Promise<void> {
    for (const [k, t] of touched.entries()) if (t.size) await this.parkings[k]?.refresh(t);
  }

  /** The earliest time a parked queue of any of the task's stages is due (Infinity: none). */
  parkedDue(): number {
    let t = Infinity;
    for (const parking of this.parkings) t = Math.min(t, parking.nextDue());
    return t;
  }

  /** Up to `max` due parked heads of every stage, each entering the chain at its own stage. */
  async takeParked(now: number, max: number): Promise<RawEntry[]> {
    const out: RawEntry[] = [];
    for (const [k, parking] of this.parkings.entries()) {
      if (parking.nextDue() > now || out.length >= max) continue;
      const taken = await parking.takeDue(now, max - out.length);
      if (k) for (const e of taken) e.level = k;
      out.push(...taken);
    }
    return out;
  }

  /** Mirror every stage's parked queues of the served partitions from Redis. */
  private async loadParking(): Promise<void> {
    for (const parking of this.parkings) await parking.load([...this.served]);
  }

  /** Forget what this member serves (a failed mirror load): the next sync takes it over again. */
  private reset(): void {
    for (const p of this.served) for (const parking of this.parkings) parking.forget(p);
    this.served.clear();
    for (const { reader } of this.o.readers) reader.setPartitions([]);
    this.nextSync = 0;
  }
}
