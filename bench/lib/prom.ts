// Scraping a Rill process's /metrics (Prometheus text) and reading counters and histograms from it.
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[4]) });
  }
  return out;
}

export async function scrape(url: string): Promise<Sample[]> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return parseProm(await res.text());
  } catch {
    return [];
  }
}

/** Sum of a metric's samples whose labels include `match`. */
export function sum(samples: readonly Sample[], name: string, match: Record<string, string> = {}): number {
  let n = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) n += s.value;
  }
  return n;
}

/** Counter value by one label, e.g. events per stage. */
export function byLabel(samples: readonly Sample[], name: string, label: string, match: Record<string, string> = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    const key = s.labels[label] ?? '';
    out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}

/**
 * A quantile of a histogram's growth between two scrapes (bucket counts, linear within a bucket),
 * in the histogram's unit. Undefined when nothing was observed in between.
 */
export function histogramQuantile(
  before: readonly Sample[],
  after: readonly Sample[],
  name: string,
  q: number,
  match: Record<string, string> = {},
): number | undefined {
  const buckets = (samples: readonly Sample[]) => {
    const m = new Map<number, number>();
    for (const s of samples) {
      if (s.name !== `${name}_bucket`) continue;
      if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      m.set(le, (m.get(le) ?? 0) + s.value);
    }
    return m;
  };
  const a = buckets(after);
  const b = buckets(before);
  const bounds = [...a.keys()].sort((x, y) => x - y);
  const counts = bounds.map((le) => (a.get(le) ?? 0) - (b.get(le) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if (counts[i]! >= rank) {
      const lo = i === 0 ? 0 : bounds[i - 1]!;
      const hi = bounds[i]!;
      if (!Number.isFinite(hi)) return lo;
      const below = i === 0 ? 0 : counts[i - 1]!;
      const inBucket = counts[i]! - below;
      return inBucket > 0 ? lo + ((hi - lo) * (rank - below)) / inBucket : hi;
    }
  }
  return undefined;
}
