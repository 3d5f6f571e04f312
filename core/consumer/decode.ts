// Decoding: a stream entry's fields into the event a processor sees, or the reason it cannot be
// (the poison guard in chain-batch.ts dead-letters those at once).
import type { StreamEvent } from '../processor.ts';
import type { TransactionEvent } from '../event.ts';
import { F_EVENT, F_TRACE, F_TX_ID, fieldOf } from '../entry.ts';
import type { RawEntry } from './lane-reader.ts';

export function decode(raw: RawEntry): StreamEvent | Error {
  if (!raw.fields) return new Error('entry was trimmed from the stream before it was processed');
  const tx = fieldOf(raw.fields, F_TX_ID);
  const ev = fieldOf(raw.fields, F_EVENT);
  if (!tx || !ev) return new Error(`entry lacks the ${tx ? F_EVENT : F_TX_ID} field`);
  let event: TransactionEvent;
  try {
    event = JSON.parse(ev) as TransactionEvent;
  } catch {
    return new Error('entry body is not JSON');
  }
  return {
    entryId: raw.id,
    stream: raw.stream,
    partition: raw.partition,
    lane: raw.lane,
    txId: tx,
    event,
    traceparent: fieldOf(raw.fields, F_TRACE),
    deliveries: Math.max(1, raw.deliveries),
  };
}
