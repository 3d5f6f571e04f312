// Precision, recall and F1 of a detector's flags against the generator's labels.
// Per pattern: recall over that pattern's fraud events; precision among the flags on the merchants
// that pattern hit (its true flags against the clean events it flagged there). Overall: every flag.
import { PATTERNS } from './generator.ts';
import type { LabelledEvent, Pattern, Stream } from './generator.ts';

export interface Quality {
  tp: number;
  fp: number;
  fn: number;
  precision: number;
  recall: number;
  f1: number;
}

export interface Report {
  overall: Quality;
  patterns: Record<Pattern, Quality>;
  /** flagged events of merchants without injected fraud / all their events */
  cleanFpRate: number;
  events: number;
  fraud: number;
}

function quality(tp: number, fp: number, fn: number): Quality {
  const precision = tp + fp ? tp / (tp + fp) : Number.NaN; // nothing flagged: undefined
  const recall = tp + fn ? tp / (tp + fn) : 1;
  return { tp, fp, fn, precision, recall, f1: tp ? (2 * precision * recall) / (precision + recall) : 0 };
}

export function report(stream: Stream, flagged: readonly boolean[]): Report {
  const c = { tp: 0, fp: 0, fn: 0 };
  const per = new Map<Pattern, { tp: number; fp: number; fn: number }>(PATTERNS.map((p) => [p, { tp: 0, fp: 0, fn: 0 }]));
  let clean = 0;
  let cleanFlagged = 0;
  let fraud = 0;
  stream.events.forEach((e: LabelledEvent, i) => {
    const f = flagged[i]!;
    const victimOf = stream.victims.get(e.merchant);
    if (e.label) {
      fraud++;
      const p = per.get(e.label)!;
      if (f) c.tp++, p.tp++;
      else c.fn++, p.fn++;
    } else if (f) {
      c.fp++;
      if (victimOf) per.get(victimOf)!.fp++;
    }
    if (!victimOf) {
      clean++;
      if (f) cleanFlagged++;
    }
  });
  const patterns = Object.fromEntries(
    PATTERNS.map((p) => {
      const x = per.get(p)!;
      return [p, quality(x.tp, x.fp, x.fn)];
    }),
  ) as Record<Pattern, Quality>;
  return { overall: quality(c.tp, c.fp, c.fn), patterns, cleanFpRate: clean ? cleanFlagged / clean : 0, events: stream.events.length, fraud };
}
