// The merchant webhooks sink (`type: webhooks`): a dispatcher loop fanning the webhook_events
// topic out to per-endpoint queues, a deliverer attempting what is due, and a loop turning new
// dead letters into transaction.dead_lettered events on that topic. Everything between
// is in Redis, so a restarted worker (or any other) carries on where a stopped one left off.
import type { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Keys } from '../../core/keys.ts';
import type { Logger } from '../../core/logger.ts';
import type { Registry } from '../../core/metrics.ts';
import { runLoop } from '../../core/consumer/index.ts';
import type { Loop } from '../../core/consumer/index.ts';
import type { PgPool } from '../../core/postgres.ts';
import type { MerchantWebhooksSinkConfig, Topology } from '../../core/topology/schema.ts';
import { DeadLetterEvents } from './dead-letter-events.ts';
import { Deliverer } from './deliverer.ts';
import { Dispatcher } from './dispatcher.ts';
import { EndpointStore } from '../../core/webhooks/endpoints.ts';
import { defineQueueScripts } from './delivery-rounds.ts';
import { secretKey } from '../../core/webhooks/secrets.ts';
import { policyFromEnv } from '../../core/webhooks/url-guard.ts';
import type { GuardPolicy } from '../../core/webhooks/url-guard.ts';

export interface WebhooksSinkOptions {
  name: string;
  config: MerchantWebhooksSinkConfig;
  topology: Topology;
  keys: Keys;
  /** The dispatcher's connection (blocking reads). */
  redis: Redis;
  /** The deliverer's connection. */
  deliveryRedis: Redis;
  pool: PgPool;
  consumer: string;
  registry: Registry;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  policy?: GuardPolicy;
  now?: () => number;
  random?: () => number;
  blockMs?: number;
  pollMs?: number;
}

/** How often the dead-letter streams are looked at for transaction.dead_lettered events. */
const DEAD_LETTER_POLL_MS = 500;

export class WebhooksSink {
  private dlqLoop: Loop | undefined;
  private readonly deadLetters: DeadLetterEvents;
  readonly dispatcher: Dispatcher;
  readonly deliverer: Deliverer;

  constructor(private readonly o: WebhooksSinkOptions) {
    const env = o.env ?? process.env;
    const key = secretKey(env);
    const now = o.now ?? Date.now;
    defineQueueScripts(o.redis);
    defineQueueScripts(o.deliveryRedis);
    this.dispatcher = new Dispatcher({
      name: o.name,
      config: o.config,
      topology: o.topology,
      keys: o.keys,
      redis: o.redis,
      pool: o.pool,
      store: new EndpointStore(o.pool, key),
      consumer: o.consumer,
      logger: o.logger,
      now,
    });
    this.deliverer = new Deliverer({
      name: o.name,
      config: o.config,
      topology: o.topology,
      keys: o.keys,
      redis: o.deliveryRedis,
      pool: o.pool,
      consumer: o.consumer,
      registry: o.registry,
      logger: o.logger,
      secretKey: key,
      policy: o.policy ?? policyFromEnv(env),
      now,
      ...(o.random ? { random: o.random } : {}),
      ...(o.pollMs ? { pollMs: o.pollMs } : {}),
    });
    this.deadLetters = new DeadLetterEvents({
      sink: o.name,
      output: o.config.input,
      topology: o.topology,
      keys: o.keys,
      redis: o.deliveryRedis,
      consumer: o.consumer,
      now,
    });
  }

  async start(): Promise<void> {
    const step = async (loop: Loop) => {
      const entries = await this.dispatcher.reader.read(this.o.config.batch, this.o.blockMs ?? 1_000);
      if (entries.length && !loop.stopping) await this.dispatcher.handle(entries);
    };
    // the deliverer and the dead-letter loop start once the dispatcher's group exists, before its loop
    await this.dispatcher.group.start(step, async () => {
      await this.deadLetters.ensureGroups();
      this.deliverer.start();
      this.dlqLoop = runLoop(`sink:${this.o.name}:dlq`, this.o.logger, async (loop) => {
        if ((await this.deadLetters.pass()) === 0 && !loop.stopping) await sleep(DEAD_LETTER_POLL_MS);
      });
    });
  }

  async stop(): Promise<void> {
    this.dlqLoop?.stop();
    await this.dispatcher.group.stop();
    await this.dlqLoop?.done;
    await this.deliverer.stop();
  }
}
