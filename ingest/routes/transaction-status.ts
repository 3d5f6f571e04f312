// GET /v1/transactions/:id (design §3): one transaction as its merchant sees it, with its current
// status. Runs after bearerAuth('merchant'). Merchant-scoped: an id of another merchant answers
// exactly like an unknown or malformed one (404, same body), so ids cannot be probed.
//
// Where the answer comes from, in order:
//  1. Postgres `transactions` (succeeded or failed): by id and merchant_id, with ingested_at bound
//     to the millisecond the id encodes (a ULID), so Postgres prunes to one partition.
//  2. Redis, the merchant's partition only, in one read-only script (scripts/find-tx-var.lua): the
//     dead-letter index (dead_lettered, the stage and error as failure_reason), then the lane
//     streams of every topic and the stages' delay sets: only in the ingest topic and not yet
//     delivered to its first stage → accepted; anywhere else → processing.
//  3. Else 404.
// In Redis the scans are bounded (`scanLimit` entries per key, from the id's time minus
// `clockSkewMs`): an event still in flight behind more than that many newer entries of its lane
// is not found (404) until Postgres or the dead-letter index has it.
import type { Handler } from 'hono';
import type { TransactionEvent } from '../../core/event.ts';
import { transactionView } from '../../core/transaction-view.ts';
import type { TransactionView } from '../../core/transaction-view.ts';
import type { Keys } from '../../core/keys.ts';
import { partitionOf } from '../../core/partition.ts';
import type { PgPool } from '../../core/postgres.ts';
import { defineScripts, runScript } from '../../core/redis.ts';
import { loadScripts } from '../../core/scripts.ts';
import type { RedisClient } from '../../core/redis.ts';
import type { Topology } from '../../core/topology/schema.ts';
import type { TransactionRowOf } from '../../core/transactions-table.ts';
import type { AuthEnv } from '../auth/index.ts';
import { forbidden, notFound } from '../../core/http/problem.ts';
import { withTimeout } from '../timeout.ts';
import { txIdTime } from '../../core/tx-id.ts';
import { reviewKey } from '../../core/review-queue.ts';

const { findTx: FIND_TX } = loadScripts(new URL('../scripts/', import.meta.url), ['findTx']);

// the tx id's encoded accept time lives with the id format: core/tx-id.ts
export { txIdTime };

// the columns the view is made of: not the entry's id, the attempts or the risk rules' version
const VIEW_COLUMNS = `id, merchant_id, type, amount, currency, status, reference, risk_score, metadata,
       occurred_at, ingested_at, processed_at, failure_code, failure_reason, risk_reasons`;
type ViewRow = TransactionRowOf<typeof VIEW_COLUMNS>;

/**
 * One row by id and merchant, with ingested_at bound to the id's millisecond: the partition key
 * (ingested_at, merchant_id) is fully known, so the planner prunes to one leaf partition.
 */
export const TRANSACTION_BY_ID_SQL = `
SELECT ${VIEW_COLUMNS}
FROM transactions
WHERE id = $1 AND merchant_id = $2 AND ingested_at >= $3::timestamptz AND ingested_at < $4::timestamptz`;

export interface TransactionLookupOptions {
  redis: RedisClient;
  pool: PgPool;
  topology: Topology;
  keys: Keys;
  /** Longest wait for Postgres, then for Redis, before the request fails with 503. */
  timeoutMs: number;
  /** Most entries scanned per stream (and delay-set members per set) in Redis. Default 500. */
  scanLimit?: number;
  /** How far ingest's clock (in the id) may run ahead of Redis's (in entry ids). Default 2 s. */
  clockSkewMs?: number;
}

interface PartitionKeys {
  keys: string[];
  counts: [number, number, number, number];
  dlqStages: string[];
}

export class TransactionLookup {
  private readonly partitions: number;
  private readonly scanLimit: number;
  private readonly clockSkewMs: number;
  private readonly ingestGroups: string[];
  private readonly byPartition = new Map<number, PartitionKeys>();

  constructor(private readonly o: TransactionLookupOptions) {
    const { topology } = o;
    const ingest = topology.topics[topology.ingest.topic];
    if (!ingest) throw new Error(`ingest.topic "${topology.ingest.topic}" is not declared under topics`);
    this.partitions = ingest.partitions;
    this.scanLimit = o.scanLimit ?? 500;
    this.clockSkewMs = o.clockSkewMs ?? 2_000;
    // every consumer group on the ingest topic: its stages and sinks are named after them
    this.ingestGroups = [
      ...Object.entries(topology.stages).filter(([, s]) => s.input === topology.ingest.topic),
      ...Object.entries(topology.sinks).filter(([, s]) => s.input === topology.ingest.topic),
    ].map(([name]) => name);
    defineScripts(o.redis, [FIND_TX]);
  }

  /** The merchant's transaction, or undefined when there is none it may see (malformed ids too). */
  async find(merchantId: string, txId: string): Promise<TransactionView | undefined> {
    const ms = txIdTime(txId);
    // minted in the future: no such transaction, and no scan for it
    if (ms === undefined || ms > Date.now() + this.clockSkewMs) return undefined;
    return (await this.fromPostgres(merchantId, txId, ms)) ?? (await this.fromReview(merchantId, txId)) ?? (await this.fromRedis(merchantId, txId, ms));
  }

