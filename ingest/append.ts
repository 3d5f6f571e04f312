// Appending accepted transactions to the ingest topic: picks partition and lane, builds the
// stream entry and writes it in ONE Redis round trip: scripts/append-events.lua checks the
// Idempotency-Key (if any), takes a token from the merchant's rate-limit bucket and appends.
import { ConfigError, RateLimitedError, UnknownPayinError } from '../core/errors.ts';
import type { TransactionEvent } from '../core/event.ts';
import type { Keys } from '../core/keys.ts';
import { LaneMap } from '../core/lanes.ts';
import { partitionOf } from '../core/partition.ts';
import { defineScripts, runScript } from '../core/redis.ts';
import type { RedisClient } from '../core/redis.ts';
import type { RateLimitConfig, RefundsConfig, Topology } from '../core/topology/schema.ts';
import { APPEND_EVENTS, appendCall, INGEST_SCRIPTS, parseAppendReply, payinCheck } from './append-call.ts';
import { fingerprint } from './idempotency.ts';
import { IngestKeys } from './keys.ts';
import { withTimeout } from './timeout.ts';
import { newTxId } from '../core/tx-id.ts';
import type { TransactionBody } from './validation.ts';

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
  readonly refunds: RefundsConfig;

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
    this.refunds = topology.refunds;
    defineScripts(redis, INGEST_SCRIPTS);
  }

  /** Where a merchant's event of this type goes: its partition keeps the merchant's order. */
  route(merchantId: string, type: string): Route {
    const partition = partitionOf(merchantId, this.partitions);
    const lane = this.lanes.laneOf(type);
    return { partition, lane, stream: this.keys.lane(this.topic, partition, lane) };
  }

  /**
   * Throws RateLimitedError when the merchant's bucket is empty, UnknownPayinError for a refund or
   * chargeback naming no accepted payin of the merchant (nothing appended either way).
   */
  /** `traceparent`: the ingest span's, carried in the entry so the stages continue the trace. */
  async append(body: TransactionBody, idempotencyKey?: string, traceparent?: string): Promise<AppendOutcome> {
    const route = this.route(body.merchant_id, body.type);
    const now = Date.now();
    const id = newTxId(now);
    const event: TransactionEvent = { ...body, id, ingested_at: now, status: 'accepted' };
    const bucket = this.keys.rateLimit(route.partition, body.merchant_id);
    const record =
      idempotencyKey === undefined
        ? undefined
        : { key: this.keys.idempotency(route.partition, body.merchant_id, idempotencyKey), fingerprint: fingerprint(body) };
    const payin = payinCheck(this.keys, route.partition, body, id, this.refunds);
    const call = appendCall(
      bucket,
      [{ stream: route.stream, record, txId: id, ev: JSON.stringify(event), traceparent, payin }],
      this.rateLimit,
      this.idempotencyTtlMs,
      now,
    );
    const reply = await withTimeout(runScript(this.redis, APPEND_EVENTS, call.keys, call.args), this.opts.timeoutMs, 'Redis append');
    const out = parseAppendReply(reply, 1)[0]!;
    switch (out.kind) {
      case 'accepted':
        return { kind: 'accepted', id, entryId: out.value, ...route };
      case 'limited':
        throw new RateLimitedError(body.merchant_id, out.waitMs, this.rateLimit);
      case 'failed':
        throw out.error;
      case 'orphan':
        throw new UnknownPayinError(body.type, out.value);
      default:
        return { kind: out.kind, id: out.value };
    }
  }
}
