// Partition ownership for `ordering: key` stages, like Kafka's group coordinator: live members
// heartbeat into a sorted set; every member computes the same assignment from the live members
// (assignment.ts), releases what is no longer its own and takes a lease (a redis-semaphore mutex
// with TTL and refresh) on each partition assigned to it. A dead member's heartbeat and leases
// expire within the TTL, and the others take its partitions over.
//
// With a LeaseHandover (worker processes) changes travel at once: a member that joins or gives
// partitions up announces it and the others sync now; a member still waiting for a partition
// (its holder has not let go yet) tries again every RETRY_MS; and a member restarted with the same
// id adopts the leases its previous process held (same identifier), so its partitions come
// straight back to it. A loop waiting in a blocking stream read is woken for it (CLIENT UNBLOCK
// of its connection: the read returns empty, the loop syncs). Without a handover (the
// simulation drives the clock), syncs are periodic only.
import { Mutex } from 'redis-semaphore';
import type { Redis } from 'ioredis';
import type { Keys } from '../keys.ts';
import type { Logger } from '../logger.ts';
import { isCluster } from '../slot-pipeline.ts';
import { assignPartitions } from './assignment.ts';
import type { LeaseHandover } from './handover.ts';

/** How soon a member that wants a partition still held by another asks again (with a handover). */
const RETRY_MS = 100;

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
  /** Fast handover between worker processes (see the top of this file). */
  handover?: LeaseHandover;
  /** With a handover: called when this member should sync now (a notice, or a partition to retry). */
  onSyncNeeded?: () => void;
}

export interface LeaseChanges {
  acquired: number[];
  released: number[];
}

export class PartitionLeases {
  private readonly held = new Map<number, Mutex>();
  private readonly lost = new Set<number>();
  private readonly membersKey: string;
  private readonly redis: Redis;
  private readonly unlisten: (() => void) | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** CLIENT ID of the loop's own connection (it may be blocked in XREADGROUP), for CLIENT UNBLOCK. */
  private readerId: string | undefined;

  constructor(private readonly o: PartitionLeasesOptions) {
    this.membersKey = o.keys.global('members', o.stage);
    this.redis = o.handover?.redis ?? o.redis;
    if (o.handover && o.onSyncNeeded) this.unlisten = o.handover.listen(o.stage, o.member, () => this.kick());
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
    // the loop's connection is free while it syncs; its id changes when it reconnects
    if (this.o.handover && !isCluster(this.o.redis)) this.readerId = String(await this.o.redis.client('ID'));
    const now = (this.o.now ?? Date.now)();
    const res = await this.redis
      .multi()
      .zadd(this.membersKey, String(now + this.o.ttlMs), this.o.member)
      .zremrangebyscore(this.membersKey, '-inf', String(now))
      .zrange(this.membersKey, '0', '-1')
      .pexpire(this.membersKey, this.o.ttlMs * 10)
      .exec();
    const joined = res?.[0]?.[1] === 1;
    const live = (res?.[2]?.[1] as string[] | undefined) ?? [];
    const owners = assignPartitions(live, this.o.partitions);
    const mine = new Set<number>();
    for (const [p, owner] of owners) if (owner === this.o.member) mine.add(p);

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
    const waiting: number[] = [];
    for (const p of mine) {
      if (this.held.has(p)) continue;
      let mutex = this.mutex(p, false);
      let got = await mutex.tryAcquire();
      if (!got && this.o.handover) {
        // a restart with the same id: the lease may still be this member's, from its last process
        mutex = this.mutex(p, true);
        got = await mutex.tryAcquire();
      }
      if (got) {
        this.held.set(p, mutex);
        acquired.push(p);
      } else waiting.push(p);
    }
    if (acquired.length || released.length) this.o.logger.info({ acquired, released, owned: this.owned(), members: live.length }, 'partition leases changed');
    if (this.o.handover) {
      if (joined || released.length) await this.o.handover.announce(this.o.stage, this.o.member);
      if (waiting.length && !this.retry) {
        this.retry = setTimeout(() => {
          this.retry = undefined;
          this.kick();
        }, RETRY_MS);
        this.retry.unref();
      }
    }
    return { acquired, released };
  }

  /** Have the loop sync now: flag it, and end a blocking read it may be waiting in. */
  private kick(): void {
    this.o.onSyncNeeded?.();
    if (this.readerId !== undefined) void this.redis.client('UNBLOCK', this.readerId).catch(() => undefined);
  }

  private mutex(p: number, adopt: boolean): Mutex {
    return new Mutex(this.redis, this.o.keys.lease(this.o.stage, p), {
      lockTimeout: this.o.ttlMs,
      refreshInterval: Math.floor(this.o.ttlMs / 3),
      acquireAttemptsLimit: 1,
      identifier: `${this.o.member}:${p}`,
      acquiredExternally: adopt ? true : undefined,
      onLockLost: () => {
        this.o.logger.warn({ partition: p }, 'partition lease lost');
        this.lost.add(p);
      },
    });
  }

  /** Leave the group: release every lease and the membership, so others take over at once. */
  async stop(): Promise<void> {
    clearTimeout(this.retry);
    this.unlisten?.();
    for (const mutex of this.held.values()) await mutex.release().catch(() => undefined);
    this.held.clear();
    await this.redis.zrem(this.membersKey, this.o.member).catch(() => undefined);
    await this.o.handover?.announce(this.o.stage, this.o.member);
  }
}
