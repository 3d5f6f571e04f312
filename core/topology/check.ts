// Rules that span several parts of a topology, which the schema (one value at a time) can't see.
// Runs on a schema-valid topology; each problem names the path of the offending value.
import type { StageConfig, Topology } from './schema.ts';
import type { PathProblem } from './source.ts';

/** Every topic a stage writes to, with the path that names it: `output` and each route. */
function stageTargets(name: string, s: StageConfig): { path: (string | number)[]; topic: string }[] {
  const out = [{ path: ['stages', name, 'output'] as (string | number)[], topic: s.output }];
  for (const [value, topic] of Object.entries(s.routes?.to ?? {})) out.push({ path: ['stages', name, 'routes', 'to', value], topic });
  return out;
}

export function checkTopology(t: Topology): PathProblem[] {
  return [
    ...checkPartitions(t),
    ...checkTopicRefs(t),
    ...checkPriorities(t),
    ...checkShares(t),
    ...checkNames(t),
    ...checkSelfLoops(t),
    ...checkCycles(t),
    ...checkReaders(t),
  ];
}

/** Co-partitioning (design §1): partition i of every topic shares one Redis Cluster slot. */
function checkPartitions(t: Topology): PathProblem[] {
  const names = Object.keys(t.topics);
  // Measure against the ingest topic, where events enter; any other when it isn't declared.
  const ref = t.topics[t.ingest.topic] ? t.ingest.topic : names[0];
  if (ref === undefined) return [];
  const want = t.topics[ref]!.partitions;
  return names
    .filter((name) => t.topics[name]!.partitions !== want)
    .map((name) => ({
      path: ['topics', name, 'partitions'],
      at: 'value' as const,
      message: `topics.${name}.partitions: expected ${want} like topic "${ref}" (every topic has the same partition count), got ${t.topics[name]!.partitions}`,
    }));
}

function checkTopicRefs(t: Topology): PathProblem[] {
  const refs: { path: (string | number)[]; topic: string }[] = [{ path: ['ingest', 'topic'], topic: t.ingest.topic }];
  for (const [name, stage] of Object.entries(t.stages)) {
    refs.push({ path: ['stages', name, 'input'], topic: stage.input }, ...stageTargets(name, stage));
  }
  for (const [name, sink] of Object.entries(t.sinks)) refs.push({ path: ['sinks', name, 'input'], topic: sink.input });
  const declared = Object.keys(t.topics);
  return refs
    .filter((r) => !Object.hasOwn(t.topics, r.topic))
    .map((r) => ({
      path: r.path,
      at: 'value' as const,
      message: `${r.path.join('.')}: expected a declared topic (${declared.join(', ') || 'none declared'}), got "${r.topic}"`,
    }));
}

/** Lane names are unique and an event type has one lane, or routing would be ambiguous. */
function checkPriorities(t: Topology): PathProblem[] {
  const problems: PathProblem[] = [];
  const lanes = new Map<string, number>();
  const laneOf = new Map<string, number>();
  t.priorities.forEach((p, i) => {
    const first = lanes.get(p.name);
    if (first === undefined) lanes.set(p.name, i);
    else {
      problems.push({
        path: ['priorities', i, 'name'],
        at: 'value',
        message: `priorities[${i}].name: duplicate priority "${p.name}" (already priorities[${first}])`,
      });
    }
    p.types.forEach((type, j) => {
      const owner = laneOf.get(type);
      if (owner === undefined) laneOf.set(type, i);
      else {
        const where = owner === i ? 'listed twice in this priority' : `already in priority "${t.priorities[owner]!.name}"`;
        problems.push({ path: ['priorities', i, 'types', j], at: 'value', message: `priorities[${i}].types[${j}]: event type "${type}" is ${where}` });
      }
    });
  });
  return problems;
}

