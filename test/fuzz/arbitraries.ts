// fast-check arbitraries for the ingest edge: requests as a hostile or confused client sends them.
// Everything here is pure data (no keys, no sockets): keys are named (KeyName) and resolved by the
// runner, so a failing case's seed/path replays to the same request on any instance.
import fc from 'fast-check';
import type { RouteInfo } from './harness.ts';

export const MERCHANT_A = 'm_fuzz_a';
export const MERCHANT_B = 'm_fuzz_b';
const TYPES = ['payin', 'payout', 'refund', 'chargeback'] as const;
const CURRENCIES = ['USD', 'EUR', 'GBP', 'JPY', 'CHF', 'SEK', 'BRL', 'INR'] as const;
const enc = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Keys and Authorization

/** a, b: merchant keys of MERCHANT_A / MERCHANT_B; tap: a tap key; the rest authenticate nobody. */
export type KeyName = 'a' | 'b' | 'tap' | 'revoked' | 'unknown' | 'wrongSecret' | 'truncated' | 'extended' | 'otherCase';
export type AuthSpec = { kind: 'none' } | { kind: 'key'; key: KeyName; scheme: string; trailer: string } | { kind: 'raw'; value: string };

/** Characters a header value may carry (what fetch's Headers and Node accept): tab, visible ASCII, space, obs-text. */
export const headerChar = fc
  .oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
    { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
    { weight: 1, arbitrary: fc.constant(0x09) },
  )
  .map((c) => String.fromCharCode(c));
export const headerValue = (maxLength = 200) => fc.string({ unit: headerChar, maxLength });
const printableAscii = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));
const hexChar = fc.constantFrom(...'0123456789abcdef');
const b64urlChar = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');
const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
export const headerName = fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 30 });

export const authArb: fc.Arbitrary<AuthSpec> = fc.oneof(
  { weight: 10, arbitrary: fc.constant<AuthSpec>({ kind: 'key', key: 'a', scheme: 'Bearer ', trailer: '' }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('key' as const),
      key: fc.constantFrom<KeyName>('a', 'b', 'tap', 'revoked', 'unknown', 'wrongSecret', 'truncated', 'extended', 'otherCase'),
      scheme: fc.constantFrom('Bearer ', 'Bearer ', 'bearer ', 'BEARER ', 'Bearer   ', 'Bearer', 'Bearer\t', 'Basic ', 'Token ', '', 'Bearer: ', 'Bearer rk_ '),
      trailer: fc.constantFrom('', '', '', ' ', '  ', '\t', 'x', ',', ' extra', '=', '%00'),
    }),
  },
  { weight: 2, arbitrary: fc.constant<AuthSpec>({ kind: 'none' }) },
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        headerValue(300),
        fc.string({ unit: printableAscii, maxLength: 80 }).map((s) => `Bearer ${s}`),
        // well-formed but unknown ids: a Postgres lookup each, then the negative cache
        fc
          .tuple(fc.string({ unit: hexChar, minLength: 16, maxLength: 16 }), fc.string({ unit: b64urlChar, minLength: 43, maxLength: 43 }))
          .map(([id, s]) => `Bearer rk_${id}_${s}`),
        fc.string({ unit: b64urlChar, maxLength: 60 }).map((s) => `Basic ${s}`),
        fc.integer({ min: 1_000, max: 12_000 }).map((n) => `Bearer ${'A'.repeat(n)}`),
        fc.constantFrom(
          'Bearer',
          'Bearer ',
          'Bearer rk_',
          'Bearer rk__',
          'Bearer null',
          'Bearer undefined',
          'Bearer [object Object]',
          'Bearer a b',
          'Negotiate x',
          ',',
        ),
      )
      .map((value): AuthSpec => ({ kind: 'raw', value })),
  },
);

// ---------------------------------------------------------------------------------------------
// JSON bodies

export const validTx = fc.record(
  {
    type: fc.constantFrom(...TYPES),
    merchant_id: fc.constantFrom(MERCHANT_A, MERCHANT_A, MERCHANT_A, MERCHANT_B),
    amount: fc.oneof(fc.integer({ min: 1, max: 1_000_000 }), fc.constantFrom(1, Number.MAX_SAFE_INTEGER)),
    currency: fc.constantFrom(...CURRENCIES),
    reference: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }),
    occurred_at: fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString()),
    metadata: fc.dictionary(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}$/), fc.string({ unit: 'grapheme', maxLength: 40 }), { maxKeys: 5 }),
  },
  { requiredKeys: ['type', 'merchant_id', 'amount', 'currency'] },
);

