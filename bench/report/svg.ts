// The chart of a run, drawn by hand as SVG (no browser, no library): throughput per comparison,
// Rill's bar beside its baseline's with the target marked, and latency per scenario (p50 inside
// p99, log scale) with latency ceilings marked, and line charts over time (the soak's memory: Node
// RSS beside Redis used_memory, each with its fitted slope after the warm-up), two panels a row.
import type { Comparison, LatencyFigure, TimeChart } from '../scenarios/types.ts';
import type { BenchResults } from './types.ts';

const W = 960;
const LABEL_W = 230;
const BAR_X = LABEL_W + 10;
const BAR_W = W - BAR_X - 130;
const RILL = '#2563eb';
const BASE = '#9ca3af';
const ALT = '#93c5fd';
const TARGET = '#dc2626';
const P50 = '#1e3a8a';
const P99 = '#93c5fd';
const BASE_P50 = '#4b5563';
const BASE_P99 = '#d1d5db';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function num(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e4) return `${Math.round(v / 1e3)}k`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v >= 10 ? String(Math.round(v)) : v.toFixed(2);
}

function text(x: number, y: number, s: string, o: { size?: number; anchor?: string; weight?: string; fill?: string } = {}): string {
  return `<text x="${x}" y="${y}" font-size="${o.size ?? 12}" text-anchor="${o.anchor ?? 'start'}"${o.weight ? ` font-weight="${o.weight}"` : ''} fill="${o.fill ?? '#111827'}">${esc(s)}</text>`;
}

function throughputRows(comparisons: readonly Comparison[], y0: number): { svg: string[]; height: number } {
  const rows = comparisons.filter((c) => c.rill.unit !== 'ms' && !c.rill.unit.startsWith('%'));
  const svg: string[] = [];
  let y = y0;
  for (const c of rows) {
    const r = c.rill.value ?? 0;
    const b = c.baseline?.value ?? 0;
    let targetAt: number | undefined;
    let targetText = '';
    if (c.target?.kind === 'ratio-min' && b) {
      targetAt = c.target.value * b;
      targetText = `target ${c.target.value}× baseline`;
    } else if (c.target?.kind === 'min') {
      targetAt = c.target.value;
      targetText = `target ${num(c.target.value)} ${c.rill.unit}`;
    }
    const max = Math.max(r, b, c.alt?.value ?? 0, targetAt ?? 0, 1) * 1.05;
    const scale = (v: number) => (v / max) * BAR_W;
    const verdict = c.met === true ? '✔ met' : c.met === false ? '✘ missed' : '';
    const ratioText = c.baseline ? `ratio ${c.ratio === null || c.ratio === undefined ? 'n/a' : `${c.ratio.toFixed(2)}×`}` : '';
    // the comparison's title on a line of its own, the verdict after it
    svg.push(text(10, y + 12, c.title, { weight: 'bold', size: 12 }));
    svg.push(
      text(W - 10, y + 12, [ratioText, verdict].filter(Boolean).join('  '), {
        size: 12,
        anchor: 'end',
        weight: 'bold',
        fill: c.met === false ? TARGET : c.met ? '#15803d' : '#6b7280',
      }),
    );
    const top = y + 18;
    const bars: [string, number | null, string, string][] = [[c.rill.label, c.rill.value, RILL, c.rill.unit]];
    if (c.alt) bars.push([c.alt.label, c.alt.value, ALT, c.alt.unit]);
    if (c.baseline) bars.push([c.baseline.label, c.baseline.value, BASE, c.baseline.unit]);
    bars.forEach(([label, v, color, unit], i) => {
      const by = top + i * 20;
      svg.push(
        text(LABEL_W, by + 12, label.length > 40 ? `${label.slice(0, 39)}…` : label, { size: 11, anchor: 'end', fill: color === BASE ? '#4b5563' : '#1e3a8a' }),
      );
      if (v === null) {
        svg.push(text(BAR_X, by + 12, 'not measured', { size: 11, fill: '#6b7280' }));
        return;
      }
      const w = Math.max(1, scale(v));
      svg.push(`<rect x="${BAR_X}" y="${by}" width="${w.toFixed(1)}" height="16" fill="${color}" rx="2"/>`);
      svg.push(text(BAR_X + w + 6, by + 12, `${num(v)} ${unit}`, { size: 11 }));
    });
    const h = bars.length * 20;
    if (targetAt !== undefined) {
      const tx = BAR_X + scale(targetAt);
      svg.push(
        `<line x1="${tx.toFixed(1)}" y1="${top - 2}" x2="${tx.toFixed(1)}" y2="${top + h}" stroke="${TARGET}" stroke-width="2" stroke-dasharray="4 3"/>`,
      );
      svg.push(text(tx, top + h + 10, targetText, { size: 10, fill: TARGET, anchor: tx > W - 120 ? 'end' : 'middle' }));
    }
    y = top + h + 22;
  }
  return { svg, height: y - y0 };
}

