// Per-endpoint delivery queues in Redis, in the partition of the endpoint's merchant:
//   {p}:wh:due          zset endpoint id -> unix ms its next delivery may be attempted
//   {p}:wh:leases       hash endpoint id -> token of the worker attempting it now
//   {p}:wh:q:<ep>       list of event ids, in the merchant's order
//   {p}:wh:d:<ep>:<evt> hash body, type, attempts, next_at, created
// A slow or dead endpoint holds only its own queue; the scripts move everything atomically.
import type { Keys } from '../../core/keys.ts';
import { defineScripts, runScript } from '../../core/redis.ts';
import type { RedisClient, RedisPipeline } from '../../core/redis.ts';
import { loadScripts } from '../../core/scripts.ts';

const { enqueue: ENQUEUE, claim: CLAIM, complete: COMPLETE } = loadScripts(new URL('./scripts/', import.meta.url), ['enqueue', 'claim', 'complete']);

export function defineQueueScripts(redis: RedisClient): void {
  defineScripts(redis, [ENQUEUE, CLAIM, COMPLETE]);
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

export function claim(
  target: RedisClient | RedisPipeline,
  qk: QueueKeys,
  p: number,
  now: number,
  limit: number,
  leaseUntil: number,
  token: string,
): Promise<unknown> {
  return runScript(target, CLAIM, [qk.due(p), qk.leases(p)], [now, limit, leaseUntil, token]);
}

export interface Finished {
  eventId: string;
  outcome: 'done' | 'retry';
  attempts: number;
  nextAt: number;
}

/** How a round ended: lease released, kept (more is due now), or it had expired (stale). */
export type Completed = 'released' | 'kept' | 'stale';

export async function complete(
  redis: RedisClient,
  qk: QueueKeys,
  p: number,
  ep: string,
  token: string,
  now: number,
  window: number,
  holdUntil: number,
  renewUntil: number,
  finished: readonly Finished[],
): Promise<Completed> {
  const keys = [qk.due(p), qk.leases(p), qk.queue(p, ep), ...finished.map((f) => qk.delivery(p, ep, f.eventId))];
  const args: (string | number)[] = [ep, token, now, window, holdUntil, qk.deliveryPrefix(p, ep), renewUntil];
  for (const f of finished) args.push(f.eventId, f.outcome, f.attempts, f.nextAt);
  const r = Number(await runScript(redis, COMPLETE, keys, args));
  return r === 2 ? 'kept' : r === 1 ? 'released' : 'stale';
}
