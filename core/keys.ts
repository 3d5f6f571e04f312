// Redis key names. Every key that belongs to partition i carries the hash tag {i}, so one Lua
// script can move an event between a partition's streams atomically, also on Redis Cluster.
import { hash } from 'node:crypto';

export class Keys {
  constructor(readonly prefix: string) {}

  /** A topic's stream for one partition and lane: rill:{7}:transactions:normal */
  lane(topic: string, partition: number, lane: string): string {
    return `${this.prefix}:{${partition}}:${topic}:${lane}`;
  }

  /** A stage's dead-letter stream for one partition. */
  deadLetter(stage: string, partition: number): string {
    return `${this.prefix}:{${partition}}:dlq:${stage}`;
  }

  /** Which transactions of a partition were dead-lettered, by tx id (for status lookups). */
  deadLetterIndex(partition: number): string {
    return `${this.prefix}:{${partition}}:dlq-index`;
  }

  /** A stage's delay set (retries waiting for their time) for one partition. */
  delay(stage: string, partition: number): string {
    return `${this.prefix}:{${partition}}:delay:${stage}`;
  }

  /**
   * An ordered stage's parked events of one partition: the index (sorted set: "<lane>|<merchant>"
   * → when its first parked event is due), the tokens events wait for (hash: token → member), how
   * often each queue's head was taken without being settled (hash), and the total parked (string).
   */
  parked(stage: string, partition: number, part: 'index' | 'waiters' | 'taken' | 'count'): string {
    return `${this.prefix}:{${partition}}:park:${stage}:${part}`;
  }

  /** One merchant's parked events in one lane of a partition, oldest first (list). */
  parkQueue(stage: string, partition: number, member: string): string {
    return `${this.prefix}:{${partition}}:park:${stage}:q:${member}`;
  }

  /** The refundable-payins bucket of a merchant (hash: payin id → state), see core/payins.ts. */
  payins(partition: number, merchantId: string, bucket: string): string {
    return `${this.prefix}:{${partition}}:payins:${merchantId}:${bucket}`;
  }

  /**
   * An idempotency record: lives in the partition of its merchant, beside the stream it guards.
   * Named by 132 bits of SHA-256 of merchant id and key (22 characters, whatever the key's length):
   * with a short prefix the whole record stays within 120 bytes of Redis memory (#18).
   */
  idempotency(partition: number, merchantId: string, key: string): string {
    return `${this.prefix}:{${partition}}:idem:${hash('sha256', `${merchantId}\n${key}`, 'base64url').slice(0, 22)}`;
  }

  /** The lease on one partition of an ordered stage. */
  lease(stage: string, partition: number): string {
    return `${this.prefix}:{${partition}}:lease:${stage}`;
  }

  /** A processor's own state for one partition, e.g. partitioned(3, 'wallet', merchant). */
  partitioned(partition: number, ...parts: string[]): string {
    return [`${this.prefix}:{${partition}}`, ...parts].join(':');
  }

  /** Keys outside any partition (heartbeats, leader locks, settings). */
  global(...parts: string[]): string {
    return [this.prefix, 'g', ...parts].join(':');
  }

  /** Pattern matching every key of this prefix (for cleanup and status). */
  pattern(): string {
    return `${this.prefix}:*`;
  }
}
