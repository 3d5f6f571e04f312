// A topic's history beyond the Redis window, read back from Postgres (read-only).
//
// Only a topic a `postgres` sink reads has one: each of its entries became one `transactions` row
// that keeps the entry's id (`stream_id`); the row's merchant and type give its partition and lane
// (every stage appends to partitionOf(merchant) and the type's lane), so a row names the exact
// stream and position its entry had. Retention trims only what every group acknowledged, and the
// sink acknowledges after its commit: an entry gone from Redis has its row. What a row does not
// reproduce: occurred_at comes back as UTC (same instant, RFC 3339 with ms), a review decision
// (`review`) is not a column, and an entry the sink dead-lettered, or a second entry of a
// transaction that already had its row, has no row of its own.
import type { PgPool } from '../postgres.ts';
import { LaneMap } from '../lanes.ts';
import { partitionOf } from '../partition.ts';
import { idParts } from '../stream-id.ts';
import type { Topology } from '../topology/schema.ts';
import type { TransactionRowOf } from '../transactions-table.ts';

/** One history entry, already decoded: the row is the event, so no JSON text in between. */
export interface HistoryEntry {
  id: string;
  partition: number;
  lane: string;
  /** The entry's transaction id field. */
  tx: string;
  /** What the entry's `ev` field held (see toEvent). */
  event: Record<string, unknown>;
}

export interface HistoryFilter {
  merchantId?: string;
  type?: string;
}

export interface TapHistory {
  /** Where the history is kept, for messages. */
  readonly where: string;
  /** Fails (e.g. Postgres unreachable) before a tap starts rather than in the middle. */
  check(): Promise<void>;
  /**
   * Entries with after < id <= upTo of every stream of the topic, in id order (ties in any order),
   * at most `limit` of them, narrowed by the filter.
   */
  page(after: string, upTo: string, limit: number, filter?: HistoryFilter): Promise<HistoryEntry[]>;
}

/** The topics whose history is in Postgres: those a postgres sink reads. */
export function historyTopics(topology: Topology): string[] {
  return [...new Set(Object.values(topology.sinks).flatMap((s) => (s.type === 'postgres' ? [s.input] : [])))];
}

// every column but the sink's own (processed_at, attempts): the event the row was written from
const EVENT_COLUMNS = `t.id, t.merchant_id, t.type, t.amount, t.currency, t.status, t.reference, t.risk_score,
       t.metadata, t.occurred_at, t.ingested_at, t.stream_id, t.failure_reason, t.failure_code, t.risk_reasons,
       t.risk_rules_version`;
type Row = TransactionRowOf<typeof EVENT_COLUMNS> & { ledger: { account: string; amount: number }[] | null };

// the position's parts; the index on the ms part (migration 180) makes a range cheap
const MS = `split_part(t.stream_id, '-', 1)::bigint`;
const SEQ = `split_part(t.stream_id, '-', 2)::numeric`;
const PAGE_SQL = `
SELECT ${EVENT_COLUMNS},
       (SELECT json_agg(json_build_object('account', l.account, 'amount', l.amount) ORDER BY l.account DESC)
          FROM ledger_entries l WHERE l.tx_id = t.id) AS ledger
  FROM transactions t
 WHERE ${MS} BETWEEN $1 AND $3
   AND (${MS} > $1 OR ${SEQ} > $2::numeric)
   AND (${MS} < $3 OR ${SEQ} <= $4::numeric)
   AND ($6::text IS NULL OR t.merchant_id = $6)
   AND ($7::text IS NULL OR t.type = $7)
 ORDER BY ${MS}, ${SEQ}
 LIMIT $5`;

/** The history of `topic` in the Postgres sink's `transactions` table (undefined: none kept). */
export function postgresHistory(pool: PgPool, topology: Topology, topic: string): TapHistory | undefined {
  if (!historyTopics(topology).includes(topic)) return undefined;
  const partitions = topology.topics[topic]!.partitions;
  const lanes = new LaneMap(topology.priorities);
  return {
    where: 'Postgres (the transactions table)',
    async check() {
      await pool.query('SELECT 1 FROM transactions LIMIT 0');
    },
    async page(after, upTo, limit, filter) {
      const [afterMs, afterSeq] = idParts(after);
      const [upToMs, upToSeq] = idParts(upTo);
      const { rows } = await pool.query<Row>(PAGE_SQL, [
        afterMs.toString(),
        afterSeq.toString(),
        upToMs.toString(),
        upToSeq.toString(),
        limit,
        filter?.merchantId ?? null,
        filter?.type ?? null,
      ]);
      return rows.map((r) => ({
        id: r.stream_id,
        partition: partitionOf(r.merchant_id, partitions),
        lane: lanes.laneOf(r.type),
        tx: r.id,
        event: toEvent(r),
      }));
    },
  };
}

/** The event the row was written from (the fields a row keeps; see the header). */
function toEvent(r: Row): Record<string, unknown> {
  const ev: Record<string, unknown> = { id: r.id, merchant_id: r.merchant_id, type: r.type, amount: Number(r.amount), currency: r.currency };
  if (r.reference !== null) ev.reference = r.reference;
  if (r.occurred_at !== null) ev.occurred_at = r.occurred_at.toISOString();
  if (r.metadata !== null) ev.metadata = r.metadata;
  ev.ingested_at = r.ingested_at.getTime();
  ev.status = r.status;
  if (r.risk_score !== null) ev.risk_score = r.risk_score;
  if (r.risk_reasons !== null) ev.risk_reasons = r.risk_reasons;
  if (r.risk_rules_version !== null) ev.risk_rules_version = r.risk_rules_version;
  if (r.failure_code !== null) ev.failure_code = r.failure_code;
  if (r.failure_reason !== null) ev.failure_reason = r.failure_reason;
  if (r.ledger !== null) ev.ledger = r.ledger;
  return ev;
}
