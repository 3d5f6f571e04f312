// Who reads a topic: its stages and sinks (each one consumer group on its lane streams).
import type { Topology } from './schema.ts';

/** The stages and sinks reading `topic`, in topology order. */
export function readersOf(topology: Topology, topic: string): string[] {
  return [
    ...Object.entries(topology.stages)
      .filter(([, s]) => s.input === topic)
      .map(([n]) => n),
    ...Object.entries(topology.sinks)
      .filter(([, s]) => s.input === topic)
      .map(([n]) => n),
  ];
}
