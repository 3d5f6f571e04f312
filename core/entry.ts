// Stream entry layout. Few fields, one JSON body: cheaper to XADD and parse than a field per column.
//   tx  transaction id (for idempotent effects and lookups without parsing)
//   ev  the event as JSON
//   tp  W3C traceparent, when tracing
export const F_TX_ID = 'tx';
export const F_EVENT = 'ev';
export const F_TRACE = 'tp';

export interface EntryFields {
  txId: string;
  /** The event as JSON. */
  event: string;
  traceparent?: string | undefined;
}

/** Flatten to the XADD field/value list. */
export function entryArgs(fields: EntryFields): string[] {
  const args = [F_TX_ID, fields.txId, F_EVENT, fields.event];
  if (fields.traceparent) args.push(F_TRACE, fields.traceparent);
  return args;
}

/** One field of an entry's field/value list (no Map: two or three fields per entry, every event). */
export function fieldOf(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** Read the field/value list Redis returns into a map. */
export function fieldsToMap(raw: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) m.set(raw[i]!, raw[i + 1]!);
  return m;
}

/** Attempts already spent on this event before this entry was (re)appended (retries, redrives). */
export const F_ATTEMPTS = 'at';
/** Unix ms of the event's first failure at this stage. */
export const F_FIRST_FAILED = 'ff';
