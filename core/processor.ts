// The processor contract: a batch of events in, one outcome per event out (same order).
// The runner does the reading, acking, retries and dead letters. A plugin imports it from the
// package (`import type { ProcessorFactory } from 'rill'`); the built-in processors through
// core/processor-kit.ts, which adds the helpers of core they use.
import type { ZodType } from 'zod';
import type { RillEnv } from './config.ts';
import type { Logger } from './logger.ts';
import type { RedisClient } from './redis.ts';
import type { Keys } from './keys.ts';
import type { Registry } from './metrics.ts';
import type { TransactionEvent } from './event.ts';
import { FatalError, RetryableError } from './errors.ts';
import type { RefundsConfig } from './topology/schema.ts';

export interface StreamEvent<T = TransactionEvent> {
  /** The entry id in its lane stream. */
  entryId: string;
  stream: string;
  partition: number;
  lane: string;
  txId: string;
  event: T;
  traceparent?: string;
  /** Times this entry has been delivered to the group, this delivery included. */
  deliveries: number;
}

/** An extra event a processor sends to another topic (an alert), in the same partition. */
export interface Emitted {
  topic: string;
  event: { id: string; type: string } & Record<string, unknown>;
}

export type Outcome<T = TransactionEvent> =
  /** Done: append `event` to the stage's output topic (and `emit` to theirs) and acknowledge the input. */
  | {
      kind: 'ok';
      event: T;
      emit?: Emitted[];
      /** Tokens this outcome settles: events parked waiting for one of them are due now. */
      signals?: string[];
      /**
       * Decision records (keys in the event's partition) that gate this outcome's effects: the
       * processor writes them with a long TTL, and the settle that acknowledges the input shortens
       * each to `ttlMs` (the redelivery horizon). So a record outlives any outage while its input
       * is pending, and costs memory only for the horizon once it is done.
       */
      records?: { key: string; ttlMs: number }[];
    }
  /**
   * Try again later, with backoff, until the stage's attempts run out. `deferred`: the processor
   * did not try this event at all (it waits behind an earlier one of its partition that must go
   * first), so the wait costs it no attempt.
   */
  | {
      kind: 'retry';
      error: Error;
      deferred?: boolean;
      /**
       * Not a failure but a wait (costs no attempt): an ordered stage parks the event (and its
       * merchant's later ones) until a later outcome signals `token` or until `until` (unix ms),
       * whichever comes first; the processor then decides again.
       */
      wait?: { token: string; until: number };
    }
  /** Never going to work: dead-letter now. */
  | { kind: 'fatal'; error: Error };

export interface Processor<T = TransactionEvent> {
  process(batch: readonly StreamEvent<T>[]): Promise<Outcome<T>[]>;
  close?(): Promise<void>;
}

export interface ProcessorContext {
  stage: string;
  /** A connection of the processor's own (state such as velocity counters). */
  redis: RedisClient;
  /** Key names under this instance's prefix, for the processor's own state. */
  keys: Keys;
  /** The topology's topic names, to check a topic named in the processor's config. */
  topics: readonly string[];
  /** The process's metrics registry, for the processor's own instruments. */
  registry: Registry;
  logger: Logger;
  /** The topology's refund policy (the refund window and how long a refund awaits its payin). */
  refunds?: RefundsConfig;
  /** Where Postgres is (the ledger checks refunds of payins past the hot window there); default from the environment. */
  postgres?: Pick<RillEnv, 'databaseUrl' | 'pgSchema'>;
  /** Clock (default Date.now), for simulation. */
  now?: () => number;
  /**
   * How long after an event was first processed this stage may be handed it again (reclaims,
   * retries; core/retention/horizon.ts): keep per-event decision records this long, not longer.
   */
  redeliveryHorizonMs?: number;
}

export interface ProcessorFactory<C = unknown, T = TransactionEvent> {
  name: string;
  /** Validates the stage's `config:` block; its errors are reported against topology.yaml. */
  configSchema: ZodType<C>;
  create(config: C, ctx: ProcessorContext): Processor<T> | Promise<Processor<T>>;
}

/** Map a thrown error to an outcome: RetryableError retries, anything else unexpected is fatal. */
export function outcomeFromError<T>(err: unknown): Outcome<T> {
  const error = err instanceof Error ? err : new Error(String(err));
  if (error instanceof RetryableError) return { kind: 'retry', error };
  if (error instanceof FatalError) return { kind: 'fatal', error };
  return { kind: 'fatal', error };
}
