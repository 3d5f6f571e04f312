// A one-screen summary of a topology, in pipeline order, for `rill topology check`.
import { formatDuration } from '../duration.ts';
import { hotWindow } from '../retention/plan.ts';
import { formatSize } from '../size.ts';
import type { RetryConfig, StageConfig, Topology } from './schema.ts';
import { planChains } from './chains.ts';

export function describeTopology(t: Topology): string {
  const out: string[] = [];
  const topics = Object.entries(t.topics);
  const width = (names: string[]) => Math.max(0, ...names.map((n) => n.length));

  out.push(`ingest → ${t.ingest.topic} (idempotency keys kept ${formatDuration(t.ingest.idempotency_ttl)})`, '');

  out.push('topics');
  const tw = width(topics.map(([n]) => n));
  for (const [name, topic] of topics) {
    const retention = [
      hotText(topic.retention && hotWindow(topic.retention)),
      topic.retention?.max_bytes !== undefined ? `at most ${formatSize(topic.retention.max_bytes)}` : undefined,
      topic.retention?.max_len !== undefined ? `~${count(topic.retention.max_len)} entries per lane` : undefined,
    ].filter(Boolean);
    out.push(`  ${name.padEnd(tw)}  ${topic.partitions} partitions, ${retention.length ? `retention ${retention.join(', ')}` : 'no retention limit'}`);
  }

  out.push('', 'lanes (highest first)');
  const lw = width(t.priorities.map((p) => p.name));
  // Types that match no lane go to the lowest one.
  const laneTypes = t.priorities.map((p, i) => [...p.types, ...(i === t.priorities.length - 1 ? ['any other type'] : [])].join(', ') || '-');
  const yw = width(laneTypes);
  t.priorities.forEach((p, i) => out.push(`  ${p.name.padEnd(lw)}  ${laneTypes[i]!.padEnd(yw)}  min_share ${p.min_share}`));

  out.push('', 'stages');
  const stages = pipelineOrder(t);
  if (!stages.length) out.push('  (none)');
  for (const [name, s] of stages) {
    out.push(
      `  ${s.input} → [${name}: ${s.processor}, ordering ${s.ordering}, batch ${s.batch}, concurrency ${s.concurrency}, ${retry(s.retry)}] → ${s.output}`,
      `      visibility timeout ${formatDuration(s.visibility_timeout)}, dead letters up to ~${count(s.dead_letter.max_len)} per partition`,
    );
  }

  out.push('', 'chains (stages run as one task, events passed in memory)');
  out.push(...describeChains(t).map((l) => `  ${l}`));

  out.push('', 'sinks');
  const sinks = Object.entries(t.sinks);
  if (!sinks.length) out.push('  (none)');
  for (const [name, s] of sinks) {
    out.push(
      s.type === 'postgres'
        ? `  ${s.input} → [${name}: ${s.type} table ${s.table}, every ${count(s.batch_rows)} rows or ${formatDuration(s.max_wait)}, concurrency ${s.concurrency}]`
        : s.type === 'webhooks'
          ? `  ${s.input} → [${name}: merchant webhooks, ${s.schedule.length} attempts over ${formatDuration(s.schedule.reduce((a, b) => a + b, 0))}, timeout ${formatDuration(s.request_timeout)}]`
          : `  ${s.input} → [${name}: ${s.type} to ${s.webhooks.map((w) => `${w.name} (${w.kind})`).join(', ')}, dedupe ${formatDuration(s.dedupe_window)}, ${retry(s.retry)} within ${formatDuration(s.delivery_timeout)}]`,
    );
  }
  return out.join('\n');
}

/** One line per chain of stages: which run as one task and which topics they no longer write. */
export function describeChains(t: Topology): string[] {
  const chains = planChains(t).filter((c) => c.stages.length > 1);
  if (!t.chaining) return ['(off: chaining: false)'];
  if (!chains.length) return ['(none)'];
  return chains.map((c) => `${c.stages.join(' → ')}  (in memory: ${c.links.join(', ')})`);
}

function retry(r: RetryConfig): string {
  if (r.attempts === 1) return 'no retry';
  return `retry ${r.attempts}× ${formatDuration(r.base)}..${formatDuration(r.max)} ×${r.factor}${r.jitter === 'full' ? ' jitter' : ''}`;
}

/** Stages in the order events reach them from ingest; any not reachable from there come last. */
function pipelineOrder(t: Topology): [string, StageConfig][] {
  const all = Object.entries(t.stages);
  const seen = new Set<string>();
  const ordered: [string, StageConfig][] = [];
  const queue = [t.ingest.topic];
  const visited = new Set(queue);
  while (queue.length) {
    const topic = queue.shift()!;
    for (const [name, s] of all) {
      if (s.input !== topic || seen.has(name)) continue;
      seen.add(name);
      ordered.push([name, s]);
      if (!visited.has(s.output)) {
        visited.add(s.output);
        queue.push(s.output);
      }
    }
  }
  return [...ordered, ...all.filter(([name]) => !seen.has(name))];
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

function hotText(hot: number | undefined): string | undefined {
  if (hot === undefined) return undefined;
  return hot === 0 ? 'trimmed once acknowledged' : `hot ${formatDuration(hot)}`;
}