function latencyRows(figures: readonly LatencyFigure[], y0: number): { svg: string[]; height: number } {
  const svg: string[] = [];
  if (!figures.length) return { svg, height: 0 };
  const values = figures.flatMap((f) => [f.p50, f.p99, f.p99Limit ?? 0]).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...values))));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values) * 1.01));
  const scale = (v: number) => (Math.log10(Math.max(lo, v) / lo) / Math.log10(hi / lo)) * BAR_W;
  const rowH = 22;
  const axisY = y0 + figures.length * rowH + 4;
  for (let d = lo; d <= hi * 1.001; d *= 10) {
    const x = BAR_X + scale(d);
    svg.push(`<line x1="${x.toFixed(1)}" y1="${y0 - 4}" x2="${x.toFixed(1)}" y2="${axisY}" stroke="#e5e7eb"/>`);
    svg.push(text(x, axisY + 13, `${d >= 1 ? d : d.toFixed(2)} ms`, { size: 10, anchor: 'middle', fill: '#6b7280' }));
  }
  figures.forEach((f, i) => {
    const y = y0 + i * rowH;
    const [c50, c99] = f.who === 'rill' ? [P50, P99] : [BASE_P50, BASE_P99];
    svg.push(text(10, y + 13, f.label.length > 38 ? `${f.label.slice(0, 37)}…` : f.label, { size: 11, fill: f.who === 'rill' ? '#111827' : '#4b5563' }));
    svg.push(`<rect x="${BAR_X}" y="${y + 2}" width="${Math.max(1, scale(f.p99)).toFixed(1)}" height="15" fill="${c99}" rx="2"/>`);
    svg.push(`<rect x="${BAR_X}" y="${y + 2}" width="${Math.max(1, scale(f.p50)).toFixed(1)}" height="15" fill="${c50}" rx="2"/>`);
    svg.push(text(BAR_X + scale(f.p99) + 6, y + 13, `p50 ${num(f.p50)} · p99 ${num(f.p99)} ms`, { size: 10 }));
    if (f.p99Limit) {
      const x = BAR_X + scale(f.p99Limit);
      svg.push(`<line x1="${x.toFixed(1)}" y1="${y}" x2="${x.toFixed(1)}" y2="${y + 19}" stroke="${TARGET}" stroke-width="2" stroke-dasharray="3 2"/>`);
    }
  });
  return { svg, height: figures.length * rowH + 24 };
}

const LINE_COLORS = ['#2563eb', '#059669', '#d97706', '#7c3aed', '#db2777'];
const PANEL_H = 200;

