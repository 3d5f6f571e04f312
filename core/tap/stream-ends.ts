// What XINFO STREAM says about a stream's ends, and what that means for a reader at a position:
// were entries after it trimmed (read-only; used by the tap and by replay).
import type { Redis } from 'ioredis';
import { slotPipeline } from '../slot-pipeline.ts';
import { compareIds, idBefore } from '../stream-id.ts';

export interface StreamEnds {
  /** The oldest entry Redis still holds (undefined: none). */
  first: string | undefined;
  last: string;
  /** Entries ever removed (trimmed or deleted); unknown (Redis < 7) counts as some. */
  removed: number;
}

/**
 * The last id a history read must cover after `pos` (undefined: none). `firstRead` is the first id
 * a read returned, `ends` XINFO taken after that read: a stream whose first entry is still at or
 * before `pos` lost nothing after it; otherwise what lies between `pos` and what Redis returned
 * (or holds) was trimmed, provided anything was ever removed.
 */
export function gapUpTo(pos: string, firstRead: string | undefined, ends: StreamEnds): string | undefined {
  if (ends.removed <= 0) return undefined;
  if (ends.first !== undefined && compareIds(ends.first, pos) <= 0) return undefined;
  const upTo = firstRead !== undefined ? idBefore(firstRead) : ends.first !== undefined ? idBefore(ends.first) : ends.last;
  return compareIds(upTo, pos) > 0 ? upTo : undefined;
}

/** XINFO STREAM of each key, in order (a stream that does not exist: empty, nothing removed). */
export async function streamEnds(redis: Redis, keys: readonly string[]): Promise<StreamEnds[]> {
  const pipe = slotPipeline(redis);
  for (const k of keys) pipe.add(k, (q) => q.xinfo('STREAM', k));
  const res = await pipe.exec();
  return keys.map((_, i) => toEnds(res[i] ?? [new Error('no reply'), null]));
}

export function toEnds([err, value]: [Error | null, unknown]): StreamEnds {
  if (err) {
    if (/no such key/i.test(err.message)) return { first: undefined, last: '0-0', removed: 0 };
    throw err;
  }
  const info = value as unknown[];
  let first: string | undefined;
  let last = '0-0';
  let added: number | undefined;
  let length = 0;
  for (let j = 0; j + 1 < info.length; j += 2) {
    const k = info[j];
    const v = info[j + 1];
    if (k === 'first-entry') first = Array.isArray(v) ? String(v[0]) : undefined;
    else if (k === 'last-generated-id') last = String(v);
    else if (k === 'entries-added') added = Number(v);
    else if (k === 'length') length = Number(v);
  }
  return { first, last, removed: added === undefined ? 1 : added - length };
}