const FIELDS = ['type', 'merchant_id', 'amount', 'currency', 'reference', 'occurred_at', 'metadata'] as const;
type Field = (typeof FIELDS)[number];

/** JSON texts that are valid JSON (or nearly) but never what the field wants, or only just. */
const EDGE: Record<Field, readonly string[]> = {
  type: [
    '"PAYIN"',
    '"payin "',
    '" payin"',
    '"payin\\u0000"',
    '"__proto__"',
    '"constructor"',
    '"toString"',
    '""',
    '["payin"]',
    '{"payin":1}',
    'true',
    '0',
    'null',
  ],
  merchant_id: [
    '"m_fuzz_a "',
    '"m_fuzz_a\\u0000"',
    '"M_FUZZ_A"',
    '"m_fuzz_a:x"',
    '"{1}"',
    '"*"',
    '"m_fuzz_b"',
    '"-a"',
    `"${'a'.repeat(64)}"`,
    `"${'a'.repeat(65)}"`,
    '"m_fuzz_\\u0430"',
    '"m_fuzz_a\\n"',
    '["m_fuzz_a"]',
    '42',
    '""',
  ],
  amount: [
    '0',
    '-0',
    '-1',
    '1.5',
    '0.1e1',
    '1E2',
    '1.0',
    '1e308',
    '1e309',
    '-1e309',
    '1e-308',
    '5e-324',
    '9007199254740991',
    '9007199254740992',
    '9007199254740993',
    '18446744073709551616',
    '1e21',
    '123456789012345678901234567890',
    '"100"',
    '"1e3"',
    'true',
    'null',
    '[1]',
    '{"value":1}',
    '0x10',
    '00',
    '01',
    'NaN',
    'Infinity',
    '-Infinity',
    '1_000',
    '+1',
    '.5',
    '5.',
  ],
  currency: ['"usd"', '"US"', '"USDD"', '"XXX"', '"XTS"', '"XYZ"', '"€"', '"ＵＳＤ"', '"USD "', '" USD"', '"U\\u0000D"', '840', '["USD"]', '""'],
  reference: [
    '""',
    `"${'r'.repeat(255)}"`,
    `"${'r'.repeat(256)}"`,
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u202e"',
    '"\\n\\r\\t"',
    '"\\\\"',
    '"<script>"',
    '"\'; DROP TABLE transactions; --"',
    '1',
    'null',
    '{}',
  ],
  occurred_at: [
    '"2024-02-30T00:00:00Z"',
    '"0000-01-01T00:00:00Z"',
    '"9999-12-31T23:59:59Z"',
    '"2024-01-01T00:00:00+24:00"',
    '"2024-01-01T00:00:00+23:59"',
    '"2024-01-01T00:00:00.1234567890Z"',
    '"2024-01-01t00:00:00z"',
    '"2024-01-01 00:00:00Z"',
    '"+002024-01-01T00:00:00Z"',
    '"2024-01-01T24:00:00Z"',
    '"2024-01-01T23:59:60Z"',
    '"2024-01-01"',
    '"yesterday"',
    '1714560000000',
    'null',
  ],
  metadata: [
    '{"__proto__":"x"}',
    '{"__proto__":{"polluted":"yes"}}',
    '{"constructor":"x"}',
    '{"constructor":{"prototype":{"polluted":"yes"}}}',
    '{"prototype":"x"}',
    '{"hasOwnProperty":"x"}',
    '{"toString":"x"}',
    '{"a":"b","a":1}',
    '{"":"x"}',
    '{"k":null}',
    '{"k":1}',
    '{"k":{"k":"v"}}',
    '[]',
    '["a"]',
    '"x"',
    'null',
    `{${Array.from({ length: 51 }, (_, i) => `"k${i}":"v"`).join(',')}}`,
    `{"k":"${'v'.repeat(501)}"}`,
    `{"${'k'.repeat(65)}":"v"}`,
  ],
};

/** Keys that reach for the prototype chain, or for code that trusts field names. */
const POLLUTION_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  '__defineGetter__',
  '__lookupGetter__',
  'hasOwnProperty',
  'toString',
  'valueOf',
  'then',
  'toJSON',
  'id',
  'status',
  'ingested_at',
  'idempotency_key',
  'merchant_id ',
];
const POLLUTION_VALUES = [
  '{"polluted":"yes"}',
  '{"prototype":{"polluted":"yes"}}',
  '{"isAdmin":true}',
  '"yes"',
  'null',
  '[]',
  '{"__proto__":{"polluted":"yes"}}',
];

