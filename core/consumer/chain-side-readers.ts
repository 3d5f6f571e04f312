// A chain's side readers (ordering: key, core/topology/chains.ts): each stage chained behind the
// first still has its own input topic, written only by a dead letter's redrive (or before chaining
// was switched on). The chain reads those intermediate topics now and then, as the stage that
// reads each (its group), and what waits there enters the chain at that stage (chain-batch.ts).
import type { Redis } from 'ioredis';
import type { Keys } from '../keys.ts';
import type { PriorityConfig, StageConfig } from '../topology/schema.ts';
import { LaneReader } from './lane-reader.ts';
import type { RawEntry } from './lane-reader.ts';

/** A chain reads its intermediate topics this often. */
const SIDE_READ_MS = 1_000;

/** A reader and the group it reads as. */
export interface GroupReader {
  reader: LaneReader;
  group: string;
}

export interface ChainSideReadersOptions {
  redis: Redis;
  keys: Keys;
  lanes: readonly PriorityConfig[];
  consumer: string;
  /** The topics' partition count (the first stage's input's: a chain's topics have as many). */
  partitions: number;
  /** The chain's first stage's: its entries are reclaimed under it. */
  visibilityTimeoutMs: number;
  now: () => number;
}

export class ChainSideReaders {
  /** One per chained stage, in chain order (the stage at position k + 1 reads the k-th). */
  readonly readers: GroupReader[];
  private nextRead = 0;

  constructor(
    private readonly o: ChainSideReadersOptions,
    chained: readonly { name: string; config: StageConfig }[],
  ) {
    this.readers = chained.map((s) => ({
      group: s.name,
      reader: new LaneReader({
        redis: o.redis,
        keys: o.keys,
        topic: s.config.input,
        partitions: [],
        lanes: o.lanes,
        group: s.name,
        consumer: o.consumer,
        visibilityTimeoutMs: o.visibilityTimeoutMs,
        now: o.now,
      }),
    }));
  }

  /** Create every intermediate topic's group on every partition. */
  async ensureGroups(): Promise<void> {
    const all = Array.from({ length: this.o.partitions }, (_, i) => i);
    for (const { reader } of this.readers) await reader.ensureGroups(all);
  }

  /** When the next read is due (Infinity: no chain). */
  get nextReadAt(): number {
    return this.readers.length ? this.nextRead : Infinity;
  }

  /** Read at the next chance (a partition was taken over: what was left there goes first). */
  readSoon(): void {
    this.nextRead = 0;
  }

  /** Up to `max` entries of each intermediate topic, each marked to enter the chain at its stage. */
  async read(max: number): Promise<RawEntry[]> {
    this.nextRead = this.o.now() + SIDE_READ_MS;
    const out: RawEntry[] = [];
    for (const [k, { reader }] of this.readers.entries()) {
      const entries = await reader.read(max, 0);
      for (const e of entries) e.level = k + 1;
      out.push(...entries);
    }
    return out;
  }

  /** After a failed step: read this consumer's pending entries again first. */
  recover(): void {
    for (const { reader } of this.readers) reader.recover();
  }
}
