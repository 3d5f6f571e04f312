// The evaluation table: velocity rules and the combined score side by side.
import { PATTERNS } from './generator.ts';
import type { Quality, Report } from './metrics.ts';

const f2 = (x: number) => (Number.isNaN(x) ? '–' : x.toFixed(2));
const cells = (q: Quality) => `${f2(q.precision)} | ${f2(q.recall)} | ${f2(q.f1)}`;

export function table(velocity: Report, score: Report, cost: { velocity: number; score: number }): string {
  const rows = [
    '| pattern | fraud events | velocity P | R | F1 | score P | R | F1 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...PATTERNS.map((p) => {
      const v = velocity.patterns[p];
      const s = score.patterns[p];
      return `| ${p} | ${s.tp + s.fn} | ${cells(v)} | ${cells(s)} |`;
    }),
    `| **overall** | ${score.fraud} | ${cells(velocity.overall)} | ${cells(score.overall)} |`,
    `| false positives on clean merchants | | ${(velocity.cleanFpRate * 100).toFixed(2)} % | | | ${(score.cleanFpRate * 100).toFixed(2)} % | | |`,
    `| scoring cost per event | | ${cost.velocity.toFixed(1)} µs | | | ${cost.score.toFixed(1)} µs | | |`,
  ];
  return rows.join('\n');
}
