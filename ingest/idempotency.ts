// Idempotency-Key handling. The key is checked and the event appended in one Lua script (see
// append/scripts/append-events-var.lua); this module validates the header, encodes a validated body once in
// canonical form (its fingerprint and the stream entry's `ev` both come from that one string) and
// packs the compact record the script keeps for 24 h: 12 bytes of fingerprint + the tx id's
// 16-byte ULID (28 bytes, a Redis embedded string: see core/keys.ts for the key).
import { hash } from 'node:crypto';
import { badRequest } from '../core/http/problem.ts';
import { TX_ID_BYTES, txIdBytes } from '../core/tx-id.ts';
import type { TransactionBody } from './validation.ts';

/** 1-255 printable ASCII characters (space allowed inside): what fits a header and a Redis key. */
const KEY_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/;

/** The header value, undefined when absent; a 400 ProblemError when present but unusable. */
export function parseIdempotencyKey(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (!KEY_PATTERN.test(header)) {
    throw badRequest('Idempotency-Key must be 1-255 printable ASCII characters.');
  }
  return header;
}

/** Bytes of the body's SHA-256 kept in a record: 96 bits, no accidental collision in a day. */
export const FINGERPRINT_BYTES = 12;
export const RECORD_BYTES = FINGERPRINT_BYTES + TX_ID_BYTES;

/**
 * A validated body as canonical JSON (keys sorted, no whitespace; the same string as
 * canonicalJson(body)), written out for the schema's fields: the same request sent with its
 * fields in another order encodes alike, so it replays instead of conflicting.
 */
export function canonicalBody(b: TransactionBody): string {
  let s = `{"amount":${JSON.stringify(b.amount)},"currency":${JSON.stringify(b.currency)},"merchant_id":${JSON.stringify(b.merchant_id)}`;
  if (b.metadata !== undefined) s += `,"metadata":${canonicalJson(b.metadata)}`;
  if (b.occurred_at !== undefined) s += `,"occurred_at":${JSON.stringify(b.occurred_at)}`;
  if (b.reference !== undefined) s += `,"reference":${JSON.stringify(b.reference)}`;
  return `${s},"type":${JSON.stringify(b.type)}}`;
}

/** SHA-256 of the canonical body: its first 12 bytes are the record's fingerprint. */
export function bodyDigest(canonical: string): Buffer {
  return hash('sha256', canonical, 'buffer') as Buffer;
}

/** The record an Idempotency-Key keeps: the canonical body's fingerprint, then the tx id's ULID. */
export function idempotencyRecord(digest: Buffer, txId: string): Buffer {
  const out = Buffer.allocUnsafe(RECORD_BYTES);
  digest.copy(out, 0, 0, FINGERPRINT_BYTES);
  txIdBytes(txId, out, FINGERPRINT_BYTES);
  return out;
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const parts = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
