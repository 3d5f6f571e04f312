// Per-endpoint delivery queues in Redis, in the partition of the endpoint's merchant:
//   {p}:wh:due          zset endpoint id -> unix ms its next delivery may be attempted
//   {p}:wh:leases       hash endpoint id -> token of the worker attempting it now
//   {p}:wh:q:<ep>       list of event ids, in the merchant's order
//   {p}:wh:d:<ep>:<evt> hash body, type, attempts, next_at, created
// A slow or dead endpoint holds only its own queue; the scripts move everything atomically.
// Here: the keys and the enqueue (the webhooks sink's dispatcher, and the API and CLI queueing a
// test, a redelivery or a recovery); the sink's deliverer claims and completes
// (sinks/webhooks/delivery-rounds.ts).
import type { Keys } from '../keys.ts';
import { defineScripts, runScript } from '../redis.ts';
import type { RedisClient, RedisPipeline } from '../redis.ts';
import { loadScripts } from '../scripts.ts';

const { enqueue: ENQUEUE } = loadScripts(new URL('./scripts/', import.meta.url), ['enqueue']);

export function defineEnqueueScript(redis: RedisClient): void {
  defineScripts(redis, [ENQUEUE]);
}

export class QueueKeys {
  constructor(private readonly keys: Keys) {}
  due(p: number): string {
    return this.keys.partitioned(p, 'wh', 'due');
  }
  leases(p: number): string {
    return this.keys.partitioned(p, 'wh', 'leases');
  }
  queue(p: number, ep: string): string {
    return this.keys.partitioned(p, 'wh', 'q', ep);
  }
  deliveryPrefix(p: number, ep: string): string {
    return `${this.keys.partitioned(p, 'wh', 'd', ep)}:`;
  }
  delivery(p: number, ep: string, evt: string): string {
    return this.deliveryPrefix(p, ep) + evt;
  }
}

export interface Enqueue {
  endpointId: string;
  eventId: string;
  type: string;
  body: string;
}

/** Builds one enqueue call for one partition (and, with a group, one input stream). */
export class EnqueueCall {
  private readonly keys: string[];
  private readonly args: (string | number)[];
  constructor(
    private readonly qk: QueueKeys,
    private readonly partition: number,
    input: string | undefined,
    group: string,
    now: number,
  ) {
    this.keys = [input ?? qk.due(partition), qk.due(partition)];
    this.args = [input ? group : '', now];
  }

  private key(k: string): number {
    let i = this.keys.indexOf(k);
    if (i < 0) i = this.keys.push(k) - 1;
    return i + 1;
  }

  /** An entry to acknowledge (or '' without a group) and the deliveries it makes. */
  add(entryId: string, deliveries: readonly Enqueue[]): void {
    this.args.push(entryId, deliveries.length);
    for (const d of deliveries) {
      const q = this.key(this.qk.queue(this.partition, d.endpointId));
      const h = this.key(this.qk.delivery(this.partition, d.endpointId, d.eventId));
      this.args.push(q, h, d.endpointId, d.eventId, d.type, d.body);
    }
  }

  run(target: RedisClient | RedisPipeline): Promise<unknown> {
    return runScript(target, ENQUEUE, this.keys, this.args);
  }
}
