// Delivers queued webhook deliveries (queue.ts): leases due endpoints, attempts each endpoint's
// next deliveries (one at a time in the merchant's order; max_in_flight > 1 opts into parallel
// attempts of its first N), signs them (Standard Webhooks), and records the outcome atomically.
// Up to `deliveries` attempts are in flight per deliverer, over all endpoints: a hanging endpoint
// occupies one slot for at most its timeout, and only its own queue waits behind it.
// Retry times come from the schedule (Svix's by default) with jitter, on an injectable clock.
import { setTimeout as sleep } from 'node:timers/promises';
import { entryArgs } from '../../core/entry.ts';
import { LaneMap } from '../../core/lanes.ts';
import type { Registry } from '../../core/metrics.ts';
import { counter, gauge, histogram, LATENCY_BUCKETS } from '../../core/metrics.ts';
import { slotPipeline } from '../../core/slot-pipeline.ts';
import { AttemptLog } from './attempt-log.ts';
import { EndpointStore } from '../../core/webhooks/endpoints.ts';
import type { EndpointRow } from '../../core/webhooks/endpoints.ts';
import { EndpointClients } from './http.ts';
import type { AttemptResult } from './http.ts';
import { QueueKeys } from '../../core/webhooks/queue.ts';
import { claim, complete } from './delivery-rounds.ts';
import type { Finished } from './delivery-rounds.ts';
import { signatureHeader, signingSecrets } from './signing.ts';
import { TtlCache } from './ttl-cache.ts';
import type { GuardPolicy } from '../../core/webhooks/url-guard.ts';
import type { WebhooksLoopOptions } from './dispatcher.ts';

export interface DelivererOptions extends WebhooksLoopOptions {
  registry: Registry;
  secretKey: Buffer;
  policy: GuardPolicy;
  /** The delivery clock (unix ms): retry times and leases. Tests pass a clock they move. */
  now?: () => number;
  random?: () => number;
  /** Idle wait between two looks at the due sets (real time). Default 20 ms. */
  pollMs?: number;
}

/** How long a disabled endpoint's queue waits before it is looked at again. */
const DISABLED_HOLD_MS = 30_000;
const LEASE_MARGIN_MS = 5_000;
const CLAIM_ERROR_WAIT_MS = 1_000;

/** How a round on an endpoint ended: the lease token it completed with, and whether it kept the lease. */
interface Round {
  token: string;
  kept: boolean;
}

export class Deliverer {
  private readonly qk: QueueKeys;
  private readonly store: EndpointStore;
  private readonly cache = new TtlCache<string, EndpointRow | null>(1_000);
  private readonly clients: EndpointClients;
  private readonly log: AttemptLog;
  private readonly partitions: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly lanes: LaneMap;
  private running = false;
  private loop: Promise<void> | undefined;
  private inFlight = 0;
  /** The lease token each endpoint's current run completes with (a re-lease replaces it). */
  private readonly tokens = new Map<string, string>();
  private seq = 0;
  private wake: (() => void) | undefined;
  private readonly outcomes;
  private readonly latency;

  constructor(private readonly o: DelivererOptions) {
    this.qk = new QueueKeys(o.keys);
    this.store = new EndpointStore(o.pool, o.secretKey);
    this.clients = new EndpointClients({
      connectTimeoutMs: o.config.connect_timeout,
      requestTimeoutMs: o.config.request_timeout,
      maxConnections: o.config.max_connections,
      policy: o.policy,
    });
    this.log = new AttemptLog(o.pool, o.logger);
    const topic = o.topology.topics[o.config.input];
    this.partitions = topic?.partitions ?? 1;
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.lanes = new LaneMap(o.topology.priorities);
    this.outcomes = counter(o.registry, 'rill_webhook_deliveries_total', 'Merchant webhook delivery attempts, by outcome (delivered, retrying, failed)', [
      'outcome',
    ]);
    // every outcome exported from the start (0), so rate() and alerts see a series at once
    for (const outcome of ['delivered', 'retrying', 'failed']) this.outcomes.inc({ outcome }, 0);
    this.latency = histogram(
      o.registry,
      'rill_webhook_attempt_duration_seconds',
      'One merchant webhook attempt, answer included',
      [],
      [...LATENCY_BUCKETS, 30],
    );
    const store = this.store;
    const disabled = gauge(o.registry, 'rill_webhook_endpoints_disabled', 'Merchant webhook endpoints disabled after failing too long', []);
    // read at scrape time; a failing query leaves the last value
    (disabled as unknown as { collect?: () => Promise<void> }).collect = async function collect(this: typeof disabled) {
      try {
        this.set(await store.countDisabled());
      } catch {
        // Postgres unreachable: keep the last value
      }
    };
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.log.flush();
    await this.clients.close();
  }

