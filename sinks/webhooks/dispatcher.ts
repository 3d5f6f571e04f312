// Fans webhook events (the webhook_events topic) out to the queues of the merchant's subscribed,
// enabled endpoints. Per batch: the events of merchants with endpoints are recorded in Postgres
// (webhook_events, for redeliver and recover-since), then one script per input stream queues the deliveries and
// acknowledges the entries together. Endpoints are read through a 1-second cache: an endpoint
// created or changed takes effect for events dispatched up to a second later.
import type { Redis } from 'ioredis';
import { F_EVENT, fieldsToMap } from '../../core/entry.ts';
import type { Keys } from '../../core/keys.ts';
import type { Logger } from '../../core/logger.ts';
import { GroupConsumer } from '../../core/consumer/index.ts';
import type { LaneReader, RawEntry } from '../../core/consumer/index.ts';
import type { PgPool } from '../../core/postgres.ts';
import { slotPipeline } from '../../core/slot-pipeline.ts';
import type { MerchantWebhooksSinkConfig, Topology } from '../../core/topology/schema.ts';
import { type EndpointStore, wants } from '../../core/webhooks/endpoints.ts';
import type { EndpointRow } from '../../core/webhooks/endpoints.ts';
import { recordEvents } from '../../core/webhooks/event-log.ts';
import type { StoredEvent } from '../../core/webhooks/event-log.ts';
import { EnqueueCall, QueueKeys } from '../../core/webhooks/queue.ts';
import type { Enqueue } from '../../core/webhooks/queue.ts';
import { TtlCache } from './ttl-cache.ts';

/** The event of an entry, or undefined for one no merchant receives (or unreadable: logged). */
export function readEvent(raw: RawEntry): StoredEvent | undefined {
  const body = raw.fields ? fieldsToMap(raw.fields).get(F_EVENT) : undefined;
  if (!body) return undefined;
  try {
    const e = JSON.parse(body) as { id?: unknown; type?: unknown; merchant_id?: unknown; created_at?: unknown };
    if (typeof e.id !== 'string' || typeof e.type !== 'string' || typeof e.merchant_id !== 'string' || !e.merchant_id || typeof e.created_at !== 'string')
      return undefined;
    const { merchant_id: _m, ...sent } = e;
    return { id: e.id, type: e.type, merchant_id: e.merchant_id, created_at: e.created_at, body: JSON.stringify(sent) };
  } catch {
    return undefined;
  }
}

/** What the dispatcher and the deliverer of one webhooks sink loop both get. */
export interface WebhooksLoopOptions {
  name: string;
  config: MerchantWebhooksSinkConfig;
  topology: Topology;
  keys: Keys;
  /** A connection of the loop's own. */
  redis: Redis;
  pool: PgPool;
  consumer: string;
  logger: Logger;
}

export interface DispatcherOptions extends WebhooksLoopOptions {
  store: EndpointStore;
  now: () => number;
}

export class Dispatcher {
  /** The sink's consumer group on its input topic (the sink runs the loop that reads it). */
  readonly group: GroupConsumer;
  private readonly qk: QueueKeys;
  private readonly endpoints = new TtlCache<string, EndpointRow[]>(1_000);

  constructor(private readonly o: DispatcherOptions) {
    const topic = o.topology.topics[o.config.input];
    this.qk = new QueueKeys(o.keys);
    this.group = new GroupConsumer({
      loop: `sink:${o.name}`,
      redis: o.redis,
      keys: o.keys,
      topic: o.config.input,
      partitions: topic?.partitions ?? 1,
      lanes: o.topology.priorities,
      group: o.name,
      consumer: o.consumer,
      visibilityTimeoutMs: o.config.visibility_timeout,
      logger: o.logger,
      isolateRedeliveries: false,
    });
  }

  get reader(): LaneReader {
    return this.group.reader;
  }

  private async endpointsOf(merchants: readonly string[]): Promise<Map<string, EndpointRow[]>> {
    const out = new Map<string, EndpointRow[]>();
    const missing = merchants.filter((m) => {
      const hit = this.endpoints.get(m);
      if (hit) out.set(m, hit);
      return !hit;
    });
    if (missing.length) {
      const rows = await this.o.store.forMerchants(missing);
      for (const m of missing) {
        const mine = rows.filter((r) => r.merchant_id === m);
        this.endpoints.set(m, mine);
        out.set(m, mine);
      }
    }
    return out;
  }

  /** Fan out one batch and acknowledge it. */
  async handle(entries: readonly RawEntry[]): Promise<number> {
    const events = entries.map(readEvent);
    const merchants = [...new Set(events.flatMap((e) => (e ? [e.merchant_id] : [])))];
    const byMerchant = merchants.length ? await this.endpointsOf(merchants) : new Map<string, EndpointRow[]>();
    // kept for redeliver and recover: only events of merchants with an endpoint (most have none)
    await recordEvents(
      this.o.pool,
      events.filter((e): e is StoredEvent => e !== undefined && (byMerchant.get(e.merchant_id)?.length ?? 0) > 0),
    );
    const now = this.o.now();
    const calls = new Map<string, EnqueueCall>();
    entries.forEach((raw, i) => {
      let call = calls.get(raw.stream);
      if (!call) calls.set(raw.stream, (call = new EnqueueCall(this.qk, raw.partition, raw.stream, this.o.name, now)));
      const e = events[i];
      const deliveries: Enqueue[] = e
        ? (byMerchant.get(e.merchant_id) ?? [])
            .filter((r) => r.enabled && wants(r, e.type))
            .map((r) => ({ endpointId: r.id, eventId: e.id, type: e.type, body: e.body }))
        : [];
      call.add(raw.id, deliveries);
    });
    const pipe = slotPipeline(this.o.redis);
    for (const [stream, c] of calls) pipe.add(stream, (x) => void c.run(x));
    let queued = 0;
    for (const [err, n] of await pipe.exec()) {
      if (err) throw err;
      queued += Number(n);
    }
    return queued;
  }
}
