// Listing dead letters across every stage's streams in every partition, oldest first, a page at
// a time (`rill dlq list`, the console's dead-letter view).
import { decodeDeadLetter } from './record.ts';
import type { DeadLetter, StoredDeadLetter } from './record.ts';
import type { DeadLetterScope } from './scope.ts';
import { slotPipeline } from '../slot-pipeline.ts';
import { compareIds, idMs } from '../stream-id.ts';

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

interface MergeStream {
  stage: string;
  partition: number;
  key: string;
  /** Where the next read starts (exclusive after the first). */
  from: string;
  /** Read, not yet merged. */
  buf: DeadLetter[];
  /** The last read came back short: nothing more in this stream. */
  done: boolean;
}

export async function listDeadLetters(scope: DeadLetterScope, filter: ListFilter = {}): Promise<DeadLetterList> {
  const limit = filter.limit ?? 100;
  const cursor = filter.after === undefined ? undefined : scope.parseId(filter.after);
  const since = filter.since === undefined ? undefined : Math.max(0, Math.floor(filter.since));
  // a page after `cursor` starts at its entry id, inclusive: another stream may hold the very
  // same id (it sorts after the cursor by stage and partition); the cursor itself is dropped below
  let start = since === undefined ? '-' : String(since);
  if (cursor && (since === undefined || idMs(cursor.entryId) >= since)) start = cursor.entryId;
  const streams: MergeStream[] = scope.partitionList(scope.selectStages(filter.stage)).flatMap((p) =>
    scope
      .selectStages(filter.stage)
      .filter((stage) => p < scope.partitions(stage))
      .map((stage) => ({ stage, partition: p, key: scope.keys.deadLetter(stage, p), from: start, buf: [], done: false })),
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
    const pipe = slotPipeline(scope.redis);
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
      const page = raw as StoredDeadLetter[];
      if (first) total += Number(replies[at++]![1]);
      for (const r of page) {
        const d = decodeDeadLetter(st.stage, st.partition, r);
        if (!cursor || byTime(d, cursor) > 0) st.buf.push(d);
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
      out.push(best.buf.shift()!);
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

export async function getDeadLetter(scope: DeadLetterScope, id: string): Promise<DeadLetter | undefined> {
  const { stage, partition, entryId } = scope.parseId(id);
  const found = (await scope.redis.xrange(scope.keys.deadLetter(stage, partition), entryId, entryId)) as StoredDeadLetter[];
  return found[0] ? decodeDeadLetter(stage, partition, found[0]) : undefined;
}

type Ordered = Pick<DeadLetter, 'entryId' | 'stage' | 'partition'>;

/** byTime of two streams' next entries. */
function before(a: MergeStream, b: MergeStream): boolean {
  return byTime(a.buf[0]!, b.buf[0]!) < 0;
}

/** Oldest first; the same id in two streams by stage, then partition. Ids as Redis writes them (compareIds parses none). */
function byTime(a: Ordered, b: Ordered): number {
  return compareIds(a.entryId, b.entryId) || a.stage.localeCompare(b.stage) || a.partition - b.partition;
}
