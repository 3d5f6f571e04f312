/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
// The partitions × lanes table and the workers list: what an operator opens to find the lagging
// partition and who holds it.
import type { WorkerView } from '../../core/observability/heartbeat.ts';
import type { PartitionStats } from '../../core/observability/partition-stats.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { fmtAge, fmtInt, fmtRate, fmtTime } from './layout.tsx';

export function PartitionPicker(props: { topology: Topology; stats: PartitionStats }) {
  return (
    <form method="get" action="/partitions" class="filters">
      <label>
        Topic{' '}
        <select name="topic">
          {Object.keys(props.topology.topics).map((t) => (
            <option value={t} selected={t === props.stats.topic}>
              {t}
            </option>
          ))}
        </select>
      </label>
      <label>
        Consumer group{' '}
        <select name="group">
          {props.stats.groups.map((g) => (
            <option value={g} selected={g === props.stats.group}>
              {g}
            </option>
          ))}
        </select>
      </label>
      <button type="submit">Show</button>
    </form>
  );
}

export function PartitionTable(props: { stats: PartitionStats }) {
  const s = props.stats;
  const worst = s.cells.reduce((m, c) => Math.max(m, c.lag ?? 0), 0);
  return (
    <table class="partitions">
      <caption>
        {`${s.topic}: ${s.cells.length} lane streams` + (s.group ? `, group ${s.group}` : ', no consumer group reads it') + ` · ${fmtTime(s.at)}`}
      </caption>
      <thead>
        <tr>
          <th scope="col">partition</th>
          <th scope="col">lane</th>
          <th scope="col">length</th>
          <th scope="col">lag</th>
          <th scope="col">pending</th>
          <th scope="col">parked (partition)</th>
          <th scope="col">oldest unacked</th>
          <th scope="col">lease holder</th>
        </tr>
      </thead>
      <tbody>
        {s.cells.map((c) => (
          <tr class={worst > 0 && c.lag === worst ? 'hot' : undefined}>
            <th scope="row">{c.partition}</th>
            <td>{c.lane}</td>
            <td class="num">{fmtInt(c.length)}</td>
            <td class="num">{c.lag === null ? '≤ length' : fmtInt(c.lag)}</td>
            <td class="num">{fmtInt(c.pending)}</td>
            <td class="num">{s.parked[c.partition] === undefined ? '–' : fmtInt(s.parked[c.partition])}</td>
            <td class="num">{fmtAge(c.oldestAgeMs)}</td>
            <td>{s.leases[c.partition] ?? '–'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function WorkerTable(props: { workers: WorkerView[]; leases: Record<string, Record<number, string>>; now: number }) {
  if (!props.workers.length) return <p>No worker has sent a heartbeat with this prefix.</p>;
  const held = (id: string) =>
    Object.entries(props.leases)
      .map(([stage, parts]) => {
        const mine = Object.entries(parts)
          .filter(([, h]) => h === id || h.startsWith(`${id}-`))
          .map(([p]) => p);
        return mine.length ? `${stage}: ${mine.join(', ')}` : '';
      })
      .filter(Boolean);
  return (
    <table>
      <caption>{`${props.workers.filter((w) => w.live).length} live of ${props.workers.length} workers`}</caption>
      <thead>
        <tr>
          <th scope="col">worker</th>
          <th scope="col">state</th>
          <th scope="col">host / pid</th>
          <th scope="col">version</th>
          <th scope="col">runs</th>
          <th scope="col">last heartbeat</th>
          <th scope="col">up since</th>
          <th scope="col">events/s (ok, retry, dead letter)</th>
          <th scope="col">partition leases</th>
        </tr>
      </thead>
      <tbody>
        {props.workers.map((w) => (
          <tr>
            <th scope="row">{w.id}</th>
            <td class={w.live ? 'ok' : 'bad'}>{w.live ? 'live' : 'dead'}</td>
            <td>{`${w.host} / ${w.pid}`}</td>
            <td>{w.version ? `rill ${w.version}, node ${w.node ?? '?'}` : '–'}</td>
            <td>{w.components.join(', ') || '–'}</td>
            <td>{`${fmtAge(props.now - w.seen_at)} ago`}</td>
            <td>{fmtTime(w.started_at)}</td>
            <td>{workerRates(w)}</td>
            <td>{held(w.id).join('; ') || '–'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function workerRates(w: WorkerView): string {
  if (!w.prev || !(w.seen_at > w.prev.seen_at)) return '–';
  const dt = (w.seen_at - w.prev.seen_at) / 1000;
  return (
    Object.entries(w.stats.stages)
      .map(([stage, s]) => {
        const p = w.prev!.stats.stages[stage] ?? { ok: 0, retry: 0, dead_letter: 0 };
        const r = (a: number, b: number) => fmtRate(Math.max(0, a - b) / dt);
        return `${stage} ${r(s.ok, p.ok)}, ${r(s.retry, p.retry)}, ${r(s.dead_letter, p.dead_letter)}`;
      })
      .join('; ') || '–'
  );
}
