// Queueing deliveries outside the topic: a test event, an event's redelivery, and recovery of
// everything since a time (the API and `rill webhooks redeliver`). Events come from Postgres
// (webhook_events, the exact bodies first sent); a delivery already waiting is not queued twice.
import type { Keys } from '../keys.ts';
import { partitionOf } from '../partition.ts';
import type { PgPool } from '../postgres.ts';
import type { RedisClient } from '../redis.ts';
import { recordEvents } from './event-log.ts';
import type { StoredEvent } from './event-log.ts';
import { wants } from './endpoints.ts';
import type { EndpointRow } from './endpoints.ts';
import { defineEnqueueScript, EnqueueCall, QueueKeys } from './queue.ts';

export class WebhookEnqueuer {
  private readonly qk: QueueKeys;
  constructor(
    private readonly redis: RedisClient,
    private readonly pool: PgPool,
    keys: Keys,
    private readonly partitions: number,
    private readonly now: () => number = Date.now,
  ) {
    this.qk = new QueueKeys(keys);
    defineEnqueueScript(redis);
  }

  /** Queue `events` to `endpoint` (they must be its merchant's); returns how many were queued. */
  async toEndpoint(endpoint: EndpointRow, events: readonly StoredEvent[], filter = true): Promise<number> {
    const p = partitionOf(endpoint.merchant_id, this.partitions);
    let queued = 0;
    // bounded calls: a recovery of a week of events goes in slices
    for (let i = 0; i < events.length; i += 500) {
      const call = new EnqueueCall(this.qk, p, undefined, '', this.now());
      const slice = events.slice(i, i + 500).filter((e) => !filter || wants(endpoint, e.type));
      call.add(
        '',
        slice.map((e) => ({ endpointId: endpoint.id, eventId: e.id, type: e.type, body: e.body })),
      );
      queued += Number(await call.run(this.redis));
    }
    return queued;
  }

  async event(merchantId: string, eventId: string): Promise<StoredEvent | undefined> {
    const { rows } = await this.pool.query<{ id: string; type: string; merchant_id: string; created_at: Date; payload: string }>(
      'SELECT id, type, merchant_id, created_at, payload FROM webhook_events WHERE id = $1 AND merchant_id = $2',
      [eventId, merchantId],
    );
    const r = rows[0];
    return r ? { id: r.id, type: r.type, merchant_id: r.merchant_id, created_at: r.created_at.toISOString(), body: r.payload } : undefined;
  }

  async since(merchantId: string, since: Date, limit: number): Promise<StoredEvent[]> {
    const { rows } = await this.pool.query<{ id: string; type: string; merchant_id: string; created_at: Date; payload: string }>(
      'SELECT id, type, merchant_id, created_at, payload FROM webhook_events WHERE merchant_id = $1 AND created_at >= $2 ORDER BY created_at, id LIMIT $3',
      [merchantId, since, limit],
    );
    return rows.map((r) => ({ id: r.id, type: r.type, merchant_id: r.merchant_id, created_at: r.created_at.toISOString(), body: r.payload }));
  }

  /** A webhook.test event for one endpoint (recorded, so it can be redelivered too). */
  async test(endpoint: EndpointRow, eventId: string): Promise<StoredEvent> {
    const created = new Date().toISOString();
    const e: StoredEvent = {
      id: eventId,
      type: 'webhook.test',
      merchant_id: endpoint.merchant_id,
      created_at: created,
      body: JSON.stringify({ id: eventId, type: 'webhook.test', created_at: created, data: { endpoint_id: endpoint.id, message: 'A test event from Rill.' } }),
    };
    await recordEvents(this.pool, [e]);
    await this.toEndpoint(endpoint, [e], false);
    return e;
  }
}
