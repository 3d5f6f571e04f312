/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
// The topology as a diagram (server-rendered SVG): ingest, topics, stages and sinks, laid out
// top to bottom by depth from the ingest topic; every edge carries its live rate and, into a
// stage or sink, that consumer group's lag. Rates are `rill status`'s (buildReport): topic
// rates in from entries-added, group rates out from acknowledged progress, over ~1 s.
import type { StatusReport } from '../../core/observability/status-report.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { ledgerSettings } from '../data/wallets.ts';
import { fmtInt, fmtRate } from './layout.tsx';

interface Node {
  id: string;
  kind: 'ingest' | 'topic' | 'stage' | 'sink';
  label: string;
  sub: string;
  layer: number;
  x: number;
  y: number;
}

interface Edge {
  from: string;
  to: string;
  rate: number | null;
  lag?: number;
}

const W = 190;
const H = 44;
const ROW = 92;
const COL = 250;

export function graphOf(topology: Topology, r: StatusReport | undefined): { nodes: Node[]; edges: Edge[]; width: number; height: number } {
  const nodes = new Map<string, Node>();
  const add = (id: string, kind: Node['kind'], label: string, sub: string) => nodes.set(id, { id, kind, label, sub, layer: -1, x: 0, y: 0 });
  add('ingest', 'ingest', 'ingest (HTTP)', 'POST /v1/transactions');
  for (const [t, def] of Object.entries(topology.topics)) add(`topic:${t}`, 'topic', t, `topic · ${def.partitions} partitions`);
  for (const [s, def] of Object.entries(topology.stages)) add(`stage:${s}`, 'stage', s, `stage · ${def.processor} · ordering ${def.ordering}`);
  for (const [s, def] of Object.entries(topology.sinks)) add(`sink:${s}`, 'sink', s, `sink · ${def.type}`);

  const topicIn = (t: string) => sum(r?.topics.find((x) => x.topic === t)?.lanes.map((l) => l.in_per_sec));
  const groupOf = (t: string, g: string) => r?.topics.find((x) => x.topic === t)?.lanes.flatMap((l) => l.groups.filter((x) => x.group === g)) ?? [];
  const edges: Edge[] = [{ from: 'ingest', to: `topic:${topology.ingest.topic}`, rate: topicIn(topology.ingest.topic) }];
  const readers = [
    ...Object.entries(topology.stages).map(([n, s]) => ['stage', n, s.input] as const),
    ...Object.entries(topology.sinks).map(([n, s]) => ['sink', n, s.input] as const),
  ];
  for (const [kind, name, input] of readers) {
    const groups = groupOf(input, name);
    edges.push({ from: `topic:${input}`, to: `${kind}:${name}`, rate: sum(groups.map((g) => g.out_per_sec)), lag: groups.reduce((a, g) => a + g.lag, 0) });
  }
  for (const [name, s] of Object.entries(topology.stages)) edges.push({ from: `stage:${name}`, to: `topic:${s.output}`, rate: topicIn(s.output) });
  // the ledger's alert events: a side output declared in its config, not in the stage's `output`
  const { alertsTopic } = ledgerSettings(topology);
  const ledger = Object.entries(topology.stages).find(([, s]) => s.processor === 'ledger')?.[0];
  if (alertsTopic && ledger && topology.topics[alertsTopic]) edges.push({ from: `stage:${ledger}`, to: `topic:${alertsTopic}`, rate: topicIn(alertsTopic) });

  // depth from ingest (longest path, the graph is a DAG in practice; bounded passes guard cycles)
  nodes.get('ingest')!.layer = 0;
  for (let pass = 0; pass < nodes.size; pass++) {
    let changed = false;
    for (const e of edges) {
      const a = nodes.get(e.from);
      const b = nodes.get(e.to);
      if (a && b && a.layer >= 0 && b.layer < a.layer + 1) {
        b.layer = a.layer + 1;
        changed = true;
      }
    }
    if (!changed) break;
  }
  const maxLayer = Math.max(...[...nodes.values()].map((n) => n.layer));
  for (const n of nodes.values()) if (n.layer < 0) n.layer = maxLayer + 1; // unreachable topics last
  const layers = new Map<number, Node[]>();
  for (const n of nodes.values()) layers.get(n.layer)?.push(n) ?? layers.set(n.layer, [n]);
  const widest = Math.max(...[...layers.values()].map((l) => l.length));
  const width = Math.max(1, widest) * COL + 160;
  for (const [layer, list] of layers) {
    const span = list.length * COL;
    list.forEach((n, i) => {
      n.x = (width - span) / 2 + i * COL + (COL - W) / 2;
      n.y = 16 + layer * ROW;
    });
  }
  const height = 16 + (Math.max(...layers.keys()) + 1) * ROW;
  return { nodes: [...nodes.values()], edges, width, height };
}

