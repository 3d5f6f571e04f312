// The POST /v1/transactions body (design §3): parsed strictly, so a typo in a field name is an
// error rather than silently dropped data. Limits here bound what one event costs downstream.
import { z } from 'zod';
import { MERCHANT_ID_PATTERN, TRANSACTION_TYPES } from '../core/event.ts';
import { malformedJson, validationFailed } from '../core/http/problem.ts';
import type { FieldError } from '../core/errors.ts';

/** Metadata keys start with a letter or digit: no `__proto__`, nothing odd in downstream JSON paths. */
const METADATA_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
export const METADATA_MAX_ENTRIES = 50;
export const METADATA_MAX_VALUE = 500;
const MAX_ERRORS = 50;

// ICU's list: the codes this runtime can format, i.e. real, current ISO 4217 codes.
const CURRENCIES: ReadonlySet<string> = new Set(Intl.supportedValuesOf('currency'));

/**
 * Text Postgres can store: no NUL (text columns refuse it) and no lone UTF-16 surrogate (it would be
 * stored as U+FFFD, changing the data). Accepting either would stall the sink on a batch it cannot write.
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const storable = (s: string) => !s.includes('\u0000') && !LONE_SURROGATE.test(s);
const STORABLE = 'must not contain NUL characters or unpaired surrogates';

/** RFC 3339 that Postgres timestamptz takes: years 0001-9999, offsets within ±15:59. */
function storableTime(s: string): boolean {
  const m = /^(\d{4})-.*?(?:Z|([+-])(\d{2}):(\d{2}))$/i.exec(s);
  if (!m || Number(m[1]) < 1) return false;
  return m[2] === undefined || Number(m[3]) < 16;
}

export const TransactionBodySchema = z
  .object({
    type: z.enum(TRANSACTION_TYPES, { error: `must be one of ${TRANSACTION_TYPES.join(', ')}` }),
    merchant_id: z.string().regex(MERCHANT_ID_PATTERN, 'must be 1-64 characters of letters, digits, "_", "." or "-", starting with a letter or digit'),
    // JSON numbers are doubles: above MAX_SAFE_INTEGER an amount can no longer be represented exactly
    amount: z
      .number()
      .int('must be an integer amount in minor units')
      .positive('must be greater than 0')
      .max(Number.MAX_SAFE_INTEGER, `must be at most ${Number.MAX_SAFE_INTEGER}`),
    currency: z
      .string()
      .refine((c) => /^[A-Z]{3}$/.test(c) && CURRENCIES.has(c), 'must be an ISO 4217 currency code like "USD"')
      // the refine is invisible to JSON Schema: the OpenAPI document says it here
      .meta({ pattern: '^[A-Z]{3}$', description: 'An ISO 4217 currency code.', examples: ['USD'] }),
    reference: z.string().min(1, 'must not be empty').max(255, 'must be at most 255 characters').refine(storable, STORABLE).optional(),
    occurred_at: z.iso
      .datetime({ offset: true, error: 'must be an RFC 3339 date-time like 2024-05-01T12:00:00Z' })
      .refine(storableTime, 'must be between years 0001 and 9999 with an offset within ±15:59')
      .optional(),
    metadata: z
      .record(
        z.string().regex(METADATA_KEY_PATTERN, 'metadata keys must be 1-64 characters of letters, digits, "_", ".", ":" or "-"'),
        z.string().max(METADATA_MAX_VALUE, `must be at most ${METADATA_MAX_VALUE} characters`).refine(storable, STORABLE),
      )
      .refine((m) => Object.keys(m).length <= METADATA_MAX_ENTRIES, `must have at most ${METADATA_MAX_ENTRIES} entries`)
      .meta({ maxProperties: METADATA_MAX_ENTRIES })
      .optional(),
  })
  .strict();

export type TransactionBody = z.output<typeof TransactionBodySchema>;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes → the JSON they hold, or a 400 malformed-json ProblemError (the single and batch bodies). */
export function parseJsonBody(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch (err) {
    const why = err instanceof SyntaxError ? err.message : 'the body is not UTF-8';
    throw malformedJson('The request body is not valid JSON.', { errors: [{ path: '', message: why }] });
  }
}

