// The lane of an event type: the first priority class listing it, else the lowest class.
import type { PriorityConfig } from './topology/schema.ts';

export class LaneMap {
  private readonly byType = new Map<string, string>();
  readonly lowest: string;

  constructor(readonly priorities: readonly PriorityConfig[]) {
    for (const p of priorities) for (const t of p.types) if (!this.byType.has(t)) this.byType.set(t, p.name);
    this.lowest = priorities[priorities.length - 1]!.name;
  }

  laneOf(type: string): string {
    return this.byType.get(type) ?? this.lowest;
  }
}