  private async run(): Promise<void> {
    const capacity = this.o.config.deliveries;
    const pollMs = this.o.pollMs ?? 20;
    while (this.running) {
      let claimed = 0;
      const free = capacity - this.inFlight;
      if (free > 0) {
        try {
          claimed = await this.claimSome(free);
        } catch (err) {
          // Redis unreachable: one line a second, not one per poll
          this.o.logger.warn({ err: (err as Error).message }, 'webhook claim failed; retrying in 1 s');
          await sleep(CLAIM_ERROR_WAIT_MS);
        }
      }
      if (!this.running) break;
      if (claimed === 0 || this.inFlight >= capacity) {
        const woken = new Promise<void>((resolve) => (this.wake = resolve));
        await (this.inFlight >= capacity ? woken : Promise.race([woken, sleep(pollMs)]));
        this.wake = undefined;
      }
    }
    while (this.inFlight > 0) await new Promise<void>((resolve) => (this.wake = resolve));
  }

  private async claimSome(free: number): Promise<number> {
    const now = this.now();
    const leaseUntil = this.leaseUntil(now);
    const token = `${this.o.consumer}:${++this.seq}`;
    const per = Math.max(1, Math.ceil(free / this.partitions));
    const pipe = slotPipeline(this.o.redis);
    for (let p = 0; p < this.partitions; p++) pipe.add(this.qk.due(p), (x) => void claim(x, this.qk, p, now, per, leaseUntil, token));
    const res = await pipe.exec();
    let n = 0;
    res.forEach(([err, ids], p) => {
      if (err) throw err;
      for (const ep of ids as string[]) {
        n++;
        const already = this.tokens.has(ep);
        this.tokens.set(ep, token);
        if (already) continue; // our own run is still going (the clock jumped past its lease): it completes with this token
        this.inFlight++;
        void this.serve(p, ep)
          .catch((err: Error) => this.o.logger.warn({ endpoint: ep, err: err.message }, 'webhook delivery round failed; retried after its lease'))
          .finally(() => {
            this.tokens.delete(ep);
            this.inFlight--;
            this.wake?.();
          });
      }
    });
    return n;
  }

  /** Rounds on one endpoint while its lease is kept, and until no lease taken meanwhile is left unfinished. */
  private async serve(p: number, ep: string): Promise<void> {
    for (;;) {
      const { token, kept } = await this.deliver(p, ep);
      if (kept && !this.running) {
        // stopping with the lease kept: hand the endpoint back now rather than at the lease's end
        await this.finish(p, ep, 1, 0, []);
        return;
      }
      if (!kept && this.tokens.get(ep) === token) return;
    }
  }

  private leaseUntil(now: number): number {
    return now + this.o.config.connect_timeout + this.o.config.request_timeout + LEASE_MARGIN_MS;
  }

  private async endpoint(id: string): Promise<EndpointRow | undefined> {
    const hit = this.cache.get(id);
    if (hit !== undefined) return hit ?? undefined;
    const row = await this.store.get(undefined, id);
    this.cache.set(id, row ?? null);
    return row;
  }

  /**
   * Completes the round with the endpoint's current lease token (keeping the lease when more is
   * due and `renew`); returns that token and whether the lease is still ours.
   */
  private async finish(p: number, ep: string, window: number, holdUntil: number, finished: readonly Finished[], renew = false): Promise<Round> {
    const token = this.tokens.get(ep) ?? '';
    const now = this.now();
    const r = await complete(this.o.redis, this.qk, p, ep, token, now, window, holdUntil, renew && this.running ? this.leaseUntil(now) : 0, finished);
    return { token, kept: r === 'kept' };
  }

  /** The wait before attempt `attempts + 1`, jittered by ±jitter. */
  private retryDelay(attempts: number): number {
    const base = this.o.config.schedule[attempts] ?? 0;
    const j = this.o.config.jitter;
    return Math.max(0, Math.round(base * (1 - j + 2 * j * this.random())));
  }

