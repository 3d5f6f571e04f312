// A transaction as operators look it up (any merchant): its status and a timeline from what
// Postgres and Redis still hold. Postgres: the `transactions` row (the sink's commit) and its
// ledger lines. Redis (console/scripts/tx-trail-var.lua, one partition per call): every copy in every
// topic's lane streams (an entry's id is when it got there: accepted, then each stage's output),
// retries moved back (entries carrying attempts), retries waiting in delay sets, dead letters;
// then, while it is not in Postgres, its place in its merchant's parked queues (ordered stages).
// Without the row the merchant (so the partition) is unknown: every partition is searched, each
// call bounded by `scanLimit` entries per key.
import { fieldsToMap } from '../../core/entry.ts';
import type { Keys } from '../../core/keys.ts';
import { partitionOf } from '../../core/partition.ts';
import type { PgPool } from '../../core/postgres.ts';
import { defineScripts, runScript } from '../../core/redis.ts';
import { loadScripts } from '../../core/scripts.ts';
import { slotPipeline } from '../../core/slot-pipeline.ts';
import type { RedisClient } from '../../core/redis.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { chainOf, planChains } from '../../core/topology/chains.ts';
import { readersOf } from '../../core/topology/readers.ts';
import { txIdTime } from '../../core/tx-id.ts';
import type { TransactionRowOf } from '../../core/transactions-table.ts';

const { txTrail: TX_TRAIL } = loadScripts(new URL('../scripts/', import.meta.url), ['txTrail']);

export interface TimelineStep {
  at: number;
  kind: 'accepted' | 'stage' | 'retry' | 'waiting' | 'parked' | 'dead_letter' | 'commit';
  title: string;
  detail: string;
}

export interface TransactionTrail {
  id: string;
  status: string;
  merchantId: string | undefined;
  partition: number | undefined;
  event: Record<string, unknown> | undefined;
  row: Record<string, unknown> | undefined;
  ledger: { account: string; amount: number; currency: string }[];
  steps: TimelineStep[];
}

// the row's columns the transaction page shows
const ROW_COLUMNS = `id, merchant_id, type, amount, currency, status, reference, risk_score, failure_code, failure_reason,
  ingested_at, processed_at, attempts`;
const ROW_SQL = `SELECT ${ROW_COLUMNS} FROM transactions
  WHERE id = $1 AND ingested_at >= $2::timestamptz AND ingested_at < $3::timestamptz`;
const LEDGER_SQL = 'SELECT account, amount, currency FROM ledger_entries WHERE tx_id = $1 ORDER BY account DESC';

