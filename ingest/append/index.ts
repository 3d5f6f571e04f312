// Appending accepted transactions to the ingest topic: picks partition and lane, encodes the
// stream entry once and hands it to the append queue (coalescing-queue.ts), which sends the concurrent
// requests of a partition as ONE call of scripts/append-events-var.lua: it checks the
// Idempotency-Key (if any), takes a token from the merchant's rate-limit bucket and appends.
import { ConfigError, RateLimitedError, UnknownPayinError } from '../../core/errors.ts';
import type { Keys } from '../../core/keys.ts';
import { LaneMap } from '../../core/lanes.ts';
import { partitionOf } from '../../core/partition.ts';
import { defineScripts } from '../../core/redis.ts';
import type { RedisClient } from '../../core/redis.ts';
import type { RateLimitConfig, RefundsConfig, Topology } from '../../core/topology/schema.ts';
import { INGEST_SCRIPTS, payinCheck } from './script-call.ts';
import type { EventToAppend } from './script-call.ts';
import { CoalescingQueue } from './coalescing-queue.ts';
import { bodyDigest, canonicalBody, idempotencyRecord } from '../idempotency.ts';
import { IngestKeys } from '../keys.ts';
import { newTxId } from '../../core/tx-id.ts';
import type { TransactionBody } from '../validation.ts';

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

/** A merchant's keys, computed once: every request of the merchant names the same ones. */
interface MerchantKeys {
  partition: number;
  bucket: string;
  /** Lane stream by lane name. */
  streams: Map<string, string>;
}

/** Merchants whose keys are kept; past it the cache starts over (merchants are few, keys cheap). */
const MERCHANT_CACHE = 10_000;

export class EventAppender {
  readonly topic: string;
  private readonly partitions: number;
  private readonly lanes: LaneMap;
  readonly idempotencyTtlMs: number;
  readonly rateLimit: RateLimitConfig;
  private readonly keys: IngestKeys;
  readonly refunds: RefundsConfig;
  private readonly queue: CoalescingQueue;
  private readonly merchants = new Map<string, MerchantKeys>();
  /** Until then keys are also looked up under their legacy names (one TTL after this process started). */
  private readonly legacyUntil: number;

  constructor(redis: RedisClient, topology: Topology, keys: Keys, opts: AppenderOptions) {
    const topic = topology.topics[topology.ingest.topic];
    if (!topic) throw new ConfigError(`ingest.topic "${topology.ingest.topic}" is not declared under topics`);
    this.topic = topology.ingest.topic;
    this.partitions = topic.partitions;
    this.lanes = new LaneMap(topology.priorities);
    this.idempotencyTtlMs = topology.ingest.idempotency_ttl;
    this.rateLimit = topology.ingest.rate_limit;
    this.keys = new IngestKeys(keys.prefix);
    this.refunds = topology.refunds;
    this.legacyUntil = Date.now() + this.idempotencyTtlMs;
    defineScripts(redis, INGEST_SCRIPTS);
    this.queue = new CoalescingQueue(redis, { rateLimit: this.rateLimit, idempotencyTtlMs: this.idempotencyTtlMs, timeoutMs: opts.timeoutMs });
  }

  /** Where a merchant's event of this type goes: its partition keeps the merchant's order. */
  route(merchantId: string, type: string): Route {
    const m = this.merchant(merchantId);
    const lane = this.lanes.laneOf(type);
    return { partition: m.partition, lane, stream: this.stream(m, lane) };
  }

  private merchant(merchantId: string): MerchantKeys {
    let m = this.merchants.get(merchantId);
    if (!m) {
      if (this.merchants.size >= MERCHANT_CACHE) this.merchants.clear();
      const partition = partitionOf(merchantId, this.partitions);
      m = { partition, bucket: this.keys.rateLimit(partition, merchantId), streams: new Map() };
      this.merchants.set(merchantId, m);
    }
    return m;
  }

  private stream(m: MerchantKeys, lane: string): string {
    let s = m.streams.get(lane);
    if (s === undefined) m.streams.set(lane, (s = this.keys.lane(this.topic, m.partition, lane)));
    return s;
  }

  /**
   * The event of a validated body as the script appends it: the body encoded once (canonical
   * JSON: the entry's `ev` and the Idempotency-Key's fingerprint both come from it).
   */
  prepare(body: TransactionBody, idempotencyKey: string | undefined, now: number, traceparent?: string): EventToAppend & Route & { partition: number } {
    const m = this.merchant(body.merchant_id);
    const lane = this.lanes.laneOf(body.type);
    const stream = this.stream(m, lane);
    const txId = newTxId(now);
    const canonical = canonicalBody(body);
    const eventJson = `${canonical.slice(0, -1)},"id":"${txId}","ingested_at":${now},"status":"accepted"}`;
    let record: EventToAppend['record'];
    let legacy: EventToAppend['legacy'];
    if (idempotencyKey !== undefined) {
      const digest = bodyDigest(canonical);
      record = { key: this.keys.idempotency(m.partition, body.merchant_id, idempotencyKey), value: idempotencyRecord(digest, txId) };
      if (now < this.legacyUntil) {
        legacy = { key: this.keys.legacyIdempotency(m.partition, body.merchant_id, idempotencyKey), fingerprint: digest.toString('hex') };
      }
    }
    const payin = payinCheck(this.keys, m.partition, body, txId, this.refunds, now);
    return { partition: m.partition, lane, stream, bucket: m.bucket, record, legacy, txId, eventJson, traceparent, payin };
  }

  /**
   * Throws RateLimitedError when the merchant's bucket is empty, UnknownPayinError for a refund or
   * chargeback naming no accepted payin of the merchant (nothing appended either way).
   * `traceparent`: the ingest span's, carried in the entry so the stages continue the trace.
   */
  async append(body: TransactionBody, idempotencyKey?: string, traceparent?: string): Promise<AppendOutcome> {
    const e = this.prepare(body, idempotencyKey, Date.now(), traceparent);
    const out = await this.queue.append(e.partition, e);
    switch (out.kind) {
      case 'accepted':
        return { kind: 'accepted', id: e.txId, entryId: out.value, partition: e.partition, lane: e.lane, stream: e.stream };
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
