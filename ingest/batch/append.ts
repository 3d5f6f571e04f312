// Appending a batch: the same Lua scripts as EventAppender (scripts/append-event-2.lua and
// scripts/idempotent-append-3.lua), one call per event, all queued on ONE pipeline: one Redis round
// trip for the whole batch. Redis runs the calls one after another in order, so each event takes
// its own token from the merchant's bucket (the events past it come back `limited`), and a later
// event with an Idempotency-Key already used earlier in the same batch replays or conflicts with
// it exactly as it would across requests.
//
// Every event of a batch belongs to the key's merchant, so every key touched lies in one
// partition: one hash tag, one Redis Cluster slot, which a cluster pipeline needs.
import { entryArgs } from '../../core/entry.ts';
import type { TransactionEvent } from '../../core/event.ts';
import type { Keys } from '../../core/keys.ts';
import { defineScripts, readScripts, runScript } from '../../core/redis.ts';
import type { RedisClient, ScriptSource } from '../../core/redis.ts';
import type { RateLimitConfig, Topology } from '../../core/topology/schema.ts';
import type { AppenderOptions, EventAppender } from '../append.ts';
import { fingerprint } from '../idempotency.ts';
import { IngestKeys } from '../keys.ts';
import { bucketArgs } from '../rate-limit.ts';
import { withTimeout } from '../timeout.ts';
import { newTxId } from '../tx-id.ts';
import type { TransactionBody } from '../validation.ts';

const SCRIPTS = readScripts(new URL('../scripts/', import.meta.url));
const APPEND = script('appendEvent');
const IDEMPOTENT_APPEND = script('idempotentAppend');

function script(name: string): ScriptSource {
  const s = SCRIPTS.find((x) => x.name === name);
  if (!s) throw new Error(`ingest Lua script ${name} is missing`);
  return s;
}

export interface BatchAppenderOptions extends AppenderOptions {
  /** Added to `timeoutMs` per event of a batch (default 0.2 ms; Redis needs ~0.02 ms per append). */
  perEventTimeoutMs?: number;
}

const DEFAULT_PER_EVENT_TIMEOUT_MS = 0.2;

export interface BatchItem {
  body: TransactionBody;
  idempotencyKey?: string | undefined;
}

export type ItemOutcome =
  /** Appended now. */
  | { kind: 'accepted'; id: string; entryId: string; lane: string }
  /** Same key, same body as before (earlier in this batch or another request): the first id. */
  | { kind: 'replayed'; id: string }
  /** Same key, another body: nothing appended. */
  | { kind: 'conflict'; id: string }
  /** The merchant's bucket was empty: nothing appended; a token is due in `waitMs`. */
  | { kind: 'limited'; waitMs: number }
  /** Redis refused this one call (e.g. OOM on XADD: nothing appended for it), or answered nonsense. */
  | { kind: 'failed'; error: Error };

export class BatchAppender {
  readonly topic: string;
  private readonly keys: IngestKeys;
  readonly rateLimit: RateLimitConfig;
  private readonly idempotencyTtlMs: number;

  /** `appender` routes (partition, lane) exactly as the single endpoint does. */
  constructor(
    private readonly appender: EventAppender,
    private readonly redis: RedisClient,
    topology: Topology,
    keys: Keys,
    private readonly opts: BatchAppenderOptions,
  ) {
    this.topic = appender.topic;
    this.keys = new IngestKeys(keys.prefix);
    this.rateLimit = topology.ingest.rate_limit;
    this.idempotencyTtlMs = topology.ingest.idempotency_ttl;
    defineScripts(redis, SCRIPTS);
  }

  /**
   * One outcome per item, in order. Throws (the route answers 503) when the round trip fails or
   * times out, or Redis refused every call. After a timeout some events may still be appended
   * (as with the single endpoint): per-line idempotency keys make retrying a batch safe.
   */
  async appendAll(items: readonly BatchItem[]): Promise<ItemOutcome[]> {
    if (!items.length) return [];
    const now = Date.now();
    const limit = bucketArgs(this.rateLimit, now);
    const pipe = this.redis.pipeline();
    const planned = items.map(({ body, idempotencyKey }) => {
      const route = this.appender.route(body.merchant_id, body.type);
      const id = newTxId(now);
      const event: TransactionEvent = { ...body, id, ingested_at: now, status: 'accepted' };
      const fields = entryArgs({ tx: id, ev: JSON.stringify(event) });
      const bucket = this.keys.rateLimit(route.partition, body.merchant_id);
      // queued on the pipeline (which returns itself here): the replies come from exec()
      if (idempotencyKey === undefined) {
        void runScript(pipe, APPEND, [bucket, route.stream], [...limit, ...fields]);
      } else {
        void runScript(
          pipe,
          IDEMPOTENT_APPEND,
          [this.keys.idempotency(route.partition, body.merchant_id, idempotencyKey), bucket, route.stream],
          [fingerprint(body), id, this.idempotencyTtlMs, ...limit, ...fields],
        );
      }
      return { id, lane: route.lane };
    });

    // a batch is up to 10,000 script calls: its wait grows with it (10,000 events: +2 s)
    const timeoutMs = this.opts.timeoutMs + items.length * (this.opts.perEventTimeoutMs ?? DEFAULT_PER_EVENT_TIMEOUT_MS);
    const replies = (await withTimeout(pipe.exec(), timeoutMs, 'Redis batch append')) ?? [];
    if (replies.length !== items.length) throw new Error(`Redis answered ${replies.length} of ${items.length} batch appends`);
    if (replies.every(([err]) => err)) throw replies[0]![0]!;
    return replies.map(([err, reply], i): ItemOutcome => {
      if (err) return { kind: 'failed', error: err };
      const { id, lane } = planned[i]!;
      const out = parseReply(reply);
      if (out instanceof Error) return { kind: 'failed', error: out };
      switch (out.kind) {
        case 'accepted':
          return { kind: 'accepted', id, entryId: out.value, lane };
        case 'limited':
          return out;
        default:
          return { kind: out.kind, id: out.value };
      }
    });
  }
}

type Reply = { kind: 'accepted' | 'replayed' | 'conflict'; value: string } | { kind: 'limited'; waitMs: number };

function parseReply(reply: unknown): Reply | Error {
  if (Array.isArray(reply) && reply.length === 2) {
    const [kind, value]: unknown[] = reply;
    if (typeof value === 'string' && (kind === 'accepted' || kind === 'replayed' || kind === 'conflict')) return { kind, value };
    if (kind === 'limited' && typeof value === 'number') return { kind, waitMs: value };
  }
  return new Error(`unexpected reply from an append script: ${JSON.stringify(reply)}`);
}