  private async fromPostgres(merchantId: string, txId: string, ms: number): Promise<TransactionView | undefined> {
    const { rows } = await withTimeout(
      this.o.pool.query<ViewRow>(TRANSACTION_BY_ID_SQL, [txId, merchantId, new Date(ms).toISOString(), new Date(ms + 1).toISOString()]),
      this.o.timeoutMs,
      'Postgres transaction lookup',
    );
    const r = rows[0];
    if (!r) return undefined;
    return {
      id: r.id,
      merchant_id: r.merchant_id,
      type: r.type,
      amount: Number(r.amount),
      currency: r.currency,
      reference: r.reference,
      metadata: r.metadata,
      status: r.status === 'failed' ? 'failed' : 'succeeded',
      failure_code: r.status === 'failed' ? (r.failure_code ?? null) : null,
      failure_reason: r.failure_reason,
      risk_score: r.risk_score,
      risk_reasons: r.risk_reasons,
      occurred_at: r.occurred_at ? r.occurred_at.toISOString() : null,
      ingested_at: r.ingested_at.toISOString(),
      processed_at: r.processed_at ? r.processed_at.toISOString() : null,
    };
  }

  /** Held by the risk stage for an operator's review (core/review-queue.ts). */
  private async fromReview(merchantId: string, txId: string): Promise<TransactionView | undefined> {
    const json = await withTimeout(
      this.o.redis.hget(reviewKey(this.o.keys, partitionOf(merchantId, this.partitions)), txId),
      this.o.timeoutMs,
      'Redis review lookup',
    );
    const ev = parseJson<TransactionEvent>(json);
    return ev && ev.id === txId && ev.merchant_id === merchantId ? transactionView(ev, 'in_review') : undefined;
  }

  private async fromRedis(merchantId: string, txId: string, ms: number): Promise<TransactionView | undefined> {
    const p = partitionOf(merchantId, this.partitions);
    const { keys, counts, dlqStages } = this.keysOf(p);
    const parked = this.parkedQueues(p, merchantId);
    const reply = await withTimeout(
      runScript(
        this.o.redis,
        FIND_TX,
        [...keys, ...parked],
        [
          txId,
          ...counts,
          Math.max(0, ms - this.clockSkewMs),
          ms + this.clockSkewMs,
          this.scanLimit,
          this.clockSkewMs,
          ...dlqStages,
          parked.length,
          ...this.ingestGroups,
        ],
      ),
      this.o.timeoutMs,
      'Redis transaction lookup',
    );
    const [state, evJson, indexJson] = Array.isArray(reply) ? (reply as unknown[]) : [];
    if (state !== 'accepted' && state !== 'processing' && state !== 'dead_lettered') return undefined;
    const ev = parseJson<TransactionEvent>(evJson);
    // the partition is shared with other merchants: only the event's own merchant may see it,
    // and without the event there is nothing to check ownership against
    if (!ev || ev.id !== txId || ev.merchant_id !== merchantId) return undefined;
    const view = transactionView(ev, state);
    if (state === 'dead_lettered') {
      const dl = parseJson<{ stage?: unknown; error?: unknown; message?: unknown; at?: unknown }>(indexJson);
      const stage = typeof dl?.stage === 'string' ? dl.stage : 'unknown stage';
      const message = typeof dl?.message === 'string' && dl.message ? dl.message : typeof dl?.error === 'string' ? dl.error : 'failed';
      view.failure_reason = `${stage}: ${message}`;
      if (typeof dl?.at === 'number' && Number.isFinite(dl.at)) view.processed_at = new Date(dl.at).toISOString();
    }
    return view;
  }

  /** The merchant's parked queues: every ordered stage × lane of its partition. */
  private parkedQueues(p: number, merchantId: string): string[] {
    const { topology, keys: k } = this.o;
    return Object.entries(topology.stages)
      .filter(([, s]) => s.ordering === 'key')
      .flatMap(([stage]) => topology.priorities.map((l) => k.parkQueue(stage, p, `${l.name}|${merchantId}`)));
  }

  private keysOf(p: number): PartitionKeys {
    let got = this.byPartition.get(p);
    if (got) return got;
    const { topology, keys: k } = this.o;
    const lanes = topology.priorities.map((l) => l.name);
    const topicLanes = (topic: string) => (p < (topology.topics[topic]?.partitions ?? 0) ? lanes.map((l) => k.lane(topic, p, l)) : []);
    const ingest = topicLanes(topology.ingest.topic);
    const others = Object.keys(topology.topics)
      .filter((t) => t !== topology.ingest.topic)
      .flatMap(topicLanes);
    const delays = Object.keys(topology.stages).map((s) => k.delay(s, p));
    const dlqStages = [...Object.keys(topology.stages), ...Object.keys(topology.sinks)];
    const dlqs = dlqStages.map((s) => k.deadLetter(s, p));
    got = {
      keys: [k.deadLetterIndex(p), ...ingest, ...others, ...delays, ...dlqs],
      counts: [ingest.length, others.length, delays.length, dlqs.length],
      dlqStages,
    };
    this.byPartition.set(p, got);
    return got;
  }
}

function parseJson<T>(v: unknown): T | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  try {
    const parsed: unknown = JSON.parse(v);
    return parsed !== null && typeof parsed === 'object' ? (parsed as T) : undefined;
  } catch {
    return undefined;
  }
}

export function getTransaction(lookup: TransactionLookup): Handler<AuthEnv> {
  return async (c) => {
    const principal = c.get('principal');
    if (principal.scope !== 'merchant') throw forbidden('This API key may not read transactions.');
    const id = c.req.param('id') ?? '';
    const view = await lookup.find(principal.merchantId, id);
    // one answer for unknown, malformed and other merchants' ids alike
    if (!view) throw notFound('No such transaction.');
    return c.json(view, 200, { 'cache-control': 'no-store' });
  };
}