/** `{"a":…` n deep, and the like: nesting past any recursion limit a parser or serializer may have. */
const deepNesting = fc.tuple(fc.integer({ min: 1, max: 12_000 }), fc.constantFrom('[', '{"a":', '{"metadata":')).map(([n, open]) => {
  const close = open === '[' ? ']' : '}';
  return open.repeat(n) + (open === '[' ? '' : '1') + close.repeat(n);
});

/** Raw JSON text for a value of no particular kind. */
const anyValueText: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 2, arbitrary: fc.constantFrom(...EDGE.amount) },
  { weight: 1, arbitrary: fc.double().map((d) => (Number.isFinite(d) ? String(d) : '1e400')) },
  { weight: 1, arbitrary: fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String) },
  // 'binary' strings include lone surrogates and NUL; JSON.stringify escapes them
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }).map((s) => JSON.stringify(s)) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 80 }).map((s) => JSON.stringify(s)) },
  { weight: 1, arbitrary: deepNesting.map((s) => s) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 70_000 }).map((n) => JSON.stringify('x'.repeat(n))) },
);

const fieldValueText = (f: Field): fc.Arbitrary<string> =>
  fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...EDGE[f]) }, { weight: 2, arbitrary: anyValueText });

type Mutation =
  | { op: 'replace'; field: Field; value: string }
  | { op: 'delete'; field: Field }
  | { op: 'add'; key: string; value: string }
  | { op: 'duplicate'; field: Field; value: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...FIELDS).chain((field) => fieldValueText(field).map((value): Mutation => ({ op: 'replace', field, value }))) },
  { weight: 2, arbitrary: fc.constantFrom(...FIELDS).map((field): Mutation => ({ op: 'delete', field })) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.oneof(fc.constantFrom(...POLLUTION_KEYS), fc.string({ unit: 'binary', maxLength: 20 })),
        fc.oneof(fc.constantFrom(...POLLUTION_VALUES), anyValueText),
      )
      .map(([key, value]): Mutation => ({ op: 'add', key, value })),
  },
  { weight: 1, arbitrary: fc.constantFrom(...FIELDS).chain((field) => fieldValueText(field).map((value): Mutation => ({ op: 'duplicate', field, value }))) },
);

/** A valid transaction as ordered [key, JSON text] pairs, then 1-3 mutations: the text may repeat keys. */
export const mutatedTxText: fc.Arbitrary<string> = fc.tuple(validTx, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([tx, muts]) => {
  let entries: [string, string][] = Object.entries(tx).map(([k, v]) => [k, JSON.stringify(v)]);
  for (const m of muts) {
    if (m.op === 'replace') {
      const i = entries.findIndex(([k]) => k === m.field);
      if (i >= 0) entries[i] = [m.field, m.value];
      else entries.push([m.field, m.value]);
    } else if (m.op === 'delete') {
      entries = entries.filter(([k]) => k !== m.field);
    } else if (m.op === 'add') {
      entries.push([m.key, m.value]);
    } else {
      entries.push([m.field, m.value]);
    }
  }
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
});

/** Whole bodies that try the prototype chain. */
const pollutionBody = fc.constantFrom(
  '{"__proto__":{"polluted":"yes"}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  `{"type":"payin","merchant_id":"${MERCHANT_A}","amount":1,"currency":"USD","__proto__":{"polluted":"yes"}}`,
  `{"type":"payin","merchant_id":"${MERCHANT_A}","amount":1,"currency":"USD","metadata":{"__proto__":{"polluted":"yes"}}}`,
  `{"__proto__":{"type":"payin","merchant_id":"${MERCHANT_A}","amount":1,"currency":"USD"}}`,
  `{"type":"payin","merchant_id":"${MERCHANT_A}","amount":1,"currency":"USD","constructor":{"prototype":{"isAdmin":true}}}`,
  '[{"__proto__":{"polluted":"yes"}}]',
  '{"__proto__":null}',
  `{"type":"payin","merchant_id":"${MERCHANT_A}","amount":1,"currency":"USD","metadata":{"constructor":"x","hasOwnProperty":"y","toString":"z"}}`,
);

/** A valid transaction padded with whitespace to about `n` bytes: valid JSON around the 64 KiB limit. */
const nearLimit = fc.tuple(validTx, fc.integer({ min: 64 * 1024 - 48, max: 64 * 1024 + 48 })).map(([tx, n]) => {
  const json = JSON.stringify(tx);
  return `{${' '.repeat(Math.max(0, n - json.length))}${json.slice(1)}`;
});

