// The alerts sink: a consumer group on the alerts topic that delivers every alert event to the
// configured webhooks (Slack incoming webhooks, Telegram sendMessage), and, on its check interval,
// raises alerts of its own (dead-letter growth, missing worker heartbeats) onto that topic.
//
// Per alert: for each webhook, a dedupe claim in Redis (the same alert reaches a webhook at most
// once per dedupe_window, across workers), then the POST with a per-request timeout, retried with
// backoff on network errors, timeouts, 5xx and 429 (Retry-After honored). All of one alert's
// work is bounded by delivery_timeout, and a batch's alerts are delivered side by side, so a dead
// webhook holds the loop (and every partition behind it) for at most that long. Then one settle
// per batch: delivered or suppressed alerts are acknowledged; an alert a webhook refused for good
// (4xx other than 429) or that ran out of attempts or time is acknowledged and written to the
// sink's dead-letter stream in the same atomic script. Webhooks that did take it keep their
// dedupe mark, so a redrive of the dead letter reaches only the ones that failed.
//
// The group is created at the end of the topic: a new sink does not replay the topic's history
// (30 days of old alerts) into chat; `rill replay --group <sink>` can, deliberately.
import type { Redis } from 'ioredis';
import { ConfigError } from '../../core/errors.ts';
import type { Keys } from '../../core/keys.ts';
import type { Logger } from '../../core/logger.ts';
import type { Registry } from '../../core/metrics.ts';
import { counter, histogram, LATENCY_BUCKETS } from '../../core/metrics.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { F_EVENT, F_TRACE, fieldsToMap } from '../../core/entry.ts';
import { GroupConsumer } from '../../core/consumer/index.ts';
import type { Loop, RawEntry, SinkSettle } from '../../core/consumer/index.ts';
import { leaderPass } from '../../core/leases/leader-pass.ts';
import { endSpan, startEventSpan } from '../../core/tracing.ts';
import { dedupeIdentity, formatSlack, formatTelegram, parseAlert } from './alert.ts';
import type { Alert } from './alert.ts';
import { runAlertChecks } from './checks.ts';
import { resolveWebhooks } from './config.ts';
import type { AlertsSinkConfig, ResolvedWebhook } from './config.ts';
import { AlertDedupe } from './dedupe.ts';
import { WebhookError } from '../../core/errors.ts';
import { postJson } from './deliver.ts';
import type { DeliveryResult } from './deliver.ts';

export interface AlertsSinkOptions {
  name: string;
  config: AlertsSinkConfig;
  topology: Topology;
  keys: Keys;
  /** Dedicated connection for this loop (blocking reads). */
  redis: Redis;
  consumer: string;
  registry: Registry;
  logger: Logger;
  /** Where `${VAR}` in webhook URLs and chat ids is looked up (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Longest blocking read (default 1 s). */
  blockMs?: number;
  /** Jitter source for backoff (tests). */
  random?: () => number;
}

/** How one webhook's delivery of one alert ended. */
export type WebhookOutcome =
  | { webhook: string; outcome: 'delivered'; attempts: number }
  | { webhook: string; outcome: 'deduplicated'; held: 'sent' | 'busy' }
  | { webhook: string; outcome: 'failed'; attempts: number; error: WebhookError }
  | { webhook: string; outcome: 'aborted' };

type AlertResult = { kind: 'done' } | { kind: 'dead'; error: Error; attempts: number } | { kind: 'aborted' };

/** A claim outlives the delivery it guards by this much, and no more. */
const CLAIM_MARGIN_MS = 1_000;

export class AlertsSink {
  private readonly group: GroupConsumer;
  private readonly webhooks: ResolvedWebhook[];
  private readonly dedupe: AlertDedupe;
  private readonly stopping = new AbortController();
  private readonly checksOn: boolean;
  private readonly isLeader: () => Promise<boolean>;
  private nextCheckAt = 0;
  private readonly notifications;
  private readonly requests;
  private readonly deliverySeconds;
  private readonly deadLettered;
  private readonly checks;
  private readonly raised;

