// The markdown summary of a run: every target with Rill's figure, the baseline's and their ratio,
// then each scenario's tables, the chart, and what to keep in mind reading them.
import { int, ratio } from '../scenarios/common.ts';
import type { Comparison, Table } from '../scenarios/types.ts';
import type { BenchResults } from './types.ts';

const fmtValue = (v: number | null | undefined, unit: string): string => {
  if (v === null || v === undefined || !Number.isFinite(v)) return 'n/a';
  if (unit === 'ms') return `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`;
  if (unit.startsWith('%')) return `${v.toFixed(1)} ${unit}`;
  return `${int(v)} ${unit}`;
};

const mark = (met: boolean | null | undefined): string => (met === true ? '✅ met' : met === false ? '❌ missed' : '– n/a');

function cell(v: string | number | null): string {
  if (v === null || v === undefined) return '–';
  return String(v).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function table(t: Table): string {
  const lines = [`**${t.title}**`, '', `| ${t.columns.map(cell).join(' | ')} |`, `|${t.columns.map(() => ' --- ').join('|')}|`];
  for (const r of t.rows) lines.push(`| ${r.map(cell).join(' | ')} |`);
  if (t.note) lines.push('', `<sub>${t.note}</sub>`);
  return lines.join('\n');
}

export function targetsTable(comparisons: readonly Comparison[]): string {
  const lines = ['| target | Rill | baseline | ratio | target | result |', '| --- | --- | --- | --- | --- | --- |'];
  for (const c of comparisons) {
    if (!c.target) continue;
    const base = c.baseline ? `${fmtValue(c.baseline.value, c.baseline.unit)} (${c.baseline.label})` : '–';
    const note = c.note ? ` <sub>${c.note}</sub>` : '';
    lines.push(
      `| ${cell(c.title)}${note} | ${fmtValue(c.rill.value, c.rill.unit)} | ${cell(base)} | ${c.baseline ? ratio(c.ratio) : '–'} | ${cell(c.target.text)} | ${mark(c.met)} |`,
    );
  }
  return lines.join('\n');
}

export function renderMarkdown(r: BenchResults, chartFile: string): string {
  const m = r.machine;
  const out: string[] = [];
  out.push(`# Rill bench: ${r.profile} run, ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC`, '');
  out.push(
    `${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB, ${m.os}, Node ${m.node}, Redis ${m.redis}, PostgreSQL ${m.postgres}. ` +
      `Everything on this one machine, load generator included. Wall time ${Math.round(r.wallSeconds)} s; load average (1/5/15 min) ${m.loadAverageAtStart.map((x) => x.toFixed(2)).join(' / ')} at the start, ${m.loadAverageAtEnd.map((x) => x.toFixed(2)).join(' / ')} at the end.`,
    '',
  );
  const busiest = Math.max(m.loadAverageAtStart[0] ?? 0, m.loadAverageAtEnd[0] ?? 0);
  if (busiest > m.cpus * 0.75) {
    out.push(
      `> ⚠ The machine was busy with other work (load average up to ${busiest.toFixed(1)} on ${m.cpus} cores): absolute figures are low and noisy. ` +
        'The `other` column of the CPU figures shows how many cores went to something else while a figure was measured.',
      '',
    );
  }
  out.push('## Targets', '', targetsTable(r.comparisons), '', `![throughput and latency per scenario](${chartFile})`, '');
  for (const s of r.scenarios) {
    out.push(`## ${s.title}`, '');
    if (s.status !== 'ok') out.push(`**${s.status}**${s.reason ? `: ${s.reason}` : ''}`, '');
    for (const t of s.tables) out.push(table(t), '');
    if (s.problems.length) out.push('Problems:', '', ...s.problems.map((p) => `- ${p}`), '');
  }
  if (r.cpuProfiles?.length) {
    out.push('## CPU profiles (--cpu-prof)', '');
    for (const p of r.cpuProfiles) {
      out.push(
        table({
          title: `${p.process}: ${int(p.totalMs)} ms sampled, by area`,
          columns: ['area', 'self ms', 'share'],
          rows: p.byArea.slice(0, 12).map((a) => [a.area, int(a.selfMs), `${(a.share * 100).toFixed(1)} %`]),
        }),
        '',
      );
      out.push(
        table({
          title: `${p.process}: top functions by self time`,
          columns: ['function', 'where', 'self ms', 'share'],
          rows: p.top.slice(0, 15).map((f) => [f.fn, f.where, int(f.selfMs), `${(f.share * 100).toFixed(1)} %`]),
        }),
        '',
      );
    }
  }
  out.push('## How to read this', '');
  out.push(
    `- Profile \`${r.profile}\`, run \`${r.runId}\`; raw figures (latency histograms included) in the JSON beside this file.`,
    `- Topology: ${r.topology.base} with ${r.topology.changes.join('; ')}. Each scenario ran on its own RILL_PREFIX / RILL_PG_SCHEMA, through \`rill ingest\`, \`rill worker\` and \`rill sink\` child processes.`,
    `- Redis ${r.services.redisUrl}, Postgres ${r.services.databaseUrl.replace(/:[^:@/]*@/, ':***@')}${r.services.startedForRun.length ? ` (started for this run: ${r.services.startedForRun.join(', ')})` : ''}. A shared Redis or Postgres serves other clients too: their work shows in the CPU and command figures.`,
    "- Ratios are taken within this one run, so the machine's state weighs on both sides alike; absolute figures move with whatever else the machine does.",
  );
  if (r.problems.length) out.push('', '## Problems', '', ...r.problems.map((p) => `- ${p}`));
  return `${out.join('\n')}\n`;
}