function sum(xs: readonly (number | null | undefined)[] | undefined): number | null {
  if (!xs || !xs.length || xs.some((x) => x === null || x === undefined)) return xs && xs.length ? null : 0;
  return Math.round((xs as number[]).reduce((a, b) => a + b, 0) * 10) / 10;
}

/** The live part of the page (also what the SSE stream re-sends). */
export function TopologyGraph(props: { topology: Topology; report: StatusReport | undefined }) {
  const g = graphOf(props.topology, props.report);
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  const flowing = g.edges.filter((e) => (e.rate ?? 0) > 0).length;
  return (
    <figure class="graph">
      <svg viewBox={`0 0 ${g.width} ${g.height}`} width={g.width} height={g.height} role="img" aria-labelledby="graph-title graph-desc">
        <title id="graph-title">Topology of topics, stages and sinks with live rates</title>
        <desc id="graph-desc">{`${g.nodes.length} nodes, ${g.edges.length} edges, ${flowing} with events flowing`}</desc>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" fill="#44505c" />
          </marker>
        </defs>
        {g.edges.map((e) => {
          const a = byId.get(e.from)!;
          const b = byId.get(e.to)!;
          const x1 = a.x + W / 2;
          const y1 = a.y + H;
          const x2 = b.x + W / 2;
          const y2 = b.y;
          const live = (e.rate ?? 0) > 0;
          return (
            <g class={`edge${live ? ' live' : ''}`} data-from={e.from} data-to={e.to} data-rate={String(e.rate ?? '')}>
              <line x1={x1} y1={y1} x2={x2} y2={y2 - 2} stroke={live ? '#0b6e4f' : '#44505c'} stroke-width={live ? 2.5 : 1.5} marker-end="url(#arrow)" />
              <text x={(x1 + x2) / 2 + 8} y={(y1 + y2) / 2 + 4} class="edge-label" fill="#1c2530">
                {fmtRate(e.rate)}
                {e.lag !== undefined ? ` · lag ${fmtInt(e.lag)}` : ''}
              </text>
            </g>
          );
        })}
        {g.nodes.map((n) => (
          <g class={`node ${n.kind}`}>
            <rect x={n.x} y={n.y} width={W} height={H} rx={n.kind === 'topic' ? 2 : 12} fill={FILL[n.kind]} stroke="#44505c" />
            <text x={n.x + W / 2} y={n.y + 18} text-anchor="middle" class="node-label" fill="#101820">
              {n.label}
            </text>
            <text x={n.x + W / 2} y={n.y + 34} text-anchor="middle" class="node-sub" fill="#2d3a46">
              {n.sub}
            </text>
          </g>
        ))}
      </svg>
      <figcaption>
        {props.report ? `Rates over ${props.report.sample_seconds.toFixed(1)} s, sampled ${props.report.at}.` : 'Measuring rates…'} Edge labels: events/s and,
        into a stage or sink, its consumer group's lag.
      </figcaption>
    </figure>
  );
}

const FILL: Record<Node['kind'], string> = { ingest: '#e8eef7', topic: '#fff6de', stage: '#e3f4ec', sink: '#efe6f7' };

export function StageTable(props: { report: StatusReport | undefined }) {
  const r = props.report;
  if (!r) return null;
  return (
    <table>
      <caption>Stages and sinks</caption>
      <thead>
        <tr>
          <th scope="col">name</th>
          <th scope="col">input</th>
          <th scope="col">live workers</th>
          <th scope="col">events/s</th>
          <th scope="col">retries/s</th>
          <th scope="col">dead letters</th>
          <th scope="col">delay set</th>
          <th scope="col">parked</th>
        </tr>
      </thead>
      <tbody>
        {r.stages.map((s) => (
          <tr>
            <th scope="row">{s.stage}</th>
            <td>{s.input}</td>
            <td class="num">{s.live_workers}</td>
            <td class="num">{fmtRate(s.events_per_sec)}</td>
            <td class="num">{fmtRate(s.retries_per_sec)}</td>
            <td class="num">{fmtInt(s.dead_letters)}</td>
            <td class="num">{fmtInt(s.delay_set)}</td>
            <td class="num">{s.parked === null ? '–' : fmtInt(s.parked)}</td>
          </tr>
        ))}
        {r.sinks.map((s) => (
          <tr>
            <th scope="row">{s.sink}</th>
            <td>{s.input}</td>
            <td class="num">{s.live_workers}</td>
            <td class="num">{s.rows_per_sec === null ? '–' : `${fmtRate(s.rows_per_sec)} rows`}</td>
            <td class="num">–</td>
            <td class="num">{fmtInt(s.dead_letters)}</td>
            <td class="num">–</td>
            <td class="num">–</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
