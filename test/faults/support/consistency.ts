// The fault suite's consistency checker (design §2): every accepted id ends in exactly one place —
// a row of the transactions table, a dead-letter stream, or still pending in the pipeline (and
// pending must be 0 after a drain) — none twice, and the amounts add up. `locate` reads where
// every transaction is; `judge` compares that with what ingest accepted and returns an exact
// verdict naming the offending ids; `formatVerdict` prints it for an assertion message.
//
// Pending means: in the PEL of a stage's or sink's consumer group, not yet delivered to it (lag,
// or the whole stream while the group does not exist yet), or waiting in a stage's delay set. Optionally (`uniqueIn`), the checker also counts each transaction's copies
// in some topics: a stage that settled an entry twice (a stale consumer writing results after its
// entry was reclaimed) shows up there even when the sink's ON CONFLICT hides it in Postgres.
import type { Redis } from 'ioredis';
import type { Keys } from '../../../core/keys.ts';
import type { PgPool } from '../../../core/postgres.ts';
import type { Topology } from '../../../core/topology/schema.ts';
import { waitFor } from '../../helpers/wait.ts';

export type Expectation =
  /** Must be a row (with this status, and a failure_reason matching `reason`, when given). */
  | { place: 'row'; status?: 'succeeded' | 'failed'; reason?: RegExp }
  /** Must be dead-lettered (by this stage or sink, with this error name, when given). */
  | { place: 'dead'; stage?: string; error?: string };

export interface Accepted {
  id: string;
  /** Minor units; 0 for an entry whose amount is unknown (a poison entry appended raw). */
  amount: number;
  /** Unset: a row or a dead letter are both fine, as long as it is exactly one of them. */
  expect?: Expectation;
  /** Shown next to the id in the verdict (e.g. "refund 250 m_003"). */
  label?: string;
}

export interface RowInfo {
  amount: number;
  status: string;
  reason: string | null;
}

export interface DeadInfo {
  stage: string;
  error: string;
  message: string;
}

export interface Location {
  rows: Map<string, RowInfo[]>;
  dead: Map<string, DeadInfo[]>;
  /** tx id → where it waits ("<stream> <group> pel|lag", "<delay set>"). */
  pending: Map<string, string[]>;
  /** topic → tx id → copies, for the topics asked for in `uniqueIn`. */
  copies: Map<string, Map<string, number>>;
  /** Table totals straight from SQL (duplicates and strangers included). */
  table: { rows: number; sum: bigint };
  deadLetterEntries: number;
}

export interface LocateContext {
  redis: Redis;
  keys: Keys;
  pool: PgPool;
  topology: Topology;
}

export interface LocateOptions {
  /** Topics in which every transaction may appear at most once (no stage retries out of line into them). */
  uniqueIn?: readonly string[];
}

type StreamEntry = [string, string[]];

