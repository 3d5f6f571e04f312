// A delivery round on an endpoint's queue (the keys and the enqueue: core/webhooks/queue.ts):
// claim (lease) the endpoints whose next delivery is due, then complete what was attempted (done or
// retried later) and release or keep the lease, each in one script.
import { defineScripts, runScript } from '../../core/redis.ts';
import type { RedisClient, RedisPipeline } from '../../core/redis.ts';
import { loadScripts } from '../../core/scripts.ts';
import { defineEnqueueScript } from '../../core/webhooks/queue.ts';
import type { QueueKeys } from '../../core/webhooks/queue.ts';

const { claim: CLAIM, complete: COMPLETE } = loadScripts(new URL('./scripts/', import.meta.url), ['claim', 'complete']);

/** The queue's scripts on a connection of the sink: enqueue (the dispatcher), claim and complete. */
export function defineQueueScripts(redis: RedisClient): void {
  defineEnqueueScript(redis);
  defineScripts(redis, [CLAIM, COMPLETE]);
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
