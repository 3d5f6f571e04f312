// The dead-letter record: what a stage or sink writes when it gives up on an entry (the letter
// in the stage's dead-letter stream, and its line in the partition's dead-letter index).
import type { Keys } from '../keys.ts';
import { F_EVENT, F_FIRST_FAILED, F_TRACE, F_TX, fieldsToMap } from '../entry.ts';
import type { RawEntry } from './lane-reader.ts';
import type { Output } from './settlement.ts';

/** The dead letter itself and its line in the partition's dead-letter index (tx id → where, why). */
export function deadLetterOutputs(keys: Keys, stage: string, raw: RawEntry, error: Error, now: number, attempts?: number): Output[] {
  const fields = deadLetterFields(stage, raw, error, now, attempts);
  const tx = raw.fields ? fieldsToMap(raw.fields).get(F_TX) : undefined;
  const out: Output[] = [{ op: 'x', key: keys.deadLetter(stage, raw.partition), fields }];
  if (tx)
    out.push({
      op: 'h',
      key: keys.deadLetterIndex(raw.partition),
      field: tx,
      value: JSON.stringify({ stage, error: error.name, message: error.message.slice(0, 500), at: now }),
    });
  return out;
}

/** A dead letter keeps the event and everything needed to understand and redrive it. */
export function deadLetterFields(stage: string, raw: RawEntry, error: Error, now: number, attempts = Math.max(1, raw.deliveries)): string[] {
  const map = raw.fields ? fieldsToMap(raw.fields) : new Map<string, string>();
  const fields = [
    F_TX,
    map.get(F_TX) ?? '',
    F_EVENT,
    map.get(F_EVENT) ?? '',
    'error',
    error.name || 'Error',
    'message',
    error.message.slice(0, 2_000),
    'stage',
    stage,
    'attempts',
    String(attempts),
    'origin_stream',
    raw.stream,
    'origin_id',
    raw.id,
    'first_failed_at',
    map.get(F_FIRST_FAILED) ?? String(now),
    'last_failed_at',
    String(now),
  ];
  const tp = map.get(F_TRACE);
  if (tp) fields.push(F_TRACE, tp);
  return fields;
}
