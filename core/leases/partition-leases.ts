// Partition ownership for `ordering: key` stages, like Kafka's group coordinator: live members
// heartbeat into a sorted set; every member computes the same assignment (partition p goes to the
// (p mod n)-th live member by name), releases what is no longer its own and takes a lease
// (a redis-semaphore mutex with TTL and refresh) on each partition assigned to it. A dead member's
// heartbeat and leases expire within the TTL, and the others take its partitions over.
import { Mutex } from 'redis-semaphore';
import type { Redis } from 'ioredis';
import type { Keys } from '../keys.ts';
import type { Logger } from '../logger.ts';

/** The Redis key holding a partition's lease: redis-semaphore prefixes its keys with `mutex:`. */
export function leaseRedisKey(keys: Keys, stage: string, partition: number): string {
  return `mutex:${keys.lease(stage, partition)}`;
}

export interface PartitionLeasesOptions {
  redis: Redis;
  keys: Keys;
  stage: string;
  member: string;
  partitions: number;
  ttlMs: number;
  logger: Logger;
  /** Clock for heartbeats (default Date.now), for simulation. */
  now?: () => number;
}

export interface LeaseChanges {
  acquired: number[];
  released: number[];
}

export class PartitionLeases {
  private readonly held = new Map<number, Mutex>();
  private readonly lost = new Set<number>();
  private readonly membersKey: string;

  constructor(private readonly o: PartitionLeasesOptions) {
    this.membersKey = o.keys.global('members', o.stage);
  }

  owned(): number[] {
    return [...this.held.keys()].filter((p) => !this.lost.has(p)).sort((a, b) => a - b);
  }

  /** Partitions whose lease was lost since the last sync (stop working on them at once). */
  isLost(partition: number): boolean {
    return this.lost.has(partition);
  }

  /** Heartbeat, then converge on this member's share. Call at a batch boundary. */
  async sync(): Promise<LeaseChanges> {
    const now = (this.o.now ?? Date.now)();
    const res = await this.o.redis
      .multi()
      .zadd(this.membersKey, String(now + this.o.ttlMs), this.o.member)
      .zremrangebyscore(this.membersKey, '-inf', String(now))
      .zrange(this.membersKey, '0', '-1')
      .pexpire(this.membersKey, this.o.ttlMs * 10)
      .exec();
    const live = ((res?.[2]?.[1] as string[] | undefined) ?? []).slice().sort();
    const index = live.indexOf(this.o.member);
    const mine = new Set<number>();
    for (let p = 0; p < this.o.partitions; p++) if (live.length && p % live.length === index) mine.add(p);

    const released: number[] = [];
    for (const p of this.lost) {
      this.held.get(p)?.stopRefresh();
      this.held.delete(p);
      released.push(p);
    }
    this.lost.clear();
    for (const [p, mutex] of this.held) {
      if (mine.has(p)) continue;
      await mutex.release().catch(() => undefined);
      this.held.delete(p);
      released.push(p);
    }
    const acquired: number[] = [];
    for (const p of mine) {
      if (this.held.has(p)) continue;
      const mutex = new Mutex(this.o.redis, this.o.keys.lease(this.o.stage, p), {
        lockTimeout: this.o.ttlMs,
        refreshInterval: Math.floor(this.o.ttlMs / 3),
        acquireAttemptsLimit: 1,
        identifier: `${this.o.member}:${p}`,
        onLockLost: () => {
          this.o.logger.warn({ partition: p }, 'partition lease lost');
          this.lost.add(p);
        },
      });
      if (await mutex.tryAcquire()) {
        this.held.set(p, mutex);
        acquired.push(p);
      }
    }
    if (acquired.length || released.length) this.o.logger.info({ acquired, released, owned: this.owned(), members: live.length }, 'partition leases changed');
    return { acquired, released };
  }

  /** Leave the group: release every lease and the membership, so others take over at once. */
  async stop(): Promise<void> {
    for (const mutex of this.held.values()) await mutex.release().catch(() => undefined);
    this.held.clear();
    await this.o.redis.zrem(this.membersKey, this.o.member).catch(() => undefined);
  }
}
