// Every kind of bad request gets its documented status as problem+json, and none of them writes
// anything to Redis.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { createApiKey, revokeApiKey } from '../core/api-keys.ts';
import { scanPrefix, startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';

const M = 'merchant_a';
const GOOD = { type: 'payin', merchant_id: M, amount: 1250, currency: 'USD' };
const MiB = 1024 * 1024;

interface Case {
  name: string;
  status: number;
  /** JSON-encoded unless a string or bytes. */
  body?: unknown;
  headers?: Record<string, string>;
  /** 'good' (default), 'none', or a literal Authorization header value via `auth`. */
  key?: 'good' | 'none' | 'other' | 'tap' | 'revoked' | 'unknown' | 'wrongSecret';
  auth?: string;
  /** Expected error paths (validation answers must list at least these). */
  paths?: string[];
  validation?: boolean;
}

const with_ = (patch: Record<string, unknown>) => ({ ...GOOD, ...patch });
const without = (field: string) => Object.fromEntries(Object.entries(GOOD).filter(([k]) => k !== field));

const CASES: Case[] = [
  // 400: body
  { name: 'invalid JSON', status: 400, body: '{"type": "payin",', paths: [''] },
  { name: 'empty body', status: 400, body: '', paths: [''] },
  { name: 'invalid UTF-8', status: 400, body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), paths: [''] },
  { name: 'array instead of object', status: 400, body: [GOOD], paths: [''] },
  { name: 'null body', status: 400, body: 'null', paths: [''] },
  { name: 'unknown type', status: 400, body: with_({ type: 'deposit' }), paths: ['/type'] },
  { name: 'amount as string', status: 400, body: with_({ amount: '1250' }), paths: ['/amount'] },
  { name: 'negative amount', status: 400, body: with_({ amount: -5 }), paths: ['/amount'] },
  { name: 'zero amount', status: 400, body: with_({ amount: 0 }), paths: ['/amount'] },
  { name: 'fractional amount', status: 400, body: with_({ amount: 12.5 }), paths: ['/amount'] },
  { name: 'huge amount 1e30', status: 400, body: with_({ amount: 1e30 }), paths: ['/amount'] },
  { name: 'amount MAX_SAFE_INTEGER + 1', status: 400, body: with_({ amount: Number.MAX_SAFE_INTEGER + 1 }), paths: ['/amount'] },
  { name: 'amount beyond double precision', status: 400, body: JSON.stringify(GOOD).replace('1250', '90071992547409930'), paths: ['/amount'] },
  { name: 'unknown currency', status: 400, body: with_({ currency: 'XYZ' }), paths: ['/currency'] },
  { name: 'lower-case currency', status: 400, body: with_({ currency: 'usd' }), paths: ['/currency'] },
  { name: 'currency as number', status: 400, body: with_({ currency: 840 }), paths: ['/currency'] },
  { name: 'merchant_id as number', status: 400, body: with_({ merchant_id: 42 }), paths: ['/merchant_id'] },
  { name: 'empty merchant_id', status: 400, body: with_({ merchant_id: '' }), paths: ['/merchant_id'] },
  { name: 'merchant_id with ":"', status: 400, body: with_({ merchant_id: 'a:b' }), paths: ['/merchant_id'] },
  { name: 'merchant_id too long', status: 400, body: with_({ merchant_id: 'm'.repeat(65) }), paths: ['/merchant_id'] },
  { name: 'missing merchant_id', status: 400, body: without('merchant_id'), paths: ['/merchant_id'] },
  { name: 'missing amount', status: 400, body: without('amount'), paths: ['/amount'] },
  { name: 'missing everything', status: 400, body: {}, paths: ['/type', '/merchant_id', '/amount', '/currency'] },
  { name: 'unknown field', status: 400, body: with_({ amount_cents: 1 }), paths: ['/amount_cents'] },
  {
    name: 'prototype key',
    status: 400,
    body: '{"type":"payin","merchant_id":"merchant_a","amount":1,"currency":"USD","__proto__":{"x":1}}',
    paths: ['/__proto__'],
  },
  { name: 'reference too long', status: 400, body: with_({ reference: 'r'.repeat(256) }), paths: ['/reference'] },
  { name: 'occurred_at not a date', status: 400, body: with_({ occurred_at: 'yesterday' }), paths: ['/occurred_at'] },
  { name: 'occurred_at impossible day', status: 400, body: with_({ occurred_at: '2024-02-30T10:00:00Z' }), paths: ['/occurred_at'] },
  { name: 'occurred_at without offset', status: 400, body: with_({ occurred_at: '2024-02-01T10:00:00' }), paths: ['/occurred_at'] },
  { name: 'metadata not strings', status: 400, body: with_({ metadata: { order: 7 } }), paths: ['/metadata/order'] },
  { name: 'metadata an array', status: 400, body: with_({ metadata: ['a'] }), paths: ['/metadata'] },
  {
    name: 'metadata too many entries',
    status: 400,
    body: with_({ metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])) }),
    paths: ['/metadata'],
  },
  { name: 'metadata value too long', status: 400, body: with_({ metadata: { note: 'n'.repeat(501) } }), paths: ['/metadata/note'] },
  // 400: headers
  { name: 'empty Idempotency-Key', status: 400, body: GOOD, headers: { 'idempotency-key': '' }, validation: false },
  { name: 'Idempotency-Key too long', status: 400, body: GOOD, headers: { 'idempotency-key': 'k'.repeat(256) }, validation: false },
  { name: 'Idempotency-Key not ASCII', status: 400, body: GOOD, headers: { 'idempotency-key': 'cl\u00e9' }, validation: false },
  { name: 'Idempotency-Key with a tab', status: 400, body: GOOD, headers: { 'idempotency-key': 'a\tb' }, validation: false },
  // 401 / 403
  { name: 'no key', status: 401, body: GOOD, key: 'none' },
  { name: 'Basic auth', status: 401, body: GOOD, auth: 'Basic dXNlcjpwYXNz' },
  { name: 'malformed key', status: 401, body: GOOD, auth: 'Bearer garbage' },
  { name: 'unknown key', status: 401, body: GOOD, key: 'unknown' },
  { name: 'revoked key', status: 401, body: GOOD, key: 'revoked' },
  { name: 'right id, wrong secret', status: 401, body: GOOD, key: 'wrongSecret' },
  { name: "another merchant's key", status: 403, body: GOOD, key: 'other' },
  { name: 'tap-scoped key', status: 403, body: GOOD, key: 'tap' },
  // 413 / 415
  { name: '1 MiB body with Content-Length', status: 413, body: JSON.stringify(with_({ reference: 'x'.repeat(MiB) })) },
  { name: 'just over 64 KiB', status: 413, body: JSON.stringify(with_({ reference: 'x'.repeat(64 * 1024) })) },
  { name: 'text/plain', status: 415, body: JSON.stringify(GOOD), headers: { 'content-type': 'text/plain' } },
  { name: 'no content type', status: 415, body: JSON.stringify(GOOD), headers: { 'content-type': '' } },
  { name: 'form encoded', status: 415, body: 'type=payin', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
  { name: 'latin1 JSON', status: 415, body: JSON.stringify(GOOD), headers: { 'content-type': 'application/json; charset=iso-8859-1' } },
  { name: 'gzip encoded', status: 415, body: JSON.stringify(GOOD), headers: { 'content-encoding': 'gzip' } },
];

