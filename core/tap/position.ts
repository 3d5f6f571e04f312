// Where a tap starts and ends, and the resume cursor.
//
// A position is "the last entry id already seen" on one lane stream: reading resumes strictly
// after it (XRANGE "(id", XREAD id). Starts map onto positions: earliest → 0-0, a time T →
// just before T-0, an entry id X → just before X, now → each stream's last id at that moment.
//
// The cursor is one position PER STREAM, not one id for the whole topic. Entry ids are time-based
// but each stream numbers its own: two partitions routinely hold the same `<ms>-0`, and an entry
// appended to one stream can carry a smaller id than one already delivered from another (same ms,
// a clock step back, another shard's clock). A single "last id" would then skip it (or repeat a
// tie); a per-stream map resumes exactly whatever order entries arrive in.
//
// Encoding: `base64url(JSON)` of { v: 1, t: topic, b: base, s: { "<partition>.<lane>": pos } },
// where `b` is the most common position (streams at `b` are left out) and each listed position is
// written relative to b's milliseconds ("<ms - b.ms>-<seq>"): ~20 bytes per moving stream, about
// 1 KB for 32 busy streams, a few dozen bytes for a quiet or filtered tap.
import { TapInputError } from '../errors.ts';
import { parseDuration } from '../duration.ts';
import { canonicalId, compareIds, idBefore, idParts, isEntryId, MAX_SEQ } from '../stream-id.ts';

export type TapStart =
  | { kind: 'now' }
  | { kind: 'earliest' }
  /** Entries from this unix ms on (inclusive). */
  | { kind: 'time'; ms: number }
  /** Entries from this exact id on (inclusive). */
  | { kind: 'id'; id: string };

export type TapEnd =
  /** The streams' last entries when the tap opens. */
  | { kind: 'now' }
  /** Entries up to and including this unix ms. */
  | { kind: 'time'; ms: number }
  /** Entries up to and including this id. */
  | { kind: 'id'; id: string };

const UNIX_MS = /^\d{1,15}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * `now`, `earliest`, a unix time in ms, an entry id (`<ms>-<seq>`), an RFC 3339 time, or a
 * duration back from `nowMs` (10m, 1h, 7d).
 */
export function parseTapStart(value: string, nowMs = Date.now(), what = 'from'): TapStart {
  const s = value.trim();
  if (s === 'now' || s === '$') return { kind: 'now' };
  if (s === 'earliest' || s === '0' || s === '-') return { kind: 'earliest' };
  const t = parseInstant(s, nowMs);
  if (t !== undefined) return t;
  throw new TapInputError(
    `${what} "${truncate(value)}": expected now, earliest, a unix time in ms, an entry id like 1717000000000-0, an RFC 3339 time or a duration like 10m`,
  );
}

/** Like parseTapStart, without `earliest`; `now` means the streams' last entries at open. */
export function parseTapEnd(value: string, nowMs = Date.now(), what = 'to'): TapEnd {
  const s = value.trim();
  if (s === 'now' || s === '+') return { kind: 'now' };
  const t = parseInstant(s, nowMs);
  if (t !== undefined) return t;
  throw new TapInputError(
    `${what} "${truncate(value)}": expected now, a unix time in ms, an entry id like 1717000000000-0, an RFC 3339 time or a duration like 10m`,
  );
}

function parseInstant(s: string, nowMs: number): { kind: 'time'; ms: number } | { kind: 'id'; id: string } | undefined {
  if (isEntryId(s)) return { kind: 'id', id: canonicalId(s) };
  if (UNIX_MS.test(s)) return { kind: 'time', ms: Number(s) };
  const back = parseDuration(s);
  if (back !== undefined) return { kind: 'time', ms: Math.max(0, nowMs - back) };
  if (RFC3339.test(s)) {
    const ms = Date.parse(s);
    if (Number.isFinite(ms) && ms >= 0) return { kind: 'time', ms };
  }
  return undefined;
}

/** The position a start means (for a start other than `now`, which depends on each stream). */
export function startPosition(start: Exclude<TapStart, { kind: 'now' }>): string {
  if (start.kind === 'earliest') return '0-0';
  if (start.kind === 'time') return idBefore(`${start.ms}-0`);
  return idBefore(start.id);
}

/** The first id a start includes (0-0 for earliest). */
export function startId(start: Exclude<TapStart, { kind: 'now' }>): string {
  if (start.kind === 'earliest') return '0-0';
  if (start.kind === 'time') return `${start.ms}-0`;
  return start.id;
}

/** The last id an end includes (for an end other than `now`). */
export function endId(end: Exclude<TapEnd, { kind: 'now' }>): string {
  return end.kind === 'time' ? `${end.ms}-${MAX_SEQ}` : end.id;
}

/** One lane stream of a topic, as the cursor names it. */
export interface StreamSlot {
  partition: number;
  lane: string;
}

const slotName = (s: StreamSlot): string => `${s.partition}.${s.lane}`;
const SLOT = /^(\d{1,4})\.([a-z][a-z0-9_-]{0,47})$/;
const REL = /^(-?\d{1,20})-(\d{1,20})$/;

/** Encode positions (one per slot, same order) as a cursor. */
export function encodeCursor(topic: string, slots: readonly StreamSlot[], positions: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const p of positions) counts.set(p, (counts.get(p) ?? 0) + 1);
  let base = positions[0] ?? '0-0';
  for (const [p, n] of counts) {
    const best = counts.get(base)!;
    if (n > best || (n === best && compareIds(p, base) < 0)) base = p;
  }
  const [baseMs] = idParts(base);
  const s: Record<string, string> = {};
  slots.forEach((slot, i) => {
    const p = positions[i]!;
    if (p === base) return;
    const [ms, seq] = idParts(p);
    s[slotName(slot)] = `${ms - baseMs}-${seq}`;
  });
  return Buffer.from(JSON.stringify({ v: 1, t: topic, b: base, s }), 'utf8').toString('base64url');
}

/** Positions (one per slot, same order) from a cursor of this topic. */
export function decodeCursor(cursor: string, topic: string, slots: readonly StreamSlot[]): string[] {
  const bad = (why: string) => new TapInputError(`cursor "${truncate(cursor)}" is not valid: ${why}`);
  if (cursor.length > 16_384 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad('expected a cursor from a tap event id');
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad('expected a cursor from a tap event id');
  }
  if (typeof doc !== 'object' || doc === null) throw bad('expected a cursor from a tap event id');
  const { v, t, b, s } = doc as Record<string, unknown>;
  if (v !== 1) throw bad('unknown version');
  if (t !== topic) throw bad(`it belongs to topic "${String(t)}", not "${topic}"`);
  if (typeof b !== 'string' || !isEntryId(b)) throw bad('no base position');
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw bad('no positions');
  const base = canonicalId(b);
  const [baseMs] = idParts(base);
  const given = new Map<string, string>();
  for (const [k, rel] of Object.entries(s as Record<string, unknown>)) {
    const r = typeof rel === 'string' ? REL.exec(rel) : null;
    if (!SLOT.test(k) || !r) throw bad(`bad position for ${k}`);
    const ms = baseMs + BigInt(r[1]!);
    const pos = `${ms}-${r[2]!}`;
    if (ms < 0n || !isEntryId(pos)) throw bad(`bad position for ${k}`);
    given.set(k, pos);
  }
  // streams the cursor does not name (e.g. a lane added since) resume from the base
  return slots.map((slot) => given.get(slotName(slot)) ?? base);
}

function truncate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}
