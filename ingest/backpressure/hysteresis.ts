// When to shed load: a two-threshold state machine per signal, so ingest does not flap between
// accepting and refusing while the pipeline hovers around one limit.
import type { BackpressureConfig } from '../../core/topology/schema.ts';

export type Thresholds = Pick<BackpressureConfig, 'max_lag' | 'resume_lag' | 'max_memory' | 'resume_memory'>;

export interface LoadSample {
  /** Entries waiting in the pipeline: lag + pending over every group (see measure.ts). */
  waiting: number;
  /** Redis used_memory / its memory budget; undefined when there is no budget to compare with. */
  memoryShare: number | undefined;
}

export interface LoadState {
  shedding: boolean;
  /** Why ingest sheds (empty when it does not), for /readyz and the logs. */
  reasons: string[];
}

export const ACCEPTING: LoadState = { shedding: false, reasons: [] };

/**
 * Start shedding when either signal passes its max; stop only once both are under their resume
 * level. An unknown memory share never starts shedding and never holds it.
 */
export function nextLoadState(prev: LoadState, s: LoadSample, t: Thresholds): LoadState {
  const mem = s.memoryShare;
  if (!prev.shedding) {
    const reasons: string[] = [];
    if (s.waiting > t.max_lag) reasons.push(`${s.waiting} entries waiting in the pipeline, over max_lag ${t.max_lag}`);
    if (mem !== undefined && mem > t.max_memory) reasons.push(`Redis memory at ${pct(mem)}, over max_memory ${pct(t.max_memory)}`);
    return reasons.length ? { shedding: true, reasons } : ACCEPTING;
  }
  const reasons: string[] = [];
  if (!(s.waiting < t.resume_lag)) reasons.push(`${s.waiting} entries waiting in the pipeline, not yet under resume_lag ${t.resume_lag}`);
  if (mem !== undefined && !(mem < t.resume_memory)) {
    reasons.push(`Redis memory at ${pct(mem)}, not yet under resume_memory ${pct(t.resume_memory)}`);
  }
  return reasons.length ? { shedding: true, reasons } : ACCEPTING;
}

function pct(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}