/** Bytes → validated body, or a 400 ProblemError listing every field error. */
export function parseTransactionBody(bytes: Uint8Array): TransactionBody {
  const checked = checkBody(parseJsonBody(bytes));
  if (checked.ok) return checked.body;
  throw validationFailed('The request body does not match the transaction schema.', { errors: checked.errors });
}

/** A parsed JSON value → the validated body, or every field error (the single body, each line of a batch). */
export function checkBody(raw: unknown): { ok: true; body: TransactionBody } | { ok: false; errors: FieldError[] } {
  const fast = fastCheckBody(raw);
  if (fast) return { ok: true, body: fast };
  const res = TransactionBodySchema.safeParse(raw, {
    // a missing field reads better as "is required" than as "expected string, received undefined"
    error: (iss) => (iss.code === 'invalid_type' && iss.input === undefined ? 'is required' : undefined),
  });
  return res.success ? { ok: true, body: res.data } : { ok: false, errors: fieldErrors(res.error.issues) };
}

/** Zod issues → [{ path: JSON Pointer, message }]; an unknown key is reported at its own path. */
export function fieldErrors(issues: readonly z.core.$ZodIssue[]): FieldError[] {
  const out: FieldError[] = [];
  for (const iss of issues) {
    if (iss.code === 'unrecognized_keys') {
      for (const k of iss.keys) out.push({ path: pointer([...iss.path, k]), message: 'is not a known field' });
    } else {
      out.push({ path: pointer(iss.path), message: iss.message });
    }
  }
  return out.slice(0, MAX_ERRORS);
}

export function pointer(path: readonly PropertyKey[]): string {
  return path.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

// The hot path's check: the rules of TransactionBodySchema written out by hand, ~10× cheaper than
// zod on the common case of a valid body. It only ever says "valid" or "ask zod": a body it does
// not accept goes through the schema, which stays the one source of the error messages.
// test/fast-check.test.ts holds the two to the same verdicts and output on generated bodies.
const TYPES: ReadonlySet<unknown> = new Set(TRANSACTION_TYPES);
const FIELDS: ReadonlySet<string> = new Set(['type', 'merchant_id', 'amount', 'currency', 'reference', 'occurred_at', 'metadata']);
// the regex zod's z.iso.datetime({ offset: true }) checks with
const DATETIME = z.core.regexes.datetime({ offset: true, local: false, precision: null });
const CURRENCY = /^[A-Z]{3}$/;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The body when it is valid by every rule of TransactionBodySchema; undefined: let zod decide (and explain). */
export function fastCheckBody(raw: unknown): TransactionBody | undefined {
  if (!isObject(raw)) return undefined;
  for (const k in raw) if (!FIELDS.has(k)) return undefined;
  const { type, merchant_id, amount, currency, reference, occurred_at, metadata } = raw;
  if (!TYPES.has(type)) return undefined;
  if (typeof merchant_id !== 'string' || !MERCHANT_ID_PATTERN.test(merchant_id)) return undefined;
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0) return undefined;
  if (typeof currency !== 'string' || !CURRENCY.test(currency) || !CURRENCIES.has(currency)) return undefined;
  if (reference !== undefined && (typeof reference !== 'string' || reference.length < 1 || reference.length > 255 || !storable(reference))) return undefined;
  if (occurred_at !== undefined && (typeof occurred_at !== 'string' || !DATETIME.test(occurred_at) || !storableTime(occurred_at))) return undefined;
  if (metadata !== undefined) {
    if (!isObject(metadata)) return undefined;
    let n = 0;
    for (const k in metadata) {
      const v = metadata[k];
      if (++n > METADATA_MAX_ENTRIES || !METADATA_KEY_PATTERN.test(k) || typeof v !== 'string' || v.length > METADATA_MAX_VALUE || !storable(v))
        return undefined;
    }
  }
  return raw as TransactionBody;
}
