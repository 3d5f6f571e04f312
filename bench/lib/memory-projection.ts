// Redis bytes per transaction by key family (core/redis-memory.ts, measured on an instance whose
// pipeline has settled every transaction) and what they come to after a day at a given rate with
// a topology's retention: streams keep entries for their topic's hot window or max_age (capped by
// max_len per lane stream and max_bytes per topic), per-transaction records for their TTL (read
// from the keys themselves), per-merchant and transient state does not grow with the rate.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { FamilyMemory, RedisMemoryReport } from '../../core/index.ts';
import { parseDuration } from '../../core/index.ts';

export const DAY_S = 86_400;

/** A topic's retention as the topology file says it: the keys of today's schema and the hot-window ones. */
export interface TopicRetention {
  maxAgeMs?: number;
  maxLen?: number;
  hotMs?: number;
  maxBytes?: number;
}

/** Each topic's retention from a topology file (unknown keys ignored, both generations of keys read). */
export function readRetention(topologyPath: string): Record<string, TopicRetention> {
  const doc = parse(readFileSync(topologyPath, 'utf8')) as { topics?: Record<string, { retention?: Record<string, unknown> }> };
  const out: Record<string, TopicRetention> = {};
  for (const [name, t] of Object.entries(doc.topics ?? {})) {
    const r = t.retention ?? {};
    const dur = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? parseDuration(v) : undefined);
    const bytes = (v: unknown) => (typeof v === 'number' ? v : typeof v === 'string' ? parseBytes(v) : undefined);
    out[name] = {
      maxAgeMs: dur(r.max_age),
      maxLen: typeof r.max_len === 'number' ? r.max_len : undefined,
      hotMs: dur(r.hot),
      maxBytes: bytes(r.max_bytes),
    };
  }
  return out;
}

/** 512mb, 2gb, 1048576 */
function parseBytes(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?$/i.exec(s.trim());
  if (!m) return undefined;
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 }[(m[2] ?? 'b').toLowerCase() as 'b'];
  return Number(m[1]) * unit;
}

export interface FamilyProjection {
  family: string;
  kind: FamilyMemory['kind'];
  keys: number;
  entries: number | null;
  bytes: number;
  /** Bytes per settled transaction now (every family, whatever drives its growth). */
  bytesPerTx: number;
  /** How long one transaction's bytes stay (s, up to the horizon); null: does not grow with the rate. */
  heldS: number | null;
  /** What keeps it that long. */
  basis: string;
  /** Projected bytes after the horizon, per rate. */
  projected: number[];
}

const human = (s: number) =>
  s >= DAY_S ? `${+(s / DAY_S).toFixed(1)} d` : s >= 3600 ? `${+(s / 3600).toFixed(1)} h` : s >= 60 ? `${+(s / 60).toFixed(1)} min` : `${s} s`;

/**
 * Per family: bytes per transaction and the projection after `horizonS` at each rate. `transactions`:
 * how many the instance has settled (what the per-transaction figures divide by).
 */
export function projectMemory(
  report: RedisMemoryReport,
  transactions: number,
  retention: Record<string, TopicRetention>,
  rates: readonly number[],
  /** Entries per lane stream of each topic now: how a topic's entries spread over the streams max_len caps one by one. */
  laneEntries: Record<string, readonly number[]> = {},
  horizonS = DAY_S,
): FamilyProjection[] {
  const tx = Math.max(1, transactions);
  return report.families.map((f): FamilyProjection => {
    const base = { family: f.family, kind: f.kind, keys: f.keys, entries: f.entries, bytes: f.bytes, bytesPerTx: f.bytes / tx };
    if (f.kind === 'stream') {
      const topic = f.family.slice('stream:'.length);
      const r = retention[topic] ?? {};
      // with both keys the shorter applies, as the trimmer reads them (core/retention/plan.ts hotWindow)
      const windowMs = r.hotMs === undefined || r.maxAgeMs === undefined ? (r.hotMs ?? r.maxAgeMs) : Math.min(r.hotMs, r.maxAgeMs);
      const heldS = Math.min(horizonS, windowMs === undefined ? horizonS : windowMs / 1000);
      const entries = f.entries ?? 0;
      const perEntry = entries ? f.bytes / entries : 0;
      const entriesPerTx = entries / tx;
      const caps: string[] = [];
      const lanes = laneEntries[topic] ?? [];
      const spread = lanes.reduce((a, b) => a + b, 0);
      const projected = rates.map((rate) => {
        const total = rate * heldS * entriesPerTx;
        let kept = total;
        // max_len is per lane stream: each stream's share of the entries (as now), capped one by one
        if (r.maxLen !== undefined && spread > 0) {
          const maxLen = r.maxLen;
          kept = lanes.reduce((a, n) => a + Math.min(maxLen, (n / spread) * total), 0);
          if (kept < total) caps.push(`max_len at ${rate}/s`);
        }
        let b = kept * perEntry;
        if (r.maxBytes !== undefined && b > r.maxBytes) {
          b = r.maxBytes;
          caps.push(`max_bytes at ${rate}/s`);
        }
        return b;
      });
      const what = windowMs === undefined ? 'no max_age' : windowMs === r.hotMs ? `hot ${human(windowMs / 1000)}` : `max_age ${human(windowMs / 1000)}`;
      const basis = `${what}${r.maxLen !== undefined ? `, max_len ${r.maxLen.toLocaleString('en-US')}/lane stream` : ''}${r.maxBytes !== undefined ? `, max_bytes ${r.maxBytes}` : ''}; ${entriesPerTx.toFixed(2)} entries/tx × ${Math.round(perEntry)} B${caps.length ? `; capped by ${caps.join(', ')}` : ''}`;
      return { ...base, heldS, basis, projected };
    }
    if (f.kind === 'per-event') {
      const heldS = Math.min(horizonS, f.ttlMs === null ? horizonS : f.ttlMs / 1000);
      const basis = f.ttlMs === null ? 'no TTL' : `TTL ${human(Math.round(f.ttlMs / 1000))} (the longest sampled)`;
      return { ...base, heldS, basis, projected: rates.map((rate) => rate * heldS * base.bytesPerTx) };
    }
    const basis =
      f.kind === 'per-merchant' ? 'grows with merchants, not with the rate' : f.kind === 'transient' ? 'what is in flight (empty when settled)' : 'fixed';
    return { ...base, heldS: null, basis, projected: rates.map(() => f.bytes) };
  });
}
