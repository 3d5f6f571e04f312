// Stage chaining (Kafka Streams sub-topologies, Flink operator chaining): consecutive
// `ordering: key` stages whose intermediate topic nothing else reads or writes run as one task,
// one read from the first stage's input, events passed in memory, one settle per batch. This module
// only plans the chains from a topology; core/consumer runs them.
import type { StageConfig, Topology } from './schema.ts';
import { readersOf } from './readers.ts';

/** A task: its stages in pipeline order (one stage: not chained). The first one names the task. */
export interface Chain {
  stages: string[];
  /** The topics events cross in memory (between consecutive stages), in order. */
  links: string[];
}

/** Why `from` → `to` (from.output = to.input) may not run in memory, or undefined when it may. */
export function chainBreak(t: Topology, from: string, to: string): string | undefined {
  const a = t.stages[from]!;
  const b = t.stages[to]!;
  const topic = a.output;
  const cfg = t.topics[topic];
  if (!cfg) return 'undeclared topic';
  if (a.ordering !== 'key' || b.ordering !== 'key') return 'not both ordering: key';
  if (cfg.materialize) return 'materialize: true';
  if (cfg.external) return 'external: true';
  if (t.topics[a.input]?.partitions !== cfg.partitions || t.topics[b.output]?.partitions !== cfg.partitions) return 'partition counts differ';
  const readers = readersOf(t, topic);
  if (readers.length !== 1) return `read by ${readers.join(', ')}`;
  const writers = Object.entries(t.stages).filter(([, s]) => writes(s, topic));
  if (writers.length !== 1 || t.ingest.topic === topic) return 'written by more than one stage';
  return undefined;
}

function writes(s: StageConfig, topic: string): boolean {
  return s.output === topic || Object.values(s.routes?.to ?? {}).includes(topic);
}

/** The next stage `name` chains into, if any. */
function successor(t: Topology, name: string): string | undefined {
  const s = t.stages[name]!;
  if (Object.values(s.routes?.to ?? {}).includes(s.output)) return undefined;
  const next = Object.entries(t.stages).find(([n, b]) => n !== name && b.input === s.output)?.[0];
  return next !== undefined && chainBreak(t, name, next) === undefined ? next : undefined;
}

/**
 * Every stage in exactly one task, in the topology's stage order of each task's first stage.
 * `chaining: false` gives one task per stage. `only`: the stages one worker runs (`rill worker
 * --stages`): a chain is cut where it leaves them, so a stage run alone writes its output topic.
 */
export function planChains(t: Topology, only?: ReadonlySet<string>): Chain[] {
  const names = Object.keys(t.stages).filter((n) => !only || only.has(n));
  if (!t.chaining) return names.map((n) => ({ stages: [n], links: [] }));
  const next = new Map<string, string>();
  for (const n of names) {
    const s = successor(t, n);
    if (s !== undefined && (!only || only.has(s))) next.set(n, s);
  }
  const hasPrev = new Set(next.values());
  const chains: Chain[] = [];
  const placed = new Set<string>();
  for (const head of names) {
    if (hasPrev.has(head)) continue;
    const chain: Chain = { stages: [head], links: [] };
    placed.add(head);
    for (let cur = head, n = next.get(cur); n !== undefined && !placed.has(n); cur = n, n = next.get(n)) {
      chain.links.push(t.stages[cur]!.output);
      chain.stages.push(n);
      placed.add(n);
    }
    chains.push(chain);
  }
  // a loop of chainable stages (checkTopology reports it) has no head: run its stages apart
  for (const n of names) if (!placed.has(n)) chains.push({ stages: [n], links: [] });
  return chains;
}

/** The task a stage runs in. */
export function chainOf(chains: readonly Chain[], stage: string): Chain | undefined {
  return chains.find((c) => c.stages.includes(stage));
}
