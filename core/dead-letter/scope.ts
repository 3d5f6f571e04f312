// Which dead-letter streams exist: every stage's and sink's, in every partition of its input.
// A dead letter's public id is `<stage>/<partition>/<entry id>`. Every pipeline holds one
// partition's keys only (one hash tag, one Redis Cluster slot); partitions run side by side.
import { ConfigError } from '../errors.ts';
import type { Keys } from '../keys.ts';
import type { RedisClient } from '../redis.ts';
import type { Topology } from '../topology/schema.ts';
import { canonicalId, isEntryId } from '../stream-id.ts';

export class DeadLetterScope {
  constructor(
    readonly redis: RedisClient,
    readonly keys: Keys,
    readonly topology: Topology,
  ) {}

  /** Every stage and sink: each has dead-letter streams named after it. */
  stages(): string[] {
    return [...Object.keys(this.topology.stages), ...Object.keys(this.topology.sinks)];
  }

  /** `stage` checked against the topology; all stages when undefined. */
  selectStages(stage?: string): string[] {
    if (stage === undefined) return this.stages();
    if (!this.inputOf(stage)) throw new ConfigError(`no stage or sink named "${stage}" in the topology (have: ${this.stages().join(', ')})`);
    return [stage];
  }

  parseId(id: string): { stage: string; partition: number; entryId: string } {
    const parts = id.split('/');
    const [stage, p, entryId] = parts;
    const partition = Number(p);
    if (parts.length !== 3 || !stage || !/^\d+$/.test(p ?? '') || !isEntryId(entryId ?? '')) {
      throw new ConfigError(`bad dead-letter id "${id}": expected <stage>/<partition>/<entry id>, e.g. validate/3/1717000000000-0`);
    }
    this.selectStages(stage);
    if (partition < 0 || partition >= this.partitions(stage)) throw new ConfigError(`bad dead-letter id "${id}": no partition ${partition}`);
    // canonical, as Redis writes ids: a page's cursor is compared with them unparsed (list.ts)
    return { stage, partition, entryId: canonicalId(entryId!) };
  }

  inputOf(stage: string): string | undefined {
    return this.topology.stages[stage]?.input ?? this.topology.sinks[stage]?.input;
  }

  partitions(stage: string): number {
    return this.topology.topics[this.inputOf(stage)!]?.partitions ?? 0;
  }

  partitionList(stages: readonly string[]): number[] {
    const n = Math.max(0, ...stages.map((s) => this.partitions(s)));
    return Array.from({ length: n }, (_, i) => i);
  }
}