function field(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

async function xrangeAll(redis: Redis, key: string, from = '-'): Promise<StreamEntry[]> {
  const out: StreamEntry[] = [];
  let start = from;
  for (;;) {
    const page = (await redis.xrange(key, start, '+', 'COUNT', 5000)) as StreamEntry[];
    out.push(...page);
    if (page.length < 5000) return out;
    start = `(${page[page.length - 1]![0]}`;
  }
}

function groupsOf(reply: unknown): Map<string, string | number | null>[] {
  return (reply as (string | number | null)[][]).map((g) => {
    const m = new Map<string, string | number | null>();
    for (let i = 0; i + 1 < g.length; i += 2) m.set(String(g[i]), g[i + 1]!);
    return m;
  });
}

async function groupInfo(redis: Redis, stream: string): Promise<Map<string, string | number | null>[]> {
  try {
    return groupsOf(await redis.xinfo('GROUPS', stream));
  } catch (err) {
    if (String((err as Error).message).includes('no such key')) return [];
    throw err;
  }
}

/** topic → the stages and sinks reading it (their consumer groups are named after them). */
export function readersOf(topology: Topology): Map<string, string[]> {
  const readers = new Map<string, string[]>();
  for (const [name, c] of [...Object.entries(topology.stages), ...Object.entries(topology.sinks)]) {
    readers.set(c.input, [...(readers.get(c.input) ?? []), name]);
  }
  return readers;
}

/**
 * Entries still on their way, counted the way the checker locates them: per reading stage or
 * sink, pending + lag of its group, or the whole stream while its group does not exist yet (a
 * worker not started: nothing read yet is not "drained"), plus the stages' delay sets.
 */
export async function waiting(ctx: Pick<LocateContext, 'redis' | 'keys' | 'topology'>): Promise<number> {
  const { redis, keys, topology } = ctx;
  const partitions = Object.values(topology.topics)[0]?.partitions ?? 0;
  const streams: { key: string; readers: string[] }[] = [];
  for (const [topic, readers] of readersOf(topology)) {
    for (let p = 0; p < partitions; p++) for (const lane of topology.priorities) streams.push({ key: keys.lane(topic, p, lane.name), readers });
  }
  const multi = redis.multi();
  for (const s of streams) multi.xinfo('GROUPS', s.key).xlen(s.key);
  for (const stage of Object.keys(topology.stages)) for (let p = 0; p < partitions; p++) multi.zcard(keys.delay(stage, p));
  const res = (await multi.exec()) ?? [];
  let total = 0;
  streams.forEach((s, i) => {
    const [gErr, gVal] = res[2 * i]!;
    const length = Number(res[2 * i + 1]![1]);
    const groups = new Map((gErr ? [] : groupsOf(gVal)).map((g) => [String(g.get('name')), g]));
    for (const r of s.readers) {
      const g = groups.get(r);
      if (!g) total += length;
      else total += Number(g.get('pending') ?? 0) + (g.get('lag') === null ? length : Number(g.get('lag') ?? 0));
    }
  });
  for (const [err, n] of res.slice(2 * streams.length)) {
    if (err) throw err;
    total += Number(n);
  }
  return total;
}

/** Where every transaction of an instance is now: rows, dead letters, pending entries, topic copies. */
export async function locate(ctx: LocateContext, opts: LocateOptions = {}): Promise<Location> {
  const { redis, keys, pool, topology } = ctx;
  const partitions = Object.values(topology.topics)[0]?.partitions ?? 0;

  const rows = new Map<string, RowInfo[]>();
  const { rows: table } = await pool.query<{ id: string; amount: string; status: string; failure_reason: string | null }>(
    'SELECT id, amount::text AS amount, status, failure_reason FROM transactions',
  );
  let tableSum = 0n;
  for (const r of table) {
    push(rows, r.id, { amount: Number(r.amount), status: r.status, reason: r.failure_reason });
    tableSum += BigInt(r.amount);
  }

  const dead = new Map<string, DeadInfo[]>();
  let deadLetterEntries = 0;
  for (const stage of [...Object.keys(topology.stages), ...Object.keys(topology.sinks)]) {
    for (let p = 0; p < partitions; p++) {
      for (const [, fields] of await xrangeAll(redis, keys.deadLetter(stage, p))) {
        deadLetterEntries++;
        push(dead, field(fields, 'tx') ?? '(no tx field)', {
          stage: field(fields, 'stage') ?? stage,
          error: field(fields, 'error') ?? '',
          message: field(fields, 'message') ?? '',
        });
      }
    }
  }

  const pending = new Map<string, string[]>();
  for (const [topic, readers] of readersOf(topology)) {
    for (let p = 0; p < partitions; p++) {
      for (const lane of topology.priorities) {
        const stream = keys.lane(topic, p, lane.name);
        const groups = new Map((await groupInfo(redis, stream)).map((g) => [String(g.get('name')), g]));
        for (const name of readers) {
          const g = groups.get(name);
          if (g && Number(g.get('pending') ?? 0) > 0) {
            const pel = (await redis.xpending(stream, name, '-', '+', 1_000_000)) as [string, string, number, number][];
            for (const [id, consumer, , deliveries] of pel) {
              const e = (await redis.xrange(stream, id, id)) as StreamEntry[];
              const tx = e[0] ? (field(e[0][1], 'tx') ?? '(no tx field)') : '(trimmed)';
              push(pending, tx, `${stream} ${name} pel(${consumer}, ${deliveries} deliveries)`);
            }
          }
          // a group not created yet will read the whole stream (groups start at 0)
          const last = g ? String(g.get('last-delivered-id') ?? '0-0') : '0-0';
          for (const [, fields] of await xrangeAll(redis, stream, `(${last}`)) {
            push(pending, field(fields, 'tx') ?? '(no tx field)', `${stream} ${name} ${g ? 'lag' : 'lag (group not created yet)'}`);
          }
        }
      }
    }
  }
  for (const stage of Object.keys(topology.stages)) {
    for (let p = 0; p < partitions; p++) {
      const key = keys.delay(stage, p);
      for (const member of await redis.zrange(key, '0', '-1')) {
        let tx = '(unreadable delay member)';
        try {
          tx = field((JSON.parse(member) as { f: string[] }).f, 'tx') ?? tx;
        } catch {
          // keep the placeholder: it is reported as a stranger
        }
        push(pending, tx, key);
      }
    }
  }

  const copies = new Map<string, Map<string, number>>();
  for (const topic of opts.uniqueIn ?? []) {
    const counts = new Map<string, number>();
    for (let p = 0; p < partitions; p++) {
      for (const lane of topology.priorities) {
        for (const [, fields] of await xrangeAll(redis, keys.lane(topic, p, lane.name))) {
          const tx = field(fields, 'tx') ?? '(no tx field)';
          counts.set(tx, (counts.get(tx) ?? 0) + 1);
        }
      }
    }
    copies.set(topic, counts);
  }

  return { rows, dead, pending, copies, table: { rows: table.length, sum: tableSum }, deadLetterEntries };
}

export interface Problem {
  kind: string;
  /** The offending ids, each with what was found. */
  items: string[];
}

export interface Verdict {
  ok: boolean;
  counts: { accepted: number; rows: number; deadLettered: number; pending: number; tableRows: number; deadLetterEntries: number };
  sums: { accepted: bigint; table: bigint; rowsExpected: bigint; deadLettered: bigint; pending: bigint };
  problems: Problem[];
}

export interface JudgeOptions {
  /** true (default): anything still pending is a problem (call after a drain). */
  drained?: boolean;
}

/** Compare where transactions are with what was accepted: the exact verdict. */
export function judge(accepted: readonly Accepted[], where: Location, opts: JudgeOptions = {}): Verdict {
  const drained = opts.drained ?? true;
  const problems = new Map<string, string[]>();
  const report = (kind: string, item: string) => push(problems, kind, item);
  const byId = new Map<string, Accepted>();
  for (const a of accepted) {
    if (byId.has(a.id)) report('accepted twice by ingest (the same id answered twice)', a.id);
    byId.set(a.id, a);
  }
  const name = (id: string) => {
    const a = byId.get(id);
    return a?.label ? `${id} (${a.label})` : id;
  };
  const describeRow = (r: RowInfo) => `row ${r.status} ${r.amount}${r.reason ? ` "${r.reason}"` : ''}`;
  const describeDead = (d: DeadInfo) => `dead-lettered by ${d.stage}: ${d.error} "${d.message.slice(0, 120)}"`;

  let inRows = 0;
  let inDead = 0;
  let inPending = 0;
  const sums = { accepted: 0n, table: where.table.sum, rowsExpected: 0n, deadLettered: 0n, pending: 0n };
  for (const a of byId.values()) {
    sums.accepted += BigInt(a.amount);
    const rows = where.rows.get(a.id) ?? [];
    const dead = where.dead.get(a.id) ?? [];
    const pend = where.pending.get(a.id) ?? [];
    const places = (rows.length ? 1 : 0) + (dead.length ? 1 : 0) + (pend.length ? 1 : 0);
    const found = [...rows.map(describeRow), ...dead.map(describeDead), ...pend.map((p) => `pending in ${p}`)].join('; ');
    if (places === 0) report('lost: in no place at all', name(a.id));
    if (places > 1) report('in more than one place', `${name(a.id)}: ${found}`);
    if (rows.length > 1) report('duplicate rows', `${name(a.id)}: ${rows.length} rows`);
    if (dead.length > 1) report('dead-lettered more than once', `${name(a.id)}: ${dead.map(describeDead).join('; ')}`);
    if (pend.length > 1) report('pending more than once', `${name(a.id)}: ${pend.join('; ')}`);
    if (pend.length && drained) report('still pending after the drain', `${name(a.id)}: ${pend.join('; ')}`);
    if (rows.length) {
      inRows++;
      sums.rowsExpected += BigInt(a.amount);
      for (const r of rows)
        if (r.amount !== a.amount) report('row amount differs from the accepted amount', `${name(a.id)}: accepted ${a.amount}, row ${r.amount}`);
    }
    if (dead.length) {
      inDead++;
      sums.deadLettered += BigInt(a.amount);
    }
    if (pend.length) {
      inPending++;
      sums.pending += BigInt(a.amount);
    }
    const e = a.expect;
    if (e && places > 0) {
      if (e.place === 'row') {
        if (!rows.length) report('expected a row', `${name(a.id)}: ${found}`);
        else {
          const r = rows[0]!;
          if (e.status && r.status !== e.status) report('wrong final status', `${name(a.id)}: expected ${e.status}, ${describeRow(r)}`);
          else if (e.reason && !e.reason.test(r.reason ?? '')) report('wrong failure reason', `${name(a.id)}: expected ${e.reason}, ${describeRow(r)}`);
        }
      } else {
        if (!dead.length) report('expected a dead letter', `${name(a.id)}: ${found}`);
        else {
          const d = dead[0]!;
          if (e.stage && d.stage !== e.stage) report('dead-lettered by the wrong stage', `${name(a.id)}: expected ${e.stage}, ${describeDead(d)}`);
          else if (e.error && d.error !== e.error) report('dead-lettered with the wrong error', `${name(a.id)}: expected ${e.error}, ${describeDead(d)}`);
        }
      }
    }
  }
  for (const [id, rows] of where.rows) if (!byId.has(id)) report('rows never accepted by ingest', `${id}: ${rows.map(describeRow).join('; ')}`);
  for (const [id, dead] of where.dead) if (!byId.has(id)) report('dead letters never accepted by ingest', `${id}: ${dead.map(describeDead).join('; ')}`);
  for (const [id, pend] of where.pending) if (!byId.has(id)) report('pending entries never accepted by ingest', `${id}: ${pend.join('; ')}`);
  for (const [topic, counts] of where.copies) {
    for (const [id, n] of counts) if (n > 1) report(`more than one copy in topic ${topic} (a result written twice)`, `${name(id)}: ${n} copies`);
  }
  // the money: every row's amount counted once, the whole accepted amount in exactly one place
  if (sums.table !== sums.rowsExpected)
    report('sum of the table differs from the sum of the accepted rows', `table ${sums.table}, accepted ids found in it ${sums.rowsExpected}`);
  if (sums.rowsExpected + sums.deadLettered + sums.pending !== sums.accepted && !problems.size) {
    report('amounts do not add up', `rows ${sums.rowsExpected} + dead ${sums.deadLettered} + pending ${sums.pending} ≠ accepted ${sums.accepted}`);
  }

  return {
    ok: problems.size === 0,
    counts: {
      accepted: byId.size,
      rows: inRows,
      deadLettered: inDead,
      pending: inPending,
      tableRows: where.table.rows,
      deadLetterEntries: where.deadLetterEntries,
    },
    sums,
    problems: [...problems].map(([kind, items]) => ({ kind, items })),
  };
}

const SHOW = 20;

/** One readable block: the counts, the sums, and each problem with (up to 20 of) its ids. */
export function formatVerdict(v: Verdict, title = 'consistency'): string {
  const c = v.counts;
  const lines = [
    `${title}: ${v.ok ? 'OK' : 'FAILED'} — accepted ${c.accepted}: ${c.rows} in the table, ${c.deadLettered} dead-lettered, ${c.pending} pending ` +
      `(table rows ${c.tableRows}, dead-letter entries ${c.deadLetterEntries}); sums: accepted ${v.sums.accepted}, table ${v.sums.table}, ` +
      `dead ${v.sums.deadLettered}, pending ${v.sums.pending}`,
  ];
  for (const p of v.problems) {
    lines.push(`  ✗ ${p.kind}: ${p.items.length}`);
    for (const item of p.items.slice(0, SHOW)) lines.push(`      ${item}`);
    if (p.items.length > SHOW) lines.push(`      … and ${p.items.length - SHOW} more`);
  }
  return lines.join('\n');
}

/** Merge verdicts (e.g. delivery and money) into one. */
export function combine(...verdicts: Verdict[]): Verdict {
  const [first, ...rest] = verdicts;
  return { ...first!, ok: verdicts.every((v) => v.ok), problems: [first!, ...rest].flatMap((v) => v.problems) };
}

export interface DrainOptions extends LocateOptions {
  timeoutMs?: number;
}

/**
 * Wait until nothing is outstanding (lag, pending, delay sets), then locate and judge. A drain
 * that times out is judged too, so the verdict names what is still pending and where.
 */
export async function drainAndJudge(
  ctx: LocateContext,
  accepted: readonly Accepted[],
  opts: DrainOptions = {},
): Promise<{ verdict: Verdict; drained: boolean }> {
  let drained = true;
  try {
    await waitFor('the pipeline to drain', async () => (await waiting(ctx)) === 0, opts.timeoutMs ?? 120_000, 100);
  } catch {
    drained = false;
  }
  const where = await locate(ctx, opts);
  return { verdict: judge(accepted, where), drained };
}

/**
 * Entries each consumer holds unacknowledged right now, over every reading group of every lane
 * stream ("<group>/<consumer>" → count). A consumer name is "<host>-<--consumer id>-<loop>".
 */
export async function pendingByConsumer(ctx: Pick<LocateContext, 'redis' | 'keys' | 'topology'>): Promise<Map<string, number>> {
  const { redis, keys, topology } = ctx;
  const partitions = Object.values(topology.topics)[0]?.partitions ?? 0;
  const pipe = redis.pipeline();
  for (const [topic, readers] of readersOf(topology)) {
    for (let p = 0; p < partitions; p++) {
      for (const lane of topology.priorities) for (const r of readers) pipe.xpending(keys.lane(topic, p, lane.name), r);
    }
  }
  const out = new Map<string, number>();
  const groups: string[] = [];
  for (const [, readers] of readersOf(topology)) for (let p = 0; p < partitions; p++) for (const _ of topology.priorities) groups.push(...readers);
  ((await pipe.exec()) ?? []).forEach(([err, value], i) => {
    if (err) return; // no such stream or group yet: nothing pending there
    const consumers = ((value as unknown[])[3] ?? []) as [string, string][];
    for (const [consumer, n] of consumers) {
      const k = `${groups[i]}/${consumer}`;
      out.set(k, (out.get(k) ?? 0) + Number(n));
    }
  });
  return out;
}

/** Sum of `pendingByConsumer` over the consumers whose name contains `-<id>-` (one worker's loops). */
export function heldBy(pending: Map<string, number>, consumerId: string): number {
  let n = 0;
  for (const [k, v] of pending) if (k.includes(`-${consumerId}-`)) n += v;
  return n;
}
