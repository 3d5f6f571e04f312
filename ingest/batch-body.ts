// Batch bodies of POST /v1/transactions/batch (design §3): NDJSON (one JSON object per line,
// blank lines ignored) or a JSON array. The batch as a whole can fail only on its envelope (415,
// 413, 400 for an empty or unreadable batch); every event is checked on its own, like the single
// endpoint's body (the same check: validation.ts checkBody), so one bad line rejects only that line.
import { acceptedMediaType } from './body.ts';
import { parseIdempotencyKey } from './idempotency.ts';
import { badRequest, payloadTooLarge, problemType } from '../core/http/problem.ts';
import { checkBody, parseJsonBody } from './validation.ts';
import type { TransactionBody } from './validation.ts';

/** Most events in one batch (413 past it). */
export const BATCH_MAX_EVENTS = 10_000;
/** Largest batch body, chunked ones included (413 past it). */
export const BATCH_MAX_BYTES = 5 * 1024 * 1024;

export const NDJSON = 'application/x-ndjson';
export type BatchFormat = 'ndjson' | 'json';

/** The per-line idempotency key's field: taken out of the event before validation and fingerprinting. */
export const LINE_IDEMPOTENCY_FIELD = 'idempotency_key';

/**
 * Why one event of a batch was rejected. `type` and `status` are what the single endpoint would
 * have answered for it (validation-failed 400, forbidden 403, idempotency-conflict 409,
 * rate-limited 429, ...); `path` is a JSON Pointer into that event ("" is the event itself).
 */
export interface LineError {
  type: string;
  status: number;
  path: string;
  message: string;
}

export type CheckedLine =
  | { index: number; ok: true; body: TransactionBody; idempotencyKey: string | undefined }
  | { index: number; ok: false; errors: LineError[] };

const BATCH_MEDIA = [NDJSON, 'application/json'] as const;

/** The batch format from Content-Type; 415 for anything else, a non-UTF-8 charset or a compressed body. */
export function batchFormat(contentType: string | undefined, contentEncoding: string | undefined): BatchFormat {
  return acceptedMediaType(contentType, contentEncoding, BATCH_MEDIA, 'Batch') === NDJSON ? 'ndjson' : 'json';
}

/** A line that is not JSON (or not UTF-8): it carries its own error instead of a value. */
class Unreadable {
  constructor(readonly message: string) {}
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const LF = 0x0a;
const CR = 0x0d;

/**
 * Bytes → one checked line per event, in order (`index` counts events from 0: the array index,
 * or the n-th non-blank NDJSON line). Throws 400 for an empty batch or a JSON body that is not an
 * array, 413 past `maxEvents`.
 */
export function parseBatch(bytes: Uint8Array, format: BatchFormat, maxEvents: number = BATCH_MAX_EVENTS): CheckedLine[] {
  const values = format === 'ndjson' ? ndjsonValues(bytes, maxEvents) : arrayValues(bytes, maxEvents);
  if (values.length === 0) throw badRequest('The batch is empty: send at least one transaction.');
  return values.map((v, index) => checkLine(index, v));
}

function tooMany(maxEvents: number) {
  return payloadTooLarge(`A batch holds at most ${maxEvents} transactions.`);
}

// Lines are split on the byte 0x0A, which never occurs inside a multi-byte UTF-8 sequence, and
// decoded one by one: a line with bad bytes rejects that line only.
function ndjsonValues(bytes: Uint8Array, maxEvents: number): unknown[] {
  const out: unknown[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(LF, start);
    if (end === -1) end = bytes.length;
    const stop = end > start && bytes[end - 1] === CR ? end - 1 : end;
    const value = readLine(bytes.subarray(start, stop));
    if (value !== BLANK) {
      if (out.length === maxEvents) throw tooMany(maxEvents);
      out.push(value);
    }
    start = end + 1;
  }
  return out;
}

const BLANK = Symbol('blank line');

function readLine(line: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch {
    return new Unreadable('the line is not UTF-8');
  }
  if (text.trim() === '') return BLANK;
  try {
    return JSON.parse(text);
  } catch (err) {
    return new Unreadable(err instanceof SyntaxError ? err.message : 'the line is not JSON');
  }
}

function arrayValues(bytes: Uint8Array, maxEvents: number): unknown[] {
  const raw = parseJsonBody(bytes);
  if (!Array.isArray(raw)) {
    throw badRequest(`An application/json batch must be a JSON array of transactions (or send ${NDJSON}).`);
  }
  if (raw.length > maxEvents) throw tooMany(maxEvents);
  return raw;
}

const VALIDATION = problemType('validation-failed');

function checkLine(index: number, value: unknown): CheckedLine {
  if (value instanceof Unreadable) {
    return { index, ok: false, errors: [{ type: problemType('malformed-json'), status: 400, path: '', message: value.message }] };
  }
  const errors: LineError[] = [];
  let event = value;
  let idempotencyKey: string | undefined;
  if (isPlainObject(value) && Object.hasOwn(value, LINE_IDEMPOTENCY_FIELD)) {
    const { [LINE_IDEMPOTENCY_FIELD]: key, ...rest } = value;
    event = rest;
    idempotencyKey = typeof key === 'string' ? validKey(key) : undefined;
    if (idempotencyKey === undefined) {
      errors.push({ type: VALIDATION, status: 400, path: `/${LINE_IDEMPOTENCY_FIELD}`, message: 'must be 1-255 printable ASCII characters' });
    }
  }
  const checked = checkBody(event);
  if (!checked.ok) errors.push(...checked.errors.map((e) => ({ type: VALIDATION, status: 400, ...e })));
  if (!checked.ok || errors.length) return { index, ok: false, errors };
  return { index, ok: true, body: checked.body, idempotencyKey };
}

/** The Idempotency-Key header's rules (idempotency.ts), without its 400. */
function validKey(key: string): string | undefined {
  try {
    return parseIdempotencyKey(key);
  } catch {
    return undefined;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
