// Retention decisions, pure: what a consumer group still needs, how far a stream may be trimmed,
// and when a group is falling far enough behind that retention cannot keep the stream small.
import { idMs, maxId, minId, nextId } from '../stream-id.ts';

/** Warn when a group's backlog passes this share of the hot window or max_len. */
export const WARN_SHARE = 0.8;

export interface GroupState {
  name: string;
  /** Delivered, not yet acknowledged. */
  pending: number;
  lastDelivered: string;
  /** Entries not yet delivered; null when Redis cannot tell (XINFO's lag after XDELs). */
  lag: number | null;
  /** Smallest pending id (XPENDING summary); undefined when pending is 0 or it raced to 0. */
  smallestPending?: string;
  /** The first entry after lastDelivered, when it was read (for age warnings). */
  firstUnread?: string;
}

export interface Retention {
  /** How long acknowledged entries stay in Redis (0: trimmed once every group acknowledged). */
  hot?: number;
  /** The older name of hot: with both, the shorter applies. */
  max_age?: number;
  max_len?: number;
  /** Cap of the whole topic's lane streams in Redis memory. */
  max_bytes?: number;
}

/** The topic's hot window (ms): the shorter of `hot` and `max_age`; undefined: no time limit. */
export function hotWindow(r: Retention): number | undefined {
  if (r.hot === undefined) return r.max_age;
  return r.max_age === undefined ? r.hot : Math.min(r.hot, r.max_age);
}

/**
 * How many entries a lane stream may keep under its topic's byte cap: the same share of its
 * entries for every stream of the topic (the cap over the topic's bytes), so the oldest go
 * everywhere alike. undefined when the topic is within its cap (or has none, or is empty).
 */
export function byteCapLen(length: number, topicBytes: number, maxBytes: number | undefined): number | undefined {
  if (maxBytes === undefined || topicBytes <= maxBytes || length === 0) return undefined;
  return Math.floor((length * maxBytes) / topicBytes);
}

/** Entries per lane stream the stream may keep: the lower of max_len and the byte cap's share. */
export function lenLimit(r: Retention, length: number, topicBytes: number): number | undefined {
  const bytes = byteCapLen(length, topicBytes, r.max_bytes);
  if (bytes === undefined) return r.max_len;
  return r.max_len === undefined ? bytes : Math.min(bytes, r.max_len);
}

/** The lowest id the group still needs; everything before it is acknowledged. */
export function groupNeeds(g: GroupState): string {
  // pending entries are never after lastDelivered, so the smallest pending one comes first
  return g.pending > 0 && g.smallestPending ? g.smallestPending : nextId(g.lastDelivered);
}

/**
 * The lowest id any group still needs. undefined (nothing is safe) when there are no groups: a
 * consumer yet to come would start from the beginning.
 */
export function safePoint(groups: readonly GroupState[]): string | undefined {
  let safe: string | undefined;
  for (const g of groups) safe = safe === undefined ? groupNeeds(g) : minId(safe, groupNeeds(g));
  return safe;
}

/**
 * XTRIM MINID threshold: entries older than the hot window or beyond the length limit (`lenCut`:
 * the id after the last excess entry), whichever removes more, but never at or past `safe`.
 * undefined: no rule.
 */
export function trimCut(safe: string, now: number, r: Retention, lenCut?: string): string | undefined {
  const hot = hotWindow(r);
  const age = hot === undefined ? undefined : minId(safe, `${Math.max(0, now - hot)}-0`);
  const len = lenCut === undefined ? undefined : minId(safe, lenCut);
  if (age === undefined) return len;
  return len === undefined ? age : maxId(age, len);
}

/** The oldest entry the group has not acknowledged (pending, else the first unread one). */
export function oldestUnacked(g: GroupState): string | undefined {
  return g.pending > 0 && g.smallestPending ? g.smallestPending : g.lag === 0 ? undefined : g.firstUnread;
}

export interface LagCheck {
  /** Age of the oldest unacknowledged entry, ms. */
  oldestAgeMs: number | null;
  /** lag + pending; null when the lag is unknown. */
  backlog: number | null;
  warn: boolean;
}

/**
 * Retention never trims what a group still needs, so a group this far behind makes the stream
 * outgrow its limits (and, much further behind, Redis memory).
 */
export function checkLag(g: GroupState, r: Retention, now: number): LagCheck {
  const oldest = oldestUnacked(g);
  const oldestAgeMs = oldest === undefined ? null : Math.max(0, now - idMs(oldest));
  const backlog = g.lag === null ? null : g.lag + g.pending;
  // a zero window (an intermediate topic) keeps whatever is in flight: that is no warning
  const hot = hotWindow(r);
  const warn =
    (hot !== undefined && hot > 0 && oldestAgeMs !== null && oldestAgeMs > WARN_SHARE * hot) ||
    (r.max_len !== undefined && backlog !== null && backlog > WARN_SHARE * r.max_len);
  return { oldestAgeMs, backlog, warn };
}