  /** One round on a leased endpoint. */
  private async deliver(p: number, ep: string): Promise<Round> {
    const row = await this.endpoint(ep);
    const q = this.qk.queue(p, ep);
    if (!row) {
      // deleted: its queue goes, 100 at a time
      const ids = await this.o.redis.lrange(q, 0, 99);
      return this.finish(
        p,
        ep,
        1,
        0,
        ids.map((eventId) => ({ eventId, outcome: 'done', attempts: 0, nextAt: 0 })),
      );
    }
    if (!row.enabled) {
      return this.finish(p, ep, row.max_in_flight, this.now() + DISABLED_HOLD_MS, []);
    }
    const window = row.max_in_flight;
    const ids = await this.o.redis.lrange(q, 0, window - 1);
    const pipe = this.o.redis.pipeline();
    for (const id of ids) pipe.hmget(this.qk.delivery(p, ep, id), 'body', 'type', 'attempts', 'next_at');
    const fields = ((await pipe.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      return v as (string | null)[];
    });
    const now = this.now();
    const finished: Finished[] = [];
    const due: { eventId: string; body: string; type: string; attempts: number }[] = [];
    ids.forEach((eventId, i) => {
      const [body, type, attempts, nextAt] = fields[i]!;
      if (body === null || body === undefined) finished.push({ eventId, outcome: 'done', attempts: 0, nextAt: 0 });
      else if (!nextAt || Number(nextAt) <= now) due.push({ eventId, body, type: type ?? '', attempts: Number(attempts ?? 0) });
    });
    const results = await Promise.all(due.map((d) => this.attempt(row, d.eventId, d.body)));
    const after = this.now();
    let anyOk = false;
    due.forEach((d, i) => {
      const r = results[i]!;
      const attempt = d.attempts + 1;
      const last = attempt >= this.o.config.schedule.length;
      const outcome = r.ok ? 'delivered' : last ? 'failed' : 'retrying';
      const nextAt = outcome === 'retrying' ? after + this.retryDelay(attempt) : 0;
      finished.push({ eventId: d.eventId, outcome: outcome === 'retrying' ? 'retry' : 'done', attempts: attempt, nextAt });
      anyOk ||= r.ok;
      this.outcomes.inc({ outcome });
      this.latency.observe(r.latencyMs / 1000);
      this.log.add({
        endpoint_id: ep,
        event_id: d.eventId,
        merchant_id: row.merchant_id,
        event_type: d.type,
        attempt,
        outcome,
        status_code: r.status ?? null,
        latency_ms: r.latencyMs,
        error: r.error ?? null,
        next_retry_at: nextAt || null,
        attempted_at: after,
      });
      if (!r.ok) this.o.logger.info({ endpoint: ep, event: d.eventId, attempt, error: r.error }, `webhook attempt ${outcome}`);
    });
    const round = await this.finish(p, ep, window, 0, finished, due.length > 0);
    if (!due.length) return round;
    if (anyOk) {
      if (row.failing_since) {
        await this.store.markHealthy(ep);
        this.cache.delete(ep);
      }
    } else {
      await this.failing(p, row, after);
    }
    return round;
  }

  private async attempt(row: EndpointRow, eventId: string, body: string): Promise<AttemptResult> {
    const ts = Math.floor(Date.now() / 1000);
    const secrets = signingSecrets(row, this.o.secretKey, Date.now());
    return this.clients.post(
      row.id,
      row.url,
      {
        'webhook-id': eventId,
        'webhook-timestamp': String(ts),
        'webhook-signature': signatureHeader(secrets, eventId, ts, body),
      },
      body,
    );
  }

  /** Start (or continue) the endpoint's failure clock; past disable_after, disable it and raise an alert. */
  private async failing(p: number, row: EndpointRow, now: number): Promise<void> {
    const since = await this.store.markFailing(row.id, now);
    if (!since) return;
    if (!row.failing_since) this.cache.delete(row.id);
    if (now - since.getTime() < this.o.config.disable_after) return;
    const reason = `failing since ${since.toISOString()} (longer than disable_after)`;
    if (!(await this.store.disable(row.id, reason))) return;
    this.cache.delete(row.id);
    this.o.logger.warn({ endpoint: row.id, merchant: row.merchant_id }, 'webhook endpoint disabled after failing too long');
    const topic = this.o.config.alerts_topic;
    if (!topic) return;
    const type = 'webhook_endpoint.disabled';
    const alert = {
      id: `alert_whdis_${row.id}_${since.getTime()}`,
      type,
      merchant_id: row.merchant_id,
      endpoint_id: row.id,
      url_host: new URL(row.url).host,
      failing_since: since.toISOString(),
      at: now,
    };
    await this.o.redis.xadd(this.o.keys.lane(topic, p, this.lanes.laneOf(type)), '*', ...entryArgs({ txId: alert.id, event: JSON.stringify(alert) }));
  }
}