const framedBody = fc
  .tuple(validTx, fc.constantFrom('bom', 'trailing-garbage', 'two-objects', 'newline', 'utf16le', 'nul', 'latin1'))
  .map(([tx, how]): Uint8Array => {
    const json = JSON.stringify(tx);
    switch (how) {
      case 'bom':
        return enc.encode(`\uFEFF${json}`);
      case 'trailing-garbage':
        return enc.encode(`${json}x`);
      case 'two-objects':
        return enc.encode(`${json}${json}`);
      case 'newline':
        return enc.encode(`\r\n${json}\n\n`);
      case 'utf16le':
        return new Uint8Array(Buffer.from(json, 'utf16le'));
      case 'nul':
        return enc.encode(`${json}\u0000`);
      default:
        return new Uint8Array(Buffer.from(json.replace('"type"', '"t\u00ffpe"'), 'latin1'));
    }
  });

/** Request bodies, as bytes. */
export const bodyArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: validTx.map((t) => enc.encode(JSON.stringify(t))) },
  { weight: 8, arbitrary: mutatedTxText.map((s) => enc.encode(s)) },
  { weight: 1, arbitrary: fc.json({ maxDepth: 4 }).map((s) => enc.encode(s)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }).map((s) => enc.encode(s)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }) },
  { weight: 1, arbitrary: deepNesting.map((s) => enc.encode(s)) },
  { weight: 1, arbitrary: pollutionBody.map((s) => enc.encode(s)) },
  { weight: 1, arbitrary: nearLimit.map((s) => enc.encode(s)) },
  { weight: 1, arbitrary: framedBody },
  { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
);

/** NDJSON and JSON-array batches of (mostly) transactions, for a batch route when there is one. */
export const batchBodyArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.array(
      fc.oneof(
        validTx.map((t) => JSON.stringify(t)),
        mutatedTxText,
        fc.constantFrom('', ' ', '{', 'null', '[]'),
      ),
      { maxLength: 20 },
    ),
    fc.boolean(),
  )
  .map(([lines, ndjson]) => enc.encode(ndjson ? lines.join('\n') : `[${lines.join(',')}]`));

// ---------------------------------------------------------------------------------------------
// Headers

export interface HeaderSet {
  contentType?: string;
  contentEncoding?: string;
  idempotencyKey?: string;
  /** exact: the body's length (what a client sends); none: no Content-Length (streamed); else that value. */
  contentLength: 'exact' | 'none' | string;
  extra: [string, string][];
}

export const contentTypeArb: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  {
    weight: 5,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/json;charset=UTF-8',
      'APPLICATION/JSON',
      'application/json; charset="utf-8"',
      'application/json; charset=utf8',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'application/json ;',
      'application/json; boundary=x',
      'application/json, text/plain',
      'application/jsonx',
      'application/json-patch+json',
      'application/problem+json',
      'application/x-ndjson',
      'application/x-ndjson; charset=utf-8',
      'text/json',
      'text/plain',
      'multipart/form-data; boundary=x',
      'application/x-www-form-urlencoded',
      '*/*',
      '',
      ';',
      'application/json;charset=',
      'application/json; charset=utf-8; charset=latin1',
    ),
  },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: headerValue(120) },
);

export const idempotencyKeyArb: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 10, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.string({ unit: printableAscii, minLength: 1, maxLength: 255 }) },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-z0-9]{1,8}$/) }, // short: the same key comes back, with another body
  { weight: 1, arbitrary: headerValue(300) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('', ' ', 'a ', ' a', 'k'.repeat(255), 'k'.repeat(256), 'k'.repeat(5000), 'a\tb', '*', '{0}', 'a:b:c', '../x', '\u00e9t\u00e9'),
  },
);

const extraHeader: fc.Arbitrary<[string, string]> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(headerName, headerValue(100)) },
  {
    weight: 3,
    arbitrary: fc.tuple(
      fc.constantFrom(
        'traceparent',
        'tracestate',
        'last-event-id',
        'x-forwarded-for',
        'forwarded',
        'x-http-method-override',
        'x-original-url',
        'x-rewrite-url',
        'cookie',
        'origin',
        'accept',
        'accept-encoding',
        'range',
        'if-none-match',
        'x-request-id',
        'idempotency-key',
      ),
      fc.oneof(
        headerValue(120),
        fc.constantFrom(
          '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
          '00-00000000000000000000000000000000-0000000000000000-00',
          'ff-x-y-z',
          'POST',
          'DELETE',
          '/v1/transactions',
          '1-0',
          '0-0',
          '999999999999999-999',
          '$',
          '127.0.0.1',
        ),
      ),
    ),
  },
  // one header over Node's 16 KiB limit: 431 over HTTP, and no limit at all in-process
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 24_000 }).map((n): [string, string] => ['x-big', 'b'.repeat(n)]) },
);