/**
 * Each lower lane's min_share is reserved out of every read before the lanes above it are served;
 * reserved shares of 1 or more would leave the highest lane (chargebacks, refunds) nothing.
 */
function checkShares(t: Topology): PathProblem[] {
  const top = t.priorities[0]!.name;
  let reserved = 0;
  for (let i = 1; i < t.priorities.length; i++) {
    reserved += t.priorities[i]!.min_share;
    if (reserved >= 1) {
      return [
        {
          path: ['priorities', i, 'min_share'],
          at: 'value',
          message: `priorities[${i}].min_share: the lanes below "${top}" reserve ${+reserved.toFixed(4)} of every read in all; expected a sum below 1, so "${top}" still gets read`,
        },
      ];
    }
  }
  return [];
}

/** Stages and sinks name their consumer groups, so a shared name would split one group's entries. */
function checkNames(t: Topology): PathProblem[] {
  return Object.keys(t.sinks)
    .filter((name) => Object.hasOwn(t.stages, name))
    .map((name) => ({
      path: ['sinks', name],
      at: 'key' as const,
      message: `sinks.${name}: name "${name}" is also a stage; stage and sink names must differ (each names a consumer group)`,
    }));
}

function checkSelfLoops(t: Topology): PathProblem[] {
  return Object.entries(t.stages).flatMap(([name, s]) =>
    stageTargets(name, s)
      .filter((target) => target.topic === s.input)
      .map((target) => ({
        path: target.path,
        at: 'value' as const,
        message: `${target.path.join('.')}: expected a topic other than the input, got "${s.input}" (the stage would consume its own output)`,
      })),
  );
}

/**
 * Stages form a pipeline: no topic may flow back into itself through other stages. A depth-first
 * walk over topics (edges are stages, in declaration order) reports each back edge once, at the
 * stage that closes the loop. Self-loops are checkSelfLoops' job.
 */
function checkCycles(t: Topology): PathProblem[] {
  const edges = new Map<string, { stage: string; to: string; path: (string | number)[] }[]>();
  for (const [stage, s] of Object.entries(t.stages)) {
    for (const target of stageTargets(stage, s)) {
      if (target.topic === s.input) continue;
      const list = edges.get(s.input) ?? [];
      list.push({ stage, to: target.topic, path: target.path });
      edges.set(s.input, list);
    }
  }
  const state = new Map<string, 'open' | 'done'>();
  const trail: { topic: string; stage?: string }[] = [];
  const problems: PathProblem[] = [];
  const visit = (topic: string): void => {
    state.set(topic, 'open');
    for (const { stage, to, path } of edges.get(topic) ?? []) {
      trail.push({ topic, stage });
      if (state.get(to) === 'open') {
        const loop = trail.slice(trail.findIndex((s) => s.topic === to));
        const route = loop.map((s) => `${s.topic} → [${s.stage}]`).join(' → ');
        problems.push({
          path,
          at: 'value',
          message: `${path.join('.')}: "${to}" closes a cycle ${route} → ${to}; stages must form a pipeline without loops`,
        });
      } else if (!state.has(to)) visit(to);
      trail.pop();
    }
    state.set(topic, 'done');
  };
  const starts = [t.ingest.topic, ...Object.keys(t.topics), ...edges.keys()];
  for (const topic of starts) if (!state.has(topic)) visit(topic);
  return problems;
}

/** A topic nobody reads only grows until retention trims it: a wiring mistake, not a feature. */
function checkReaders(t: Topology): PathProblem[] {
  const read = new Set([...Object.values(t.stages).map((s) => s.input), ...Object.values(t.sinks).map((s) => s.input)]);
  return Object.keys(t.topics)
    .filter((name) => !read.has(name) && !t.topics[name]!.external)
    .map((name) => ({
      path: ['topics', name],
      at: 'key' as const,
      message: `topics.${name}: no stage or sink reads topic "${name}" (add one with input: ${name}, or remove the topic)`,
    }));
}