export class TransactionTrails {
  private readonly partitions: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly pool: PgPool,
    private readonly keys: Keys,
    private readonly topology: Topology,
    private readonly scanLimit = 2_000,
    private readonly clockSkewMs = 2_000,
  ) {
    this.partitions = topology.topics[topology.ingest.topic]?.partitions ?? 0;
    defineScripts(redis, [TX_TRAIL]);
  }

  /** undefined for a malformed id or one nothing knows. */
  async find(id: string, merchantId?: string): Promise<TransactionTrail | undefined> {
    const ms = txIdTime(id);
    if (ms === undefined || ms > Date.now() + this.clockSkewMs) return undefined;
    const [rows, ledger] = await Promise.all([
      this.pool.query<TransactionRowOf<typeof ROW_COLUMNS>>(ROW_SQL, [id, new Date(ms).toISOString(), new Date(ms + 1).toISOString()]),
      this.pool.query<{ account: string; amount: string; currency: string }>(LEDGER_SQL, [id]),
    ]);
    const row = rows.rows[0];
    const merchant = (row?.merchant_id as string | undefined) ?? merchantId;
    const candidates = merchant !== undefined ? [partitionOf(merchant, this.partitions)] : Array.from({ length: this.partitions }, (_, p) => p);
    const found = (await Promise.all(candidates.map((p) => this.trail(p, id, ms)))).filter((t) => t.steps.length || t.index);
    const mine = found[0];
    if (!row && !mine) return undefined;

    const steps: TimelineStep[] = [...(mine?.steps ?? [])];
    const owner = merchant ?? (mine?.event?.merchant_id as string | undefined);
    if (!row && mine && typeof owner === 'string') steps.push(...(await this.parked(mine.partition, owner, id)));
    const accepted = steps.some((s) => s.kind === 'accepted');
    if (!accepted) steps.push({ at: ms, kind: 'accepted', title: 'accepted by ingest', detail: 'from the transaction id (its stream entry is trimmed)' });
    if (row) {
      const processed = row.processed_at instanceof Date ? row.processed_at.getTime() : ms;
      const failure = row.failure_reason || row.failure_code ? `, ${[row.failure_code, row.failure_reason].filter(Boolean).map(String).join(': ')}` : '';
      steps.push({ at: processed, kind: 'commit', title: 'sink commit', detail: `status ${String(row.status)}${failure}; ${ledger.rows.length} ledger lines` });
    }
    steps.sort((a, b) => a.at - b.at || order(a.kind) - order(b.kind));
    const status = row ? String(row.status) : mine?.index ? 'dead_lettered' : steps.some((s) => s.kind !== 'accepted') ? 'processing' : 'accepted';
    return {
      id,
      status,
      merchantId: merchant ?? (mine?.event?.merchant_id as string | undefined),
      partition: mine?.partition ?? (merchant !== undefined ? candidates[0] : undefined),
      event: mine?.event,
      row,
      ledger: ledger.rows.map((l) => ({ account: l.account, amount: Number(l.amount), currency: l.currency })),
      steps,
    };
  }

  /** Where it waits parked in an ordered stage, behind its merchant's earlier events (core/consumer/parking.ts). */
  private async parked(p: number, merchant: string, id: string): Promise<TimelineStep[]> {
    const { topology: t, keys: k } = this;
    const queues = Object.entries(t.stages)
      .filter(([, s]) => s.ordering === 'key')
      .flatMap(([stage]) => t.priorities.map((l) => ({ stage, lane: l.name, member: `${l.name}|${merchant}` })));
    const pipe = slotPipeline(this.redis);
    for (const q of queues) {
      const key = k.parkQueue(q.stage, p, q.member);
      const index = k.parked(q.stage, p, 'index');
      pipe.add(key, (x) => x.lrange(key, 0, this.scanLimit - 1).zscore(index, q.member));
    }
    const replies = await pipe.exec();
    const steps: TimelineStep[] = [];
    queues.forEach((q, i) => {
      const items = (replies[2 * i]?.[1] as string[] | null) ?? [];
      const due = replies[2 * i + 1]?.[1];
      const at = items.findIndex((item) => item.includes(`"${id}"`));
      if (at < 0) return;
      const entry = items[at]!.slice(0, items[at]!.indexOf(' '));
      const waits =
        at === 0
          ? `first of its merchant's queue, due ${due ? new Date(Number(due)).toISOString() : 'now'}`
          : `behind ${at} earlier event${at === 1 ? '' : 's'} of its merchant`;
      steps.push({ at: Number(entry.split('-')[0]) || Date.now(), kind: 'parked', title: `parked in ${q.stage}`, detail: `${q.lane} lane, ${waits}` });
    });
    return steps;
  }

  private async trail(
    p: number,
    id: string,
    ms: number,
  ): Promise<{ partition: number; steps: TimelineStep[]; index: string | undefined; event: Record<string, unknown> | undefined }> {
    const { topology: t, keys: k } = this;
    const streams: { topic: string; lane: string }[] = [];
    for (const [topic, def] of Object.entries(t.topics)) if (p < def.partitions) for (const l of t.priorities) streams.push({ topic, lane: l.name });
    const stages = Object.keys(t.stages);
    const owners = [...stages, ...Object.keys(t.sinks)];
    const keyList = [
      ...streams.map((s) => k.lane(s.topic, p, s.lane)),
      ...stages.map((s) => k.delay(s, p)),
      ...owners.map((s) => k.deadLetter(s, p)),
      k.deadLetterIndex(p),
    ];
    const reply = (await runScript(this.redis, TX_TRAIL, keyList, [
      id,
      streams.length,
      stages.length,
      owners.length,
      Math.max(0, ms - this.clockSkewMs),
      this.scanLimit,
    ])) as [string | null, unknown[]];
    const [index, hits] = reply;
    const steps: TimelineStep[] = [];
    let event: Record<string, unknown> | undefined;
    const producer = new Map(Object.entries(t.stages).map(([name, s]) => [s.output, name]));
    const chains = planChains(t);
    const readerOf = (topic: string): string | undefined => readersOf(t, topic)[0];
    for (let i = 0; i + 2 < hits.length; i += 3) {
      const n = Number(hits[i]) - 1;
      const where = String(hits[i + 1]);
      const f = Object.fromEntries(fieldsToMap(hits[i + 2] as string[])) as Record<string, string | undefined>;
      if (f.ev && !event) event = parseObject(f.ev);
      if (n < streams.length) {
        const s = streams[n]!;
        const at = Number(where.split('-')[0]);
        const attempts = f.at ? Number(f.at) : 0;
        if (attempts > 0)
          steps.push({
            at,
            kind: 'retry',
            title: `retry ${attempts} of ${readerOf(s.topic) ?? s.topic}`,
            detail: `back on ${s.topic} (${s.lane} lane), entry ${where}`,
          });
        else if (s.topic === t.ingest.topic)
          steps.push({ at, kind: 'accepted', title: 'accepted by ingest', detail: `${s.topic}, partition ${p}, ${s.lane} lane, entry ${where}` });
        else {
          const stage = producer.get(s.topic);
          const status = parseObject(f.ev ?? '')?.status;
          // a chain's stages before the last one wrote nothing: they ran in memory, settled with it
          const chained = stage === undefined ? [] : (chainOf(chains, stage)?.stages ?? [stage]);
          for (const before of chained.slice(0, -1)) {
            steps.push({ at, kind: 'stage', title: `${before} done`, detail: `in memory (chained: ${chained.join(' → ')}), settled with ${stage}` });
          }
          steps.push({
            at,
            kind: 'stage',
            title: stage ? `${stage} done` : `on ${s.topic}`,
            detail: `→ ${s.topic} (${s.lane} lane)${typeof status === 'string' ? `, status ${status}` : ''}, entry ${where}`,
          });
        }
      } else if (n < streams.length + stages.length) {
        const stage = stages[n - streams.length]!;
        steps.push({
          at: Date.now(),
          kind: 'waiting',
          title: `waiting to retry in ${stage}`,
          detail: `attempt ${f.at ?? '?'}, due ${new Date(Number(where)).toISOString()}`,
        });
      } else {
        const owner = owners[n - streams.length - stages.length]!;
        const at = Number(where.split('-')[0]);
        steps.push({
          at,
          kind: 'dead_letter',
          title: `dead-lettered by ${owner}`,
          detail: `${f.error ?? ''}: ${f.message ?? ''} (after ${f.attempts ?? '?'} attempts), dead letter ${owner}/${p}/${where}`,
        });
      }
    }
    return { partition: p, steps, index: index ?? undefined, event };
  }
}

function order(kind: TimelineStep['kind']): number {
  return ['accepted', 'stage', 'retry', 'waiting', 'parked', 'dead_letter', 'commit'].indexOf(kind);
}

function parseObject(s: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(s);
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