export const headersArb: fc.Arbitrary<HeaderSet> = fc.record({
  contentType: contentTypeArb,
  contentEncoding: fc.oneof(
    { weight: 12, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.constantFrom('identity', 'IDENTITY', ' identity ', 'gzip', 'br', 'deflate', 'identity, gzip', '') },
    { weight: 1, arbitrary: headerValue(40) },
  ),
  idempotencyKey: idempotencyKeyArb,
  contentLength: fc.oneof(
    { weight: 12, arbitrary: fc.constant('exact' as const) },
    { weight: 3, arbitrary: fc.constant('none' as const) },
    { weight: 1, arbitrary: fc.constantFrom('0', '1', '-1', 'abc', '1e3', '99999999999999999999', '65537', '65536', ' 10', '0x10') },
  ),
  extra: fc.array(extraHeader, { maxLength: 3 }),
});

// ---------------------------------------------------------------------------------------------
// Methods and paths

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;
/** fetch's Request refuses CONNECT, TRACE and TRACK. */
export const methodArb = (preferred?: string): fc.Arbitrary<string> =>
  fc.oneof(
    ...(preferred ? [{ weight: 8, arbitrary: fc.constant(preferred) }] : []),
    { weight: 4, arbitrary: fc.constantFrom(...METHODS) },
    { weight: 1, arbitrary: fc.constantFrom('post', 'get', 'Post', 'patch', 'PROPFIND', 'PURGE', 'MERGE', 'SEARCH', 'QUERY', 'M-SEARCH') },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Z]{1,12}$/).filter((m) => !['CONNECT', 'TRACE', 'TRACK'].includes(m)) },
  );

const SEGMENTS = [
  '.',
  '..',
  '%2e%2e',
  '%2E',
  '%2F',
  '%5C',
  '%00',
  '%',
  '%zz',
  '%E0%A4%A',
  '%C0%AE',
  '*',
  ':id',
  ':topic',
  '{1}',
  '__proto__',
  'constructor',
  'prototype',
  '%20',
  '+',
  'tail',
  'transactions',
  'batch',
  'v1',
  '%F0%9F%92%B3',
  'tx_01ARZ3NDEKTSV4RRFFQ69G5FAV',
  'TX_01ARZ3NDEKTSV4RRFFQ69G5FAV',
];
export const segmentArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.~-]{0,30}$/) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => encodeURIComponent(s)) },
  { weight: 3, arbitrary: fc.constantFrom(...SEGMENTS) },
  { weight: 1, arbitrary: fc.integer({ min: 256, max: 20_000 }).map((n) => 'a'.repeat(n)) },
);

/** A transaction-id-shaped segment: tx_ and 26 Crockford base32 characters, or nearly. */
export const txIdArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'0123456789ABCDEFGHJKMNPQRSTVWXYZ'), minLength: 26, maxLength: 26 }).map((s) => `tx_${s}`),
  fc.string({ unit: fc.constantFrom(...'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'), minLength: 0, maxLength: 40 }).map((s) => `tx_${s}`),
  fc.constantFrom('tx_', 'tx_ZZZZZZZZZZZZZZZZZZZZZZZZZZ', 'tx_7ZZZZZZZZZZZZZZZZZZZZZZZZZ', 'tx_00000000000000000000000000', 'tx_01ARZ3NDEKTSV4RRFFQ69G5FAV'),
);

const SUFFIXES = [
  '',
  '',
  '',
  '',
  '/',
  '//',
  '/.',
  '/..',
  '/x',
  '%2F',
  '%00',
  ';',
  ';x=1',
  '.json',
  '?',
  '?a=1',
  '?a=1&a=2',
  '#x',
  '~',
  '/%2e%2e/',
  '\\',
  '/..%2F',
  '%20',
  '?%',
  '?merchant_id=m_fuzz_b',
];
const PREFIXES = ['', '', '', '', '', '/', '//', '/./', '/v1/../', '/x/../', '/%2e/'];

