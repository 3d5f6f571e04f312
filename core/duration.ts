import { ConfigError } from './errors.ts';
// Durations in topology.yaml: an integer of milliseconds, or a string like "250ms", "30s", "5m", "24h", "7d".
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
export const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const m = DURATION_PATTERN.exec(value.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** A point in time given as a duration back from `now` (10m, 24h), unix ms, or RFC 3339 (--since, the console's filters). */
export function parseSince(v: string, now: number, what = '--since'): number {
  const s = v.trim();
  const back = parseDuration(s);
  if (back !== undefined) return now - back;
  if (/^\d+$/.test(s)) return Number(s);
  if (/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/.test(s)) {
    const t = Date.parse(s);
    if (Number.isFinite(t)) return t;
  }
  throw new ConfigError(`${what} "${v}": expected a duration like 10m or 24h, a unix time in ms, or an RFC 3339 time`);
}