/** One line chart in a panel at (x0, y0) of width w: axes with a few ticks, lines, fits dashed, markers. */
function timePanel(c: TimeChart, x0: number, y0: number, w: number): string[] {
  const svg: string[] = [];
  const left = x0 + 52;
  const right = x0 + w - 10;
  const top = y0 + 32;
  const bottom = y0 + PANEL_H - 48;
  const pts = c.series.flatMap((s) => s.points);
  if (!pts.length) return svg;
  const xMax = Math.max(1, ...pts.map((p) => p[0]));
  const yMax = Math.max(...pts.map((p) => p[1])) * 1.1 || 1;
  const X = (x: number) => left + (x / xMax) * (right - left);
  const Y = (y: number) => bottom - (Math.max(0, y) / yMax) * (bottom - top);
  svg.push(text(x0, y0 + 12, c.title, { size: 12, weight: 'bold' }));
  svg.push(`<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="#9ca3af"/>`);
  svg.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="#9ca3af"/>`);
  for (let i = 0; i <= 4; i++) {
    const yv = (yMax * i) / 4;
    svg.push(`<line x1="${left}" y1="${Y(yv).toFixed(1)}" x2="${right}" y2="${Y(yv).toFixed(1)}" stroke="#f3f4f6"/>`);
    svg.push(text(left - 4, Y(yv) + 4, `${num(yv)}`, { size: 9, anchor: 'end', fill: '#6b7280' }));
    const xv = (xMax * i) / 4;
    svg.push(text(X(xv), bottom + 12, `${Math.round(xv)} ${c.xUnit}`, { size: 9, anchor: 'middle', fill: '#6b7280' }));
  }
  svg.push(text(x0 + 2, top - 4, c.unit, { size: 9, fill: '#6b7280' }));
  for (const m of c.markers ?? []) {
    svg.push(`<line x1="${X(m.x).toFixed(1)}" y1="${top}" x2="${X(m.x).toFixed(1)}" y2="${bottom}" stroke="${TARGET}" stroke-dasharray="3 3"/>`);
    svg.push(text(X(m.x) + 3, top + 9, m.label, { size: 9, fill: TARGET }));
  }
  c.series.forEach((s, i) => {
    const color = LINE_COLORS[i % LINE_COLORS.length]!;
    if (s.points.length)
      svg.push(
        `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${s.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`,
      );
    if (s.fit) {
      const f = s.fit;
      svg.push(
        `<line x1="${X(f.from).toFixed(1)}" y1="${Y(f.intercept + f.slope * f.from).toFixed(1)}" x2="${X(f.to).toFixed(1)}" y2="${Y(f.intercept + f.slope * f.to).toFixed(1)}" stroke="#111827" stroke-width="1" stroke-dasharray="5 3"/>`,
      );
    }
    const ly = bottom + 26 + i * 12;
    svg.push(`<rect x="${left}" y="${ly - 8}" width="10" height="3" fill="${color}"/>`);
    svg.push(text(left + 14, ly - 4, `${s.label}${s.fit ? `: ${s.fit.text}` : ''}`, { size: 9 }));
  });
  return svg;
}

function chartRows(charts: readonly TimeChart[], y0: number): { svg: string[]; height: number } {
  const svg: string[] = [];
  const w = (W - 20) / 2;
  let y = y0;
  for (let i = 0; i < charts.length; i += 2) {
    const row = charts.slice(i, i + 2);
    const extra = Math.max(...row.map((c) => c.series.length)) * 12;
    row.forEach((c, j) => svg.push(...timePanel(c, 10 + j * w, y, w - 10)));
    y += PANEL_H + extra;
  }
  return { svg, height: y - y0 };
}

export function renderSvg(r: BenchResults): string {
  const body: string[] = [];
  let y = 20;
  body.push(
    text(10, y, `Rill bench (${r.profile}), ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC: ${r.machine.cpus} cores, everything on one machine`, {
      size: 15,
      weight: 'bold',
    }),
  );
  y += 28;
  const tp = throughputRows(r.comparisons, y + 12);
  if (tp.svg.length) {
    body.push(text(10, y, 'Throughput: Rill (blue) beside its baseline (grey); dashed red = target', { size: 13, weight: 'bold' }));
    y += 12 + tp.height + 16;
    body.push(...tp.svg);
  }
  const figures = r.scenarios.flatMap((s) => s.latency);
  if (figures.length) {
    body.push(text(10, y, 'Latency, ms (log scale): dark = p50, light = p99; grey = baseline; dashed red = p99 ceiling', { size: 13, weight: 'bold' }));
    y += 14;
    const lt = latencyRows(figures, y);
    body.push(...lt.svg);
    y += lt.height + 10;
  }
  const charts = r.scenarios.flatMap((sc) => sc.charts ?? []);
  if (charts.length) {
    body.push(text(10, y, 'Over time (dashed = fitted line after the warm-up, its slope in the legend)', { size: 13, weight: 'bold' }));
    y += 12;
    const ch = chartRows(charts, y);
    body.push(...ch.svg);
    y += ch.height;
  }
  const height = Math.ceil(y + 10);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${W}" height="${height}" fill="#ffffff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