const queryArb = fc
  .record(
    {
      from: fc.oneof(
        fc.constantFrom(
          'now',
          'earliest',
          '0',
          '-1',
          '1e3',
          '9'.repeat(30),
          '0-0',
          '1-1',
          '18446744073709551615-18446744073709551615',
          'x',
          '',
          'NOW',
          'latest',
        ),
        fc.nat().map(String),
      ),
      merchant_id: fc.oneof(fc.constantFrom(MERCHANT_A, MERCHANT_B, '', '*', 'a:b', '__proto__'), segmentArb),
      type: fc.oneof(fc.constantFrom('payin', 'refund', '', '*', 'a b'), segmentArb),
    },
    { requiredKeys: [] },
  )
  .map((q) => {
    const parts = Object.entries(q).map(([k, v]) => `${k}=${v}`);
    return parts.length ? `?${parts.join('&')}` : '';
  });

/** A path for a route pattern, its parameters filled in, then (two times in five) disfigured. */
export function routePathArb(route: RouteInfo, topics: readonly string[]): fc.Arbitrary<string> {
  const parts = route.path.split('/');
  const filled = fc.tuple(
    ...parts.map((p) => {
      if (!p.startsWith(':')) return fc.constant(p);
      if (p === ':topic') return fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...topics) }, { weight: 1, arbitrary: segmentArb });
      if (p === ':id') return fc.oneof({ weight: 3, arbitrary: txIdArb }, { weight: 1, arbitrary: segmentArb });
      return segmentArb;
    }),
  );
  const disfigure = fc.record({
    prefix: fc.constantFrom(...PREFIXES),
    suffix: fc.constantFrom(...SUFFIXES),
    casing: fc.constantFrom('as-is', 'as-is', 'upper', 'title'),
  });
  return fc
    .record({
      path: filled.map((xs) => xs.join('/')),
      query: route.method === 'GET' ? fc.oneof({ weight: 1, arbitrary: fc.constant('') }, { weight: 2, arbitrary: queryArb }) : fc.constant(''),
      how: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: disfigure }),
    })
    .map(({ path, query, how }) => {
      if (!how) return path + query;
      const { prefix, suffix, casing } = how;
      let p = prefix ? prefix + path.slice(1) : path;
      if (casing === 'upper') p = p.toUpperCase();
      if (casing === 'title') p = p.replace(/\/([a-z])/g, (_m, c: string) => `/${c.toUpperCase()}`);
      return p + suffix + (suffix.includes('?') ? query.replace('?', '&') : query);
    });
}

/** Paths that belong to no route, or to routes only by accident. */
export const strayPathArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.array(segmentArb, { maxLength: 5 }).map((s) => `/${s.join('/')}`) },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 100_000 }).map((n) => `/v1/transactions/${'a'.repeat(n)}`) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2_000 }).map((n) => `/${'../'.repeat(n)}v1/transactions`) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '/',
      '/v1',
      '/v1/',
      '/v2/transactions',
      '/v1/transaction',
      '/v1/transactionsbatch',
      '/v1/streams',
      '/v1/streams//tail',
      '/healthz/',
      '/metrics.json',
      '/readyz?x=1',
      '/.env',
      '/%2e%2e/etc/passwd',
      '/favicon.ico',
      '/v1/wallets/m_fuzz_b',
      '/v1/merchants/m_fuzz_b/transactions',
    ),
  },
);

export interface FuzzRequest {
  method: string;
  path: string;
  auth: AuthSpec;
  headers: HeaderSet;
  body: Uint8Array | undefined;
}

/**
 * A request to one of the app's routes (mostly with its own method) or to a stray path. Built
 * without `chain` (one arbitrary per route, made once): generating stays cheap.
 */
export function requestArb(routes: readonly RouteInfo[], topics: readonly string[], opts: { body?: fc.Arbitrary<Uint8Array> } = {}): fc.Arbitrary<FuzzRequest> {
  const body = fc.option(opts.body ?? fc.oneof({ weight: 4, arbitrary: bodyArb }, { weight: 1, arbitrary: batchBodyArb }), { nil: undefined, freq: 6 });
  const one = (method: fc.Arbitrary<string>, path: fc.Arbitrary<string>): fc.Arbitrary<FuzzRequest> =>
    fc.record({ method, path, auth: authArb, headers: headersArb, body });
  return fc.oneof(...routes.map((r) => ({ weight: r.path.startsWith('/v1/') ? 4 : 1, arbitrary: one(methodArb(r.method), routePathArb(r, topics)) })), {
    weight: 2,
    arbitrary: one(methodArb(), strayPathArb),
  });
}
