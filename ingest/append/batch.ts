// Appending a batch: scripts/append-events-var.lua, the single endpoint's script, appends a chunk of
// one partition's events in ONE call: in order, each taking its own token from the merchant's
// bucket (the events past it come back `limited`), and a later event with a key already used
// earlier in the same batch replays or conflicts with it exactly as it would across requests.
// All chunks go on ONE pipeline: one Redis round trip for the whole batch. Chunks keep each script
// call short (Redis runs nothing else while a script runs).
//
// Every event of a batch belongs to the key's merchant, so every key touched lies in one
// partition: one hash tag, one Redis Cluster slot, which a cluster pipeline needs.
import { defineScripts, runScript } from '../../core/redis.ts';
import type { RedisClient } from '../../core/redis.ts';
import type { RateLimitConfig } from '../../core/topology/schema.ts';
import type { AppenderOptions, EventAppender } from './index.ts';
import { APPEND_EVENTS, appendCall, INGEST_SCRIPTS, MAX_CALL_EVENTS, parseAppendReply } from './script-call.ts';
import type { EventToAppend } from './script-call.ts';
import { withTimeout } from '../timeout.ts';
import type { TransactionBody } from '../validation.ts';

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
  /** A refund or chargeback naming no accepted payin of the merchant: nothing appended. */
  | { kind: 'orphan'; reference: string }
  /** The merchant's bucket was empty: nothing appended; a token is due in `waitMs`. */
  | { kind: 'limited'; waitMs: number }
  /** Redis refused this one call (e.g. OOM on XADD: nothing appended for it), or answered nonsense. */
  | { kind: 'failed'; error: Error };

export class BatchAppender {
  readonly topic: string;
  readonly rateLimit: RateLimitConfig;
  private readonly idempotencyTtlMs: number;

  /** `appender` routes and encodes each event exactly as the single endpoint does. */
  constructor(
    private readonly appender: EventAppender,
    private readonly redis: RedisClient,
    private readonly opts: BatchAppenderOptions,
  ) {
    this.topic = appender.topic;
    this.rateLimit = appender.rateLimit;
    this.idempotencyTtlMs = appender.idempotencyTtlMs;
    defineScripts(redis, INGEST_SCRIPTS);
  }

  /**
   * One outcome per item, in order. Throws (the route answers 503) when the round trip fails or
   * times out, or Redis refused every call. After a timeout some events may still be appended
   * (as with the single endpoint): per-line idempotency keys make retrying a batch safe.
   */
  async appendAll(items: readonly BatchItem[]): Promise<ItemOutcome[]> {
    if (!items.length) return [];
    const now = Date.now();
    const pipe = this.redis.pipeline();
    const planned: { id: string; lane: string }[] = new Array(items.length);
    // chunks of one partition's events (a batch holds one merchant's; several are served all the same)
    const chunks: { at: number[]; events: EventToAppend[] }[] = [];
    const open = new Map<number, { at: number[]; events: EventToAppend[] }>();
    items.forEach(({ body, idempotencyKey }, i) => {
      const e = this.appender.prepare(body, idempotencyKey, now);
      let c = open.get(e.partition);
      if (!c) open.set(e.partition, (c = { at: [], events: [] }));
      c.events.push(e);
      c.at.push(i);
      planned[i] = { id: e.txId, lane: e.lane };
      if (c.at.length === MAX_CALL_EVENTS) {
        chunks.push(c);
        open.delete(e.partition);
      }
    });
    chunks.push(...open.values());
    // queued on the pipeline (which returns itself here): the replies come from exec()
    for (const c of chunks) {
      const call = appendCall(c.events, this.rateLimit, this.idempotencyTtlMs, now);
      void runScript(pipe, APPEND_EVENTS, call.keys, call.args);
    }

    // a batch is up to 10,000 appends: its wait grows with it (10,000 events: +2 s)
    const timeoutMs = this.opts.timeoutMs + items.length * (this.opts.perEventTimeoutMs ?? DEFAULT_PER_EVENT_TIMEOUT_MS);
    const replies = (await withTimeout(pipe.exec(), timeoutMs, 'Redis batch append')) ?? [];
    if (replies.length !== chunks.length) throw new Error(`Redis answered ${replies.length} of ${chunks.length} batch append calls`);
    if (replies.every(([err]) => err)) throw replies[0]![0]!;
    const outcomes: ItemOutcome[] = new Array(items.length);
    replies.forEach(([err, reply], k) => {
      const { at } = chunks[k]!;
      const outs = err ? undefined : parseAppendReply(reply, at.length);
      at.forEach((i, j) => {
        const out = outs ? outs[j]! : { kind: 'failed' as const, error: err! };
        const { id, lane } = planned[i]!;
        switch (out.kind) {
          case 'accepted':
            outcomes[i] = { kind: 'accepted', id, entryId: out.value, lane };
            break;
          case 'limited':
          case 'failed':
            outcomes[i] = out;
            break;
          case 'orphan':
            outcomes[i] = { kind: 'orphan', reference: out.value };
            break;
          default:
            outcomes[i] = { kind: out.kind, id: out.value };
        }
      });
    });
    return outcomes;
  }
}
