// Appending accepted transactions to the ingest topic: picks partition and lane, builds the
// stream entry and writes it in ONE Redis round trip: a script that takes a token from the
// merchant's rate-limit bucket and appends (scripts/append-event-2.lua), or the same behind an
// Idempotency-Key check (scripts/idempotent-append-3.lua).
import { entryArgs } from '../core/entry.ts';
import { ConfigError } from '../core/errors.ts';
import type { TransactionEvent } from '../core/event.ts';
import type { Keys } from '../core/keys.ts';
import { LaneMap } from '../core/lanes.ts';
import { partitionOf } from '../core/partition.ts';
import { defineScripts, readScripts, runScript } from '../core/redis.ts';
import type { RedisClient, ScriptSource } from '../core/redis.ts';
import type { RateLimitConfig, Topology } from '../core/topology/schema.ts';
import { fingerprint } from './idempotency.ts';
import { IngestKeys } from './keys.ts';
import { bucketArgs, RateLimitedError } from './rate-limit.ts';
import { withTimeout } from './timeout.ts';
import { newTxId } from './tx-id.ts';
import type { TransactionBody } from './validation.ts';

const SCRIPTS = readScripts(new URL('./scripts/', import.meta.url));
const APPEND = script('appendEvent');
const IDEMPOTENT_APPEND = script('idempotentAppend');

function script(name: string): ScriptSource {
  const s = SCRIPTS.find((x) => x.name === name);
  if (!s) throw new Error(`ingest Lua script ${name} is missing`);
  return s;
}

export interface Route {
  partition: number;
  lane: string;
  stream: string;
}

export type AppendOutcome =
  | ({ kind: 'accepted'; id: string; entryId: string } & Route)
  /** Same Idempotency-Key, same body: the first answer's id; nothing appended. */
  | { kind: 'replayed'; id: string }
  /** Same Idempotency-Key, another body: nothing appended. */
  | { kind: 'conflict'; id: string };

export interface AppenderOptions {
  /** Longest wait for Redis before the request fails with 503. */
  timeoutMs: number;
}

export class EventAppender {
  readonly topic: string;
  private readonly partitions: number;
  private readonly lanes: LaneMap;
  private readonly idempotencyTtlMs: number;
  private readonly rateLimit: RateLimitConfig;
  private readonly keys: IngestKeys;

  constructor(
    private readonly redis: RedisClient,
    topology: Topology,
    keys: Keys,
    private readonly opts: AppenderOptions,
  ) {
    const topic = topology.topics[topology.ingest.topic];
    if (!topic) throw new ConfigError(`ingest.topic "${topology.ingest.topic}" is not declared under topics`);
    this.topic = topology.ingest.topic;
    this.partitions = topic.partitions;
    this.lanes = new LaneMap(topology.priorities);
    this.idempotencyTtlMs = topology.ingest.idempotency_ttl;
    this.rateLimit = topology.ingest.rate_limit;
    this.keys = new IngestKeys(keys.prefix);
    defineScripts(redis, SCRIPTS);
  }

  /** Where a merchant's event of this type goes: its partition keeps the merchant's order. */
  route(merchantId: string, type: string): Route {
    const partition = partitionOf(merchantId, this.partitions);
    const lane = this.lanes.laneOf(type);
    return { partition, lane, stream: this.keys.lane(this.topic, partition, lane) };
  }

  /** Throws RateLimitedError when the merchant's bucket is empty (nothing appended). */
  /** `traceparent`: the ingest span's, carried in the entry so the stages continue the trace. */
  async append(body: TransactionBody, idempotencyKey?: string, traceparent?: string): Promise<AppendOutcome> {
    const route = this.route(body.merchant_id, body.type);
    const now = Date.now();
    const id = newTxId(now);
    const event: TransactionEvent = { ...body, id, ingested_at: now, status: 'accepted' };
    const fields = entryArgs({ tx: id, ev: JSON.stringify(event), tp: traceparent });
    const bucket = this.keys.rateLimit(route.partition, body.merchant_id);
    const limit = bucketArgs(this.rateLimit, now);

    const reply =
      idempotencyKey === undefined
        ? await withTimeout(runScript(this.redis, APPEND, [bucket, route.stream], [...limit, ...fields]), this.opts.timeoutMs, 'Redis append')
        : await withTimeout(
            runScript(this.redis, IDEMPOTENT_APPEND, [this.keys.idempotency(route.partition, body.merchant_id, idempotencyKey), bucket, route.stream], [
              fingerprint(body),
              id,
              this.idempotencyTtlMs,
              ...limit,
              ...fields,
            ]),
            this.opts.timeoutMs,
            'Redis idempotent append',
          );
    const out = parseReply(reply);
    switch (out.kind) {
      case 'accepted':
        return { kind: 'accepted', id, entryId: out.value, ...route };
      case 'limited':
        throw new RateLimitedError(body.merchant_id, out.waitMs, this.rateLimit);
      default:
        return { kind: out.kind, id: out.value };
    }
  }
}

type Reply = { kind: 'accepted' | 'replayed' | 'conflict'; value: string } | { kind: 'limited'; waitMs: number };

function parseReply(reply: unknown): Reply {
  if (Array.isArray(reply) && reply.length === 2) {
    const [kind, value]: unknown[] = reply;
    if (typeof value === 'string' && (kind === 'accepted' || kind === 'replayed' || kind === 'conflict')) return { kind, value };
    if (kind === 'limited' && typeof value === 'number') return { kind, waitMs: value };
  }
  throw new Error(`unexpected reply from an append script: ${JSON.stringify(reply)}`);
}
