// The review queue: transactions the risk stage held (`in_review`) wait in a hash per partition,
// outside the stream, so a held transaction never delays its merchant's later events. An operator
// approves one (it goes on to the risk stage's output topic, toward the ledger) or declines it
// (it goes on as failed, failure_code risk_declined, so the sink records it). Each decision is one
// Lua script: nothing decided twice, nothing lost between the hash and the stream. The risk
// processor holds (holdForReview); the API (ingest/routes/review.ts), `rill review` and
// GET /v1/transactions/:id read and decide: one home for both sides.
import type { Keys } from './keys.ts';
import type { RedisClient } from './redis.ts';
import { defineScripts, runScript } from './redis.ts';
import { loadScripts } from './scripts.ts';
import { slotPipeline } from './slot-pipeline.ts';
import { entryArgs } from './entry.ts';
import { failedEvent } from './failure-codes.ts';
import { LaneMap } from './lanes.ts';
import { partitionOf } from './partition.ts';
import type { TransactionEvent } from './event.ts';
import type { Topology } from './topology/schema.ts';

const { reviewHold: HOLD, reviewDecide: DECIDE } = loadScripts(new URL('./scripts/', import.meta.url), ['reviewHold', 'reviewDecide']);
/** A decided marker outlives any redelivery of the risk batch that held the transaction. */
const DECIDED_TTL_MS = 7 * 86_400_000;

export const reviewKey = (keys: Keys, partition: number) => keys.partitioned(partition, 'review');
const decidedKey = (keys: Keys, partition: number, txId: string) => keys.partitioned(partition, 'review-decided', txId);

export interface HeldEvent {
  partition: number;
  event: TransactionEvent;
}

/** Put held transactions into their partitions' review hashes (one pipeline). */
export async function holdForReview(redis: RedisClient, keys: Keys, held: readonly HeldEvent[]): Promise<void> {
  if (!held.length) return;
  defineScripts(redis, [HOLD]);
  const pipe = slotPipeline(redis);
  for (const { partition: p, event } of held) {
    const k = [reviewKey(keys, p), decidedKey(keys, p, event.id)];
    pipe.add(k[0]!, (q) => void runScript(q, HOLD, k, [event.id, JSON.stringify(event)]));
  }
  for (const [err] of await pipe.exec()) if (err) throw err;
}

export type ReviewAction = 'approve' | 'decline';

export class ReviewQueue {
  private readonly partitions: number;
  private readonly lanes: LaneMap;
  private readonly output: string;

  /** `stage`: the risk stage of `topology` whose held transactions these are. */
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    topology: Topology,
    stage = 'risk',
  ) {
    const s = topology.stages[stage];
    if (!s) throw new Error(`no stage "${stage}" in the topology`);
    this.output = s.output;
    this.partitions = topology.topics[s.input]?.partitions ?? 1;
    this.lanes = new LaneMap(topology.priorities);
    defineScripts(redis, [DECIDE]);
  }

  /** Held transactions, oldest id first; a merchant's only when `merchantId` is given. */
  async list(merchantId?: string): Promise<TransactionEvent[]> {
    const parts = merchantId ? [partitionOf(merchantId, this.partitions)] : Array.from({ length: this.partitions }, (_, p) => p);
    const out: TransactionEvent[] = [];
    for (const p of parts) {
      for (const json of Object.values(await this.redis.hgetall(reviewKey(this.keys, p)))) {
        const ev = JSON.parse(json) as TransactionEvent;
        if (!merchantId || ev.merchant_id === merchantId) out.push(ev);
      }
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The held transaction `txId` of `merchantId`, or undefined. */
  async get(merchantId: string, txId: string): Promise<TransactionEvent | undefined> {
    const json = await this.redis.hget(reviewKey(this.keys, partitionOf(merchantId, this.partitions)), txId);
    const ev = json ? (JSON.parse(json) as TransactionEvent) : undefined;
    return ev?.merchant_id === merchantId ? ev : undefined;
  }

  /** Finds a held transaction by id alone (the operator's view): every partition's hash. */
  async find(txId: string): Promise<{ partition: number; json: string } | undefined> {
    for (let p = 0; p < this.partitions; p++) {
      const json = await this.redis.hget(reviewKey(this.keys, p), txId);
      if (json) return { partition: p, json };
    }
    return undefined;
  }

  /** Decide a held transaction; the decided event, or undefined when it is not (or no longer) held. */
  async decide(txId: string, action: ReviewAction, by: string, note?: string): Promise<TransactionEvent | undefined> {
    const held = await this.find(txId);
    if (!held) return undefined;
    const ev = JSON.parse(held.json) as TransactionEvent;
    const review = { decision: action === 'approve' ? 'approved' : 'declined', by, at: new Date().toISOString(), ...(note ? { note } : {}) } as const;
    const decided: TransactionEvent =
      action === 'approve'
        ? { ...ev, status: 'accepted', review }
        : failedEvent({ ...ev, review }, 'risk_declined', `risk: declined in review by ${by}${note ? `: ${note}` : ''}`);
    const p = held.partition;
    const fields = entryArgs({ txId: ev.id, event: JSON.stringify(decided) });
    const keys = [reviewKey(this.keys, p), decidedKey(this.keys, p, txId), this.keys.lane(this.output, p, this.lanes.laneOf(ev.type))];
    const done = await runScript(this.redis, DECIDE, keys, [txId, held.json, DECIDED_TTL_MS, ...fields]);
    return Number(done) === 1 ? decided : undefined;
  }
}
