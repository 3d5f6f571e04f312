// Routing: where a processor's extra events go (their topic's lane in the same partition), and
// which parked queue an event belongs to (its merchant within its lane).
import type { Emitted } from '../processor.ts';
import type { TransactionEvent } from '../event.ts';
import { entryArgs } from '../entry.ts';
import type { BatchContext } from './batch-types.ts';
import type { Output } from './settlement.ts';

/** A processor's extra event, appended in the same partition (same script, same slot). */
export function emitted(ctx: BatchContext, stage: string, partition: number, e: Emitted, traceparent?: string): Output {
  if (!ctx.topology.topics[e.topic]) throw new Error(`stage ${stage} emitted to undeclared topic "${e.topic}"`);
  return {
    op: 'xadd',
    key: ctx.keys.lane(e.topic, partition, ctx.lanes.laneOf(e.event.type)),
    fields: entryArgs({ txId: e.event.id, event: JSON.stringify(e.event), traceparent }),
  };
}

/** The parking member of an event: its merchant within its lane. */
export function memberOf(lane: string, event: TransactionEvent): string {
  return `${lane}|${String(event.merchant_id)}`;
}