  constructor(private readonly o: AlertsSinkOptions) {
    const c = o.config;
    const topic = o.topology.topics[c.input];
    if (!topic) throw new ConfigError(`sinks.${o.name}.input: no topic named "${c.input}"`);
    // ${VAR} references are resolved now: a missing variable stops the worker at start
    this.webhooks = resolveWebhooks(o.name, c.webhooks, o.env ?? process.env);
    this.group = new GroupConsumer({
      loop: `sink:${o.name}`,
      redis: o.redis,
      keys: o.keys,
      topic: c.input,
      partitions: topic.partitions,
      lanes: o.topology.priorities,
      group: o.name,
      consumer: o.consumer,
      visibilityTimeoutMs: c.visibility_timeout,
      logger: o.logger,
      startId: '$', // no replay of old alerts into chat (above)
    });
    this.dedupe = new AlertDedupe(o.redis, o.keys, o.name, c.dedupe_window, c.delivery_timeout + CLAIM_MARGIN_MS);
    this.checksOn = Boolean(c.dead_letters || c.heartbeat);
    // one worker checks per interval (a lock a little shorter than the interval, so the same
    // worker can take the next pass on time)
    this.isLeader = leaderPass(o.redis, o.keys.global('leader', 'alert-checks', o.name), Math.max(50, Math.floor(c.check_interval * 0.9)));
    const r = o.registry;
    this.notifications = counter(r, 'rill_alert_notifications_total', 'Alerts handled per webhook, by outcome (delivered, deduplicated, failed)', [
      'sink',
      'webhook',
      'outcome',
    ]);
    this.requests = counter(r, 'rill_alert_webhook_requests_total', 'Webhook requests, by result (ok, retryable, permanent)', ['sink', 'webhook', 'result']);
    this.deliverySeconds = histogram(
      r,
      'rill_alert_delivery_duration_seconds',
      'Time to deliver one alert to one webhook, retries included',
      ['sink', 'webhook'],
      [...LATENCY_BUCKETS, 30, 60],
    );
    this.deadLettered = counter(r, 'rill_alerts_dead_lettered_total', "Alerts put into the sink's dead-letter stream", ['sink']);
    this.checks = counter(r, 'rill_alert_checks_total', 'Dead-letter and heartbeat check passes run by this process', ['sink']);
    this.raised = counter(r, 'rill_alerts_raised_total', "Alerts raised by the alerts sink's own checks, by type", ['sink', 'type']);
  }

  /** Webhook names (never their URLs). */
  get webhookNames(): string[] {
    return this.webhooks.map((w) => w.name);
  }

  async start(): Promise<void> {
    await this.group.start((loop) => this.step(loop));
  }

  /**
   * Stop reading and cut in-flight deliveries short: alerts not fully delivered stay pending
   * (their dedupe claims released) and are delivered after a restart or by another worker.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.group.stop();
  }

  private async step(loop: Loop): Promise<void> {
    const blockMs = this.o.blockMs ?? 1_000;
    if (this.checksOn && Date.now() >= this.nextCheckAt) await this.check();
    if (loop.stopping) return;
    const wait = this.checksOn ? Math.min(blockMs, Math.max(1, this.nextCheckAt - Date.now())) : blockMs;
    const entries = await this.group.reader.read(this.o.config.batch, wait);
    if (entries.length && !loop.stopping) await this.handle(entries);
  }

  /** Dead-letter growth and missing heartbeats; a failed pass is logged and tried next interval. */
  private async check(): Promise<void> {
    const c = this.o.config;
    this.nextCheckAt = Date.now() + c.check_interval;
    try {
      if (!(await this.isLeader())) return;
      const raised = await runAlertChecks({
        redis: this.o.redis,
        keys: this.o.keys,
        topology: this.o.topology,
        sink: this.o.name,
        topic: c.input,
        deadLetters: c.dead_letters,
        heartbeat: c.heartbeat,
      });
      this.checks.inc({ sink: this.o.name });
      for (const a of raised) {
        this.raised.inc({ sink: this.o.name, type: a.type });
        this.o.logger.warn({ alert: a }, `raised ${a.type} alert`);
      }
    } catch (err) {
      this.o.logger.warn({ err }, 'alert checks failed; next try in one interval');
    }
  }

  /** Deliver a batch side by side, then settle it in one round trip. */
  async handle(entries: readonly RawEntry[]): Promise<void> {
    const results = await Promise.allSettled(entries.map((raw) => this.handleOne(raw)));
    const settled: SinkSettle[] = [];
    const now = Date.now();
    let failure: unknown;
    let dead = 0;
    results.forEach((r, i) => {
      const raw = entries[i]!;
      if (r.status === 'rejected') {
        // Redis trouble: the entry stays pending and comes back (its marks make that safe)
        failure ??= r.reason;
        return;
      }
      if (r.value.kind === 'aborted') return;
      if (r.value.kind === 'dead') {
        dead++;
        settled.push({ raw, error: r.value.error, attempts: r.value.attempts });
      } else {
        settled.push({ raw });
      }
    });
    await this.group.settle(this.o.redis, settled, now);
    if (dead) this.deadLettered.inc({ sink: this.o.name }, dead);
    if (failure) throw failure;
  }

