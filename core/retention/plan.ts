// Retention decisions, pure: what a consumer group still needs, how far a stream may be trimmed,
// and when a group is falling far enough behind that retention cannot keep the stream small.
import { idMs, maxId, minId, nextId } from '../stream-id.ts';

/** Warn when a group's backlog passes this share of max_age or max_len. */
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
  max_age?: number;
  max_len?: number;
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
 * XTRIM MINID threshold: entries older than max_age or beyond max_len (`lenCut`: the id after the
 * last excess entry), whichever removes more, but never at or past `safe`. undefined: no rule.
 */
export function trimCut(safe: string, now: number, r: Retention, lenCut?: string): string | undefined {
  const age = r.max_age === undefined ? undefined : minId(safe, `${Math.max(0, now - r.max_age)}-0`);
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
  const warn =
    (r.max_age !== undefined && oldestAgeMs !== null && oldestAgeMs > WARN_SHARE * r.max_age) ||
    (r.max_len !== undefined && backlog !== null && backlog > WARN_SHARE * r.max_len);
  return { oldestAgeMs, backlog, warn };
}
