// Tracing: one span per event per stage, ended once the batch is settled.
import { endSpan, startEventSpan } from '../tracing.ts';
import type { Span } from '../tracing.ts';
import { F_TX_ID, fieldOf } from '../entry.ts';
import type { BatchResult, Item } from './batch-types.ts';

export function spanFor(stage: string, item: Item): Span | undefined {
  const tx = item.start ? (item.raw.fields ? fieldOf(item.raw.fields, F_TX_ID) : undefined) : item.event?.id;
  return startEventSpan(`stage ${stage}`, item.traceparent, {
    'rill.stage': stage,
    'rill.tx_id': tx ?? '',
    'rill.partition': item.raw.partition,
    'rill.lane': item.lane,
  });
}

/** End the batch's spans once it is settled. */
export function endSpans(result: BatchResult): void {
  for (const { span, outcome } of result.spans) {
    span?.setAttribute('rill.outcome', outcome?.kind ?? 'parked');
    endSpan(span, !outcome || outcome.kind === 'ok' ? undefined : outcome.error);
  }
}
