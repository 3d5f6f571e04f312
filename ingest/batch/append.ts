// Appending a batch: scripts/append-batch.lua appends a chunk of one merchant's events in ONE
// script call, each event as the single endpoint's scripts would (append-event-2.lua, or
// idempotent-append-3.lua with an idempotency_key): in order, each taking its own token from the
// merchant's bucket (the events past it come back `limited`), and a later event with a key already
// used earlier in the same batch replays or conflicts with it exactly as it would across requests.
// All chunks go on ONE pipeline: one Redis round trip for the whole batch. Chunks keep each script
// call short (Redis runs nothing else while a script runs).
//
// Every event of a batch belongs to the key's merchant, so every key touched lies in one
// partition: one hash tag, one Redis Cluster slot, which a cluster pipeline needs.
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
const APPEND_BATCH = script('appendBatch');

/** Events per script call: ~1,000 appends keep Redis busy for a few ms at most. */
const CHUNK = 1_000;

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
    const planned: { id: string; lane: string }[] = new Array(items.length);
    // chunks of one merchant's events (a batch holds one merchant's; several are served all the same)
    const chunks: { at: number[]; keys: string[]; args: (string | number)[] }[] = [];
    const open = new Map<string, { at: number[]; keys: string[]; args: (string | number)[]; streams: Map<string, number>; records: string[] }>();
    const close = (bucket: string) => {
      const c = open.get(bucket);
      if (!c) return;
      open.delete(bucket);
      // keys: bucket, streams, idempotency records; args: bucket args, TTL, stream count, then the events
      const streams = [...c.streams.keys()];
      const recordAt = 2 + streams.length;
      for (let k = 0; k < c.args.length; k += 5) if (c.args[k + 1] !== 0) c.args[k + 1] = (c.args[k + 1] as number) + recordAt - 1;
      chunks.push({ at: c.at, keys: [bucket, ...streams, ...c.records], args: [...limit, this.idempotencyTtlMs, streams.length, ...c.args] });
    };
    items.forEach(({ body, idempotencyKey }, i) => {
      const route = this.appender.route(body.merchant_id, body.type);
      const id = newTxId(now);
      const event: TransactionEvent = { ...body, id, ingested_at: now, status: 'accepted' };
      const bucket = this.keys.rateLimit(route.partition, body.merchant_id);
      let c = open.get(bucket);
      if (!c) open.set(bucket, (c = { at: [], keys: [], args: [], streams: new Map(), records: [] }));
      let stream = c.streams.get(route.stream);
      if (stream === undefined) c.streams.set(route.stream, (stream = c.streams.size + 1));
      let record = 0;
      if (idempotencyKey !== undefined) record = c.records.push(this.keys.idempotency(route.partition, body.merchant_id, idempotencyKey));
      c.args.push(stream, record, record ? fingerprint(body) : '', id, JSON.stringify(event));
      c.at.push(i);
      planned[i] = { id, lane: route.lane };
      if (c.at.length === CHUNK) close(bucket);
    });
    for (const bucket of [...open.keys()]) close(bucket);
    // queued on the pipeline (which returns itself here): the replies come from exec()
    for (const c of chunks) void runScript(pipe, APPEND_BATCH, c.keys, c.args);

    // a batch is up to 10,000 appends: its wait grows with it (10,000 events: +2 s)
    const timeoutMs = this.opts.timeoutMs + items.length * (this.opts.perEventTimeoutMs ?? DEFAULT_PER_EVENT_TIMEOUT_MS);
    const replies = (await withTimeout(pipe.exec(), timeoutMs, 'Redis batch append')) ?? [];
    if (replies.length !== chunks.length) throw new Error(`Redis answered ${replies.length} of ${chunks.length} batch append calls`);
    if (replies.every(([err]) => err)) throw replies[0]![0]!;
    const outcomes: ItemOutcome[] = new Array(items.length);
    replies.forEach(([err, reply], k) => {
      const { at } = chunks[k]!;
      const flat = err ? undefined : Array.isArray(reply) && reply.length === at.length * 2 ? (reply as unknown[]) : undefined;
      const whole = err ?? (flat ? undefined : new Error(`unexpected reply from the batch append script: ${JSON.stringify(reply).slice(0, 200)}`));
      at.forEach((i, j) => {
        const out = whole ?? parseReply(flat![2 * j], flat![2 * j + 1]);
        if (out instanceof Error) {
          outcomes[i] = { kind: 'failed', error: out };
          return;
        }
        const { id, lane } = planned[i]!;
        switch (out.kind) {
          case 'accepted':
            outcomes[i] = { kind: 'accepted', id, entryId: out.value, lane };
            break;
          case 'limited':
            outcomes[i] = out;
            break;
          default:
            outcomes[i] = { kind: out.kind, id: out.value };
        }
      });
    });
    return outcomes;
  }
}

type Reply = { kind: 'accepted' | 'replayed' | 'conflict'; value: string } | { kind: 'limited'; waitMs: number };

function parseReply(kind: unknown, value: unknown): Reply | Error {
  if (typeof value === 'string' && (kind === 'accepted' || kind === 'replayed' || kind === 'conflict')) return { kind, value };
  if (kind === 'limited' && typeof value === 'number') return { kind, waitMs: value };
  if (kind === 'failed') return new Error(`Redis refused the append: ${String(value)}`);
  return new Error(`unexpected reply from the batch append script: ${JSON.stringify([kind, value])}`);
}
