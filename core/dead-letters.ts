// Dead letters, as operators manage them (`rill dlq`): list, show, redrive, purge, across every
// stage's and sink's dead-letter streams in every partition. A dead letter's public id is
// `<stage>/<partition>/<entry id>`. Every pipeline holds one partition's keys only (one hash
// tag, one Redis Cluster slot); partitions run side by side.
import { F_EVENT, F_TRACE, F_TX } from './entry.ts';
import { ConfigError } from './errors.ts';
import type { Keys } from './keys.ts';
import { LaneMap } from './lanes.ts';
import { defineScripts, runScript } from './redis.ts';
import type { RedisClient, RedisPipeline, ScriptSource } from './redis.ts';
import { coreScript } from './scripts.ts';
import { slotPipeline } from './slot-pipeline.ts';
import type { Topology } from './topology/schema.ts';

export const REDRIVE_SCRIPT: ScriptSource = coreScript('redrive');

export interface DeadLetter {
  /** `<stage>/<partition>/<entry id>`. */
  id: string;
  stage: string;
  partition: number;
  /** Entry id in the dead-letter stream (its time is when it was dead-lettered). */
  entryId: string;
  tx: string;
  /** The event as JSON, as it was when it failed. */
  event: string;
  traceparent?: string;
  error: string;
  message: string;
  attempts: number;
  originStream: string;
  originId: string;
  firstFailedAt: number;
  lastFailedAt: number;
  /** Every stored field, including any this version does not know. */
  fields: Record<string, string>;
}

export interface ListFilter {
  stage?: string;
  /** Only dead letters added at or after this time (unix ms). */
  since?: number;
  /** At most this many, oldest first (default 100). */
  limit?: number;
  /** Only those listed after this dead letter (its id): the next page after a page ending with it. */
  after?: string;
}

export interface DeadLetterList {
  entries: DeadLetter[];
  /** Dead letters matching the filter, when cheap to know (no `since`: the stream lengths). */
  total?: number;
  /** More match than were returned. */
  more: boolean;
}

export type RedriveSelection = { ids: readonly string[] } | { all: true; stage?: string; since?: number };

export interface RedriveResult {
  /** Redriven now (or, on a dry run, that would be). */
  redriven: number;
  /** Ids asked for that are not (or no longer) in a dead-letter stream. */
  missing: string[];
  /** Dead letters Redis refused to redrive (no event in them); they stay where they are. */
  failed: { id: string; error: string }[];
}

type RawEntry = [string, string[]];

interface MergeStream {
  stage: string;
  p: number;
  key: string;
  /** Where the next read starts (exclusive after the first). */
  from: string;
  /** Read, not yet merged; with the entry id's parts, parsed once. */
  buf: { d: DeadLetter; ms: number; seq: number }[];
  /** The last read came back short: nothing more in this stream. */
  done: boolean;
}

const ENTRY_ID = /^\d+-\d+$/;
const PAGE = 500;

