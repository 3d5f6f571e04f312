// The dead-letter record, in one place: its layout (the field names), how a stage or sink writes
// it when it gives up on an entry (the letter in the stage's dead-letter stream, and its line in
// the partition's dead-letter index), and how the CLI and the console read it back.
import type { RawEntry } from '../consumer/lane-reader.ts';
import type { Output } from '../consumer/settlement.ts';
import { F_EVENT, F_FIRST_FAILED, F_TRACE, F_TX_ID, fieldOf, fieldsToMap } from '../entry.ts';
import type { Keys } from '../keys.ts';
import { idMs } from '../stream-id.ts';

/** The stored field of each part of a dead letter. */
export const DEAD_LETTER_FIELD = {
  tx: F_TX_ID,
  event: F_EVENT,
  traceparent: F_TRACE,
  error: 'error',
  message: 'message',
  stage: 'stage',
  attempts: 'attempts',
  originStream: 'origin_stream',
  originId: 'origin_id',
  firstFailedAt: 'first_failed_at',
  lastFailedAt: 'last_failed_at',
} as const;

const KNOWN_FIELDS: ReadonlySet<string> = new Set(Object.values(DEAD_LETTER_FIELD));

export interface DeadLetter {
  /** `<stage>/<partition>/<entry id>`. */
  id: string;
  stage: string;
  partition: number;
  /** Entry id in the dead-letter stream (its time is when it was dead-lettered). */
  entryId: string;
  tx: string;
  /** The event as JSON, as it was when it failed. */
  event: string;
  traceparent?: string;
  error: string;
  message: string;
  attempts: number;
  originStream: string;
  originId: string;
  firstFailedAt: number;
  lastFailedAt: number;
  /** Every stored field, including any this version does not know. */
  fields: Record<string, string>;
}

/** A dead-letter stream entry as XRANGE returns it: id, then flat field/value pairs. */
export type StoredDeadLetter = [string, string[]];

/** The dead letter itself and its line in the partition's dead-letter index (tx id → where, why). */
export function deadLetterOutputs(keys: Keys, stage: string, raw: RawEntry, error: Error, now: number, attempts?: number): Output[] {
  const fields = deadLetterFields(stage, raw, error, now, attempts);
  const tx = raw.fields ? fieldOf(raw.fields, F_TX_ID) : undefined;
  const out: Output[] = [{ op: 'xadd', key: keys.deadLetter(stage, raw.partition), fields }];
  if (tx)
    out.push({
      op: 'hset',
      key: keys.deadLetterIndex(raw.partition),
      field: tx,
      value: JSON.stringify({ stage, error: error.name, message: error.message.slice(0, 500), at: now }),
    });
  return out;
}

/** A dead letter keeps the event and everything needed to understand and redrive it. */
export function deadLetterFields(stage: string, raw: RawEntry, error: Error, now: number, attempts = Math.max(1, raw.deliveries)): string[] {
  const map = raw.fields ? fieldsToMap(raw.fields) : new Map<string, string>();
  const F = DEAD_LETTER_FIELD;
  const fields = [
    F.tx,
    map.get(F_TX_ID) ?? '',
    F.event,
    map.get(F_EVENT) ?? '',
    F.error,
    error.name || 'Error',
    F.message,
    error.message.slice(0, 2_000),
    F.stage,
    stage,
    F.attempts,
    String(attempts),
    F.originStream,
    raw.stream,
    F.originId,
    raw.id,
    F.firstFailedAt,
    map.get(F_FIRST_FAILED) ?? String(now),
    F.lastFailedAt,
    String(now),
  ];
  const tp = map.get(F_TRACE);
  if (tp) fields.push(F.traceparent, tp);
  return fields;
}

/** A stored dead letter, read back; missing or unreadable numbers fall back to its entry time. */
export function decodeDeadLetter(stage: string, partition: number, [entryId, raw]: StoredDeadLetter): DeadLetter {
  const f = fieldRecord(raw);
  const F = DEAD_LETTER_FIELD;
  const at = deadLetteredAt(entryId);
  const num = (v: string | undefined, fallback: number) => (v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : fallback);
  return {
    id: `${stage}/${partition}/${entryId}`,
    stage,
    partition,
    entryId,
    tx: f[F.tx] ?? '',
    event: f[F.event] ?? '',
    traceparent: f[F.traceparent],
    error: f[F.error] ?? '',
    message: f[F.message] ?? '',
    attempts: num(f[F.attempts], 0),
    originStream: f[F.originStream] ?? '',
    originId: f[F.originId] ?? '',
    firstFailedAt: num(f[F.firstFailedAt], at),
    lastFailedAt: num(f[F.lastFailedAt], at),
    fields: f,
  };
}

/** When it was dead-lettered (unix ms): the time of its entry id. */
export function deadLetteredAt(entryId: string): number {
  return idMs(entryId);
}

/** Stored fields this version does not name (written by a newer one, or by hand). */
export function unknownFields(d: DeadLetter): [string, string][] {
  return Object.entries(d.fields).filter(([k]) => !KNOWN_FIELDS.has(k));
}

/** Flat field/value pairs as a record. */
export function fieldRecord(raw: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) out[raw[i]!] = raw[i + 1]!;
  return out;
}
