// Idempotency-Key handling. The key is checked and the event appended in one Lua script (see
// scripts/append-events.lua); this module only validates the header and fingerprints bodies.
import { createHash } from 'node:crypto';
import { badRequest } from './problem.ts';

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

/**
 * SHA-256 of the body in canonical form (keys sorted, no whitespace), so the same request sent
 * with its fields in another order still replays instead of conflicting.
 */
export function fingerprint(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
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