export class DeadLetters {
  private readonly lanes: LaneMap;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly topology: Topology,
  ) {
    this.lanes = new LaneMap(topology.priorities);
    defineScripts(redis, [REDRIVE_SCRIPT]);
  }

  /** Every stage and sink: each has dead-letter streams named after it. */
  stages(): string[] {
    return [...Object.keys(this.topology.stages), ...Object.keys(this.topology.sinks)];
  }

  /** `stage` checked against the topology; all stages when undefined. */
  selectStages(stage?: string): string[] {
    if (stage === undefined) return this.stages();
    if (!this.inputOf(stage)) throw new ConfigError(`no stage or sink named "${stage}" in the topology (have: ${this.stages().join(', ')})`);
    return [stage];
  }

  parseId(id: string): { stage: string; partition: number; entryId: string } {
    const parts = id.split('/');
    const [stage, p, entryId] = parts;
    const partition = Number(p);
    if (parts.length !== 3 || !stage || !/^\d+$/.test(p ?? '') || !ENTRY_ID.test(entryId ?? '')) {
      throw new ConfigError(`bad dead-letter id "${id}": expected <stage>/<partition>/<entry id>, e.g. validate/3/1717000000000-0`);
    }
    this.selectStages(stage);
    if (partition < 0 || partition >= this.partitions(stage)) throw new ConfigError(`bad dead-letter id "${id}": no partition ${partition}`);
    return { stage, partition, entryId: entryId! };
  }

  async list(filter: ListFilter = {}): Promise<DeadLetterList> {
    const limit = filter.limit ?? 100;
    const cursor = filter.after === undefined ? undefined : this.parseId(filter.after);
    const since = filter.since === undefined ? undefined : Math.max(0, Math.floor(filter.since));
    // a page after `cursor` starts at its entry id, inclusive: another stream may hold the very
    // same id (it sorts after the cursor by stage and partition); the cursor itself is dropped below
    let start = since === undefined ? '-' : String(since);
    if (cursor && (since === undefined || Number(cursor.entryId.split('-')[0]) >= since)) start = cursor.entryId;
    const streams: MergeStream[] = this.partitionList(this.selectStages(filter.stage)).flatMap((p) =>
      this.selectStages(filter.stage)
        .filter((stage) => p < this.partitions(stage))
        .map((stage) => ({ stage, p, key: this.keys.deadLetter(stage, p), from: start, buf: [], done: false })),
    );
    // a k-way merge of the streams, oldest first: each is read a few entries at a time (about
    // twice its fair share of what the page still needs) and read again only when its buffer runs
    // dry before the page is full, so 64 partitions do not cost 64 full pages. A refill also tops
    // up every other stream running low: streams tend to run dry together.
    const want = limit + 1; // one more tells whether more match than are shown
    const out: DeadLetter[] = [];
    let total = 0;
    let refill = streams;
    let first = true;
    let ask = Math.min(limit + 2, Math.max(8, Math.ceil((2 * (limit + 2)) / Math.max(1, streams.length))));
    while (refill.length) {
      const pipe = slotPipeline(this.redis);
      for (const st of refill) {
        pipe.add(st.key, (x) => {
          x.xrange(st.key, st.from, '+', 'COUNT', ask);
          if (first) x.xlen(st.key);
        });
      }
      const replies = await pipe.exec();
      let at = 0;
      for (const st of refill) {
        const [err, raw] = replies[at++]!;
        if (err) throw err;
        const page = raw as RawEntry[];
        if (first) total += Number(replies[at++]![1]);
        for (const r of page) {
          const d = this.decode(st.stage, st.p, r);
          const [ms, seq] = r[0].split('-').map(Number) as [number, number];
          if (!cursor || byTime(d, cursor) > 0) st.buf.push({ d, ms, seq });
        }
        st.done = page.length < ask;
        if (page.length) st.from = `(${page[page.length - 1]![0]}`;
      }
      first = false;
      refill = [];
      let live = streams.filter((st) => st.buf.length || !st.done);
      while (out.length < want) {
        let best: MergeStream | undefined;
        for (const st of live) {
          if (!st.buf.length) {
            if (!st.done) refill.push(st);
          } else if (!best || before(st, best)) best = st;
        }
        if (refill.length || !best) break; // the oldest may be in a stream not read far enough yet
        out.push(best.buf.shift()!.d);
        if (!best.buf.length && best.done) live = live.filter((st) => st !== best);
      }
      if (refill.length) {
        ask = Math.min(limit + 2, Math.max(8, Math.ceil((2 * (want - out.length)) / Math.max(1, live.length))));
        refill = live.filter((st) => !st.done && st.buf.length < ask / 2);
      }
      if (out.length >= want) break;
    }
    return {
      entries: out.slice(0, limit),
      total: filter.since === undefined ? total : undefined,
      more: out.length > limit,
    };
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    const { stage, partition, entryId } = this.parseId(id);
    const found = (await this.redis.xrange(this.keys.deadLetter(stage, partition), entryId, entryId)) as RawEntry[];
    return found[0] ? this.decode(stage, partition, found[0]) : undefined;
  }

  /**
   * Put dead letters back on the stream they came from, keeping their transaction ids. `all`
   * takes the dead letters present when it starts; ones that fail again and come back are not
   * chased.
   */
  async redrive(sel: RedriveSelection, opts: { dryRun?: boolean } = {}): Promise<RedriveResult> {
    const dryRun = opts.dryRun ?? false;
    // filled in place by the partitions' tasks (increments after each await, never across one)
    const res: RedriveResult = { redriven: 0, missing: [], failed: [] };
    if ('ids' in sel) {
      await this.redriveIds(sel.ids, dryRun, res);
      return res;
    }
    const stages = this.selectStages(sel.stage);
    const start = sel.since === undefined ? '-' : String(Math.max(0, Math.floor(sel.since)));
    await Promise.all(
      this.partitionList(stages).map(async (p) => {
        for (const stage of stages) if (p < this.partitions(stage)) await this.redriveStream(stage, p, start, dryRun, res);
      }),
    );
    return res;
  }

  /** Delete dead letters for good (these ids, or all of a stage, or all); returns how many. */
  async purge(filter: { stage?: string; ids?: readonly string[] } = {}): Promise<number> {
    if (filter.ids) return this.purgeIds(filter.ids);
    const perPartition = await this.eachPartition(this.selectStages(filter.stage), (pipe, stage, p) => {
      // XTRIM MAXLEN 0 deletes and counts in one atomic command
      pipe.xtrim(this.keys.deadLetter(stage, p), 'MAXLEN', 0);
    });
    let n = 0;
    for (const { calls } of perPartition) for (const { replies } of calls) n += Number(replies[0]);
    return n;
  }

  private async purgeIds(ids: readonly string[]): Promise<number> {
    const byPartition = new Map<number, { stage: string; entryId: string }[]>();
    for (const id of new Set(ids)) {
      const { stage, partition, entryId } = this.parseId(id);
      byPartition.get(partition)?.push({ stage, entryId }) ?? byPartition.set(partition, [{ stage, entryId }]);
    }
    const counts = await Promise.all(
      [...byPartition].map(async ([p, wanted]) => {
        const pipe = this.redis.pipeline();
        for (const w of wanted) pipe.xdel(this.keys.deadLetter(w.stage, p), w.entryId);
        return (await execAll(pipe)).reduce((n: number, r) => n + Number(r), 0);
      }),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  private async redriveIds(ids: readonly string[], dryRun: boolean, res: RedriveResult): Promise<void> {
    const byPartition = new Map<number, { id: string; stage: string; entryId: string }[]>();
    for (const id of new Set(ids)) {
      const { stage, partition, entryId } = this.parseId(id);
      byPartition.get(partition)?.push({ id, stage, entryId }) ?? byPartition.set(partition, [{ id, stage, entryId }]);
    }
    await Promise.all(
      [...byPartition].map(async ([p, wanted]) => {
        const read = this.redis.pipeline();
        for (const w of wanted) read.xrange(this.keys.deadLetter(w.stage, p), w.entryId, w.entryId);
        const found = await execAll(read);
        const present: { stage: string; raw: RawEntry }[] = [];
        found.forEach((reply, i) => {
          const raw = (reply as RawEntry[])[0];
          if (raw) present.push({ stage: wanted[i]!.stage, raw });
          else res.missing.push(wanted[i]!.id);
        });
        if (dryRun) res.redriven += present.length;
        else await this.redriveEntries(p, present, res, true);
      }),
    );
  }

  /** One stream, page by page, up to the last entry present when it starts. */
  private async redriveStream(stage: string, p: number, start: string, dryRun: boolean, res: RedriveResult): Promise<void> {
    const key = this.keys.deadLetter(stage, p);
    const last = (await this.redis.xrevrange(key, '+', '-', 'COUNT', 1)) as RawEntry[];
    if (!last[0]) return;
    const end = last[0][0];
    let from = start;
    for (;;) {
      const page = (await this.redis.xrange(key, from, end, 'COUNT', PAGE)) as RawEntry[];
      if (dryRun) res.redriven += page.length;
      else
        await this.redriveEntries(
          p,
          page.map((raw) => ({ stage, raw })),
          res,
          false,
        );
      if (page.length < PAGE) return;
      from = `(${page[page.length - 1]![0]}`;
    }
  }

  /**
   * One pipeline of redrive scripts for one partition. An entry gone meanwhile (another redrive,
   * a purge) counts as missing when it was asked for by id; a refused one as failed.
   */
  private async redriveEntries(p: number, entries: readonly { stage: string; raw: RawEntry }[], res: RedriveResult, byId: boolean): Promise<void> {
    if (!entries.length) return;
    const pipe = this.redis.pipeline();
    for (const { stage, raw } of entries) {
      void runScript(pipe, REDRIVE_SCRIPT, [this.keys.deadLetter(stage, p), this.originOf(stage, p, raw), this.keys.deadLetterIndex(p)], [raw[0]]);
    }
    const replies = (await pipe.exec()) ?? [];
    replies.forEach(([err, moved], i) => {
      const id = `${entries[i]!.stage}/${p}/${entries[i]!.raw[0]}`;
      if (err) res.failed.push({ id, error: err.message });
      else if (moved) res.redriven++;
      else if (byId) res.missing.push(id);
    });
  }

  /**
   * The stream a dead letter goes back to: its recorded origin when that is one of its stage's
   * input lanes in this partition (the lanes may have been renamed since), else the lane its
   * event type maps to now.
   */
  private originOf(stage: string, p: number, raw: RawEntry): string {
    const input = this.inputOf(stage)!;
    const fields = toRecord(raw[1]);
    const recorded = fields.origin_stream;
    if (recorded && this.topology.priorities.some((l) => this.keys.lane(input, p, l.name) === recorded)) return recorded;
    let type = '';
    try {
      type = String((JSON.parse(fields[F_EVENT] ?? '{}') as { type?: unknown }).type ?? '');
    } catch {
      // unreadable body: the lowest lane; the stage will dead-letter it again with the reason
    }
    return this.keys.lane(input, p, this.lanes.laneOf(type));
  }

  private inputOf(stage: string): string | undefined {
    return this.topology.stages[stage]?.input ?? this.topology.sinks[stage]?.input;
  }

  private partitions(stage: string): number {
    return this.topology.topics[this.inputOf(stage)!]?.partitions ?? 0;
  }

  private partitionList(stages: readonly string[]): number[] {
    const n = Math.max(0, ...stages.map((s) => this.partitions(s)));
    return Array.from({ length: n }, (_, i) => i);
  }

  /** Queue `add`'s commands per stage in one pipeline per partition; replies grouped by stage. */
  private async eachPartition(
    stages: readonly string[],
    add: (pipe: RedisPipeline, stage: string, partition: number) => void,
  ): Promise<{ partition: number; calls: { stage: string; replies: unknown[] }[] }[]> {
    return Promise.all(
      this.partitionList(stages).map(async (partition) => {
        const pipe = this.redis.pipeline();
        const calls: { stage: string; count: number }[] = [];
        for (const stage of stages) {
          if (partition >= this.partitions(stage)) continue;
          const before = pipe.length;
          add(pipe, stage, partition);
          calls.push({ stage, count: pipe.length - before });
        }
        const replies = await execAll(pipe);
        let at = 0;
        return {
          partition,
          calls: calls.map((c) => ({ stage: c.stage, replies: replies.slice(at, (at += c.count)) })),
        };
      }),
    );
  }

  private decode(stage: string, partition: number, [entryId, raw]: RawEntry): DeadLetter {
    const f = toRecord(raw);
    const at = Number(entryId.split('-')[0]);
    const num = (v: string | undefined, fallback: number) => (v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : fallback);
    return {
      id: `${stage}/${partition}/${entryId}`,
      stage,
      partition,
      entryId,
      tx: f[F_TX] ?? '',
      event: f[F_EVENT] ?? '',
      traceparent: f[F_TRACE],
      error: f.error ?? '',
      message: f.message ?? '',
      attempts: num(f.attempts, 0),
      originStream: f.origin_stream ?? '',
      originId: f.origin_id ?? '',
      firstFailedAt: num(f.first_failed_at, at),
      lastFailedAt: num(f.last_failed_at, at),
      fields: f,
    };
  }
}

function toRecord(raw: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) out[raw[i]!] = raw[i + 1]!;
  return out;
}

type Ordered = Pick<DeadLetter, 'entryId' | 'stage' | 'partition'>;

/** byTime of two streams' next entries, on the parsed id. */
function before(a: MergeStream, b: MergeStream): boolean {
  const x = a.buf[0]!;
  const y = b.buf[0]!;
  return (x.ms - y.ms || x.seq - y.seq || a.stage.localeCompare(b.stage) || a.p - b.p) < 0;
}

function byTime(a: Ordered, b: Ordered): number {
  const [am, as] = a.entryId.split('-').map(Number) as [number, number];
  const [bm, bs] = b.entryId.split('-').map(Number) as [number, number];
  return am - bm || as - bs || a.stage.localeCompare(b.stage) || a.partition - b.partition;
}

async function execAll(pipe: RedisPipeline): Promise<unknown[]> {
  const res = (await pipe.exec()) ?? [];
  return res.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