describe('ingest rejects bad input', () => {
  let inst: TestInstance;
  let ingest: TestIngest;
  const keys: Record<string, string> = {};

  before(async () => {
    inst = await createInstance('ingest-bad');
    ingest = await startTestIngest(inst);
    keys.good = await createApiKey(inst.pool, { merchantId: M });
    keys.other = await createApiKey(inst.pool, { merchantId: 'merchant_b' });
    keys.tap = await createApiKey(inst.pool, { scope: 'tap' });
    keys.revoked = await createApiKey(inst.pool, { merchantId: M });
    assert.equal(await revokeApiKey(inst.pool, keys.revoked), true);
    keys.unknown = `rk_${'0'.repeat(16)}_${'A'.repeat(43)}`;
    keys.wrongSecret = keys.good.slice(0, -4) + (keys.good.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  });

  after(async () => {
    await ingest?.server.close();
    await inst?.cleanup();
  });

  for (const c of CASES) {
    test(`${c.name} → ${c.status}`, async () => {
      const headers: Record<string, string> = { 'content-type': 'application/json', ...c.headers };
      if (headers['content-type'] === '') delete headers['content-type'];
      const key = c.key ?? 'good';
      if (c.auth !== undefined) headers.authorization = c.auth;
      else if (key !== 'none') headers.authorization = `Bearer ${keys[key]}`;
      const body = typeof c.body === 'string' ? c.body : Buffer.isBuffer(c.body) ? new Uint8Array(c.body) : JSON.stringify(c.body);
      const res = await fetch(`${ingest.url}/v1/transactions`, { method: 'POST', headers, body });
      await assertProblem(res, c.status, c.validation ?? c.status === 400, c.paths);
      if (c.status === 401) assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="rill"/);
    });
  }

  test('1 MiB chunked body without Content-Length → 413', async () => {
    const { status, headers, text } = await postChunked(`${ingest.url}/v1/transactions`, keys.good!, 1 * MiB);
    assert.equal(status, 413);
    assert.equal(headers['content-length'] === undefined || Number(headers['content-length']) === Buffer.byteLength(text), true);
    await assertProblem(new Response(text, { status, headers: { 'content-type': String(headers['content-type']) } }), 413, false);
  });

  test('nothing was appended or recorded', async () => {
    const { keys: written, entries } = await scanPrefix(inst.redis, inst.env.prefix);
    assert.equal(entries, 0);
    assert.deepEqual(written, []);
  });
});

async function assertProblem(res: Response, status: number, validation: boolean, paths: string[] = []): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const p = JSON.parse(text) as Record<string, unknown>;
  assert.equal(typeof p.type, 'string');
  assert.equal(typeof p.title, 'string');
  assert.equal(p.status, status);
  assert.equal(typeof p.detail, 'string');
  assert.doesNotMatch(text, /\bat .+\.(ts|js):\d+/, 'no stack trace');
  if (!validation) return;
  assert.ok(Array.isArray(p.errors) && p.errors.length > 0, 'validation errors listed');
  const errors = p.errors as { path: unknown; message: unknown }[];
  for (const e of errors) {
    assert.equal(typeof e.path, 'string');
    assert.match(e.path as string, /^(\/.*)?$/, 'JSON Pointer paths');
    assert.equal(typeof e.message, 'string');
  }
  for (const want of paths)
    assert.ok(
      errors.some((e) => e.path === want),
      `error at ${want} in ${text}`,
    );
}

/** POST a JSON-ish body in 16 KiB chunks with Transfer-Encoding: chunked and no Content-Length. */
function postChunked(
  url: string,
  key: string,
  size: number,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, 'transfer-encoding': 'chunked' },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    // the server may answer and drop the rest of the upload: that is the point, not a failure
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
    const chunk = Buffer.alloc(16 * 1024, 'x');
    let sent = 0;
    req.write('{"reference":"');
    const pump = (): void => {
      while (sent < size) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end('"}');
    };
    pump();
  });
}