  private async handleOne(raw: RawEntry): Promise<AlertResult> {
    if (!raw.fields) return { kind: 'dead', error: new Error('entry was trimmed from the alerts topic before the sink read it'), attempts: 1 };
    const fields = fieldsToMap(raw.fields);
    const body = fields.get(F_EVENT);
    if (!body) return { kind: 'dead', error: new Error(`alert entry lacks the ${F_EVENT} field`), attempts: 1 };
    const alert = parseAlert(body);
    if (alert instanceof Error) return { kind: 'dead', error: alert, attempts: 1 };
    const span = startEventSpan(`sink ${this.o.name}`, fields.get(F_TRACE), {
      'rill.sink': this.o.name,
      'rill.alert.id': alert.id,
      'rill.alert.type': alert.type,
    });
    const deadline = Date.now() + this.o.config.delivery_timeout;
    let outcomes: WebhookOutcome[];
    try {
      outcomes = await Promise.all(this.webhooks.map((w) => this.deliverTo(w, alert, raw, deadline)));
    } catch (err) {
      endSpan(span, err as Error);
      throw err;
    }
    const failed = outcomes.filter((x): x is Extract<WebhookOutcome, { outcome: 'failed' }> => x.outcome === 'failed');
    if (outcomes.some((x) => x.outcome === 'aborted')) {
      endSpan(span);
      return { kind: 'aborted' };
    }
    if (!failed.length) {
      endSpan(span);
      return { kind: 'done' };
    }
    const delivered = outcomes.filter((x) => x.outcome !== 'failed').map((x) => x.webhook);
    const error = new WebhookError(
      failed.map((f) => f.error.message).join('; ') + (delivered.length ? `; delivered to or deduplicated at: ${delivered.join(', ')}` : ''),
      failed.every((f) => f.error.permanent),
      failed[0]!.error.status,
    );
    endSpan(span, error);
    this.o.logger.warn({ alert: alert.id, type: alert.type, err: error.message }, 'alert not delivered; dead-lettered');
    return { kind: 'dead', error, attempts: Math.max(...failed.map((f) => f.attempts)) };
  }

  private async deliverTo(w: ResolvedWebhook, alert: Alert, raw: RawEntry, deadline: number): Promise<WebhookOutcome> {
    const sink = this.o.name;
    const identity = dedupeIdentity(alert);
    const token = `${raw.stream}/${raw.id}`;
    const held = await this.dedupe.claim(w.name, identity, token);
    if (held !== 'claimed') {
      this.notifications.inc({ sink, webhook: w.name, outcome: 'deduplicated' });
      return { webhook: w.name, outcome: 'deduplicated', held };
    }
    let result: DeliveryResult;
    const end = this.deliverySeconds.startTimer({ sink, webhook: w.name });
    try {
      const body = w.kind === 'slack' ? formatSlack(alert) : formatTelegram(alert, w.chatId!);
      result = await postJson(w.target, body, {
        retry: this.o.config.retry,
        requestTimeoutMs: this.o.config.request_timeout,
        deadline,
        signal: this.stopping.signal,
        label: `webhook ${w.name}`,
        ...(this.o.random ? { random: this.o.random } : {}),
        onAttempt: (a) => {
          this.requests.inc({ sink, webhook: w.name, result: a.result });
          if (a.result !== 'ok')
            this.o.logger.info({ webhook: w.name, alert: alert.id, attempt: a.attempt, reason: a.reason, waitMs: a.waitMs }, 'webhook attempt failed');
        },
      });
    } catch (err) {
      await this.dedupe.release(w.name, identity, token);
      throw err;
    }
    if (result.outcome === 'delivered') {
      end();
      await this.dedupe.confirm(w.name, identity, token);
      this.notifications.inc({ sink, webhook: w.name, outcome: 'delivered' });
      return { webhook: w.name, outcome: 'delivered', attempts: result.attempts };
    }
    await this.dedupe.release(w.name, identity, token);
    if (result.outcome === 'aborted') return { webhook: w.name, outcome: 'aborted' };
    this.notifications.inc({ sink, webhook: w.name, outcome: 'failed' });
    return { webhook: w.name, outcome: 'failed', attempts: result.attempts, error: result.error };
  }
}
