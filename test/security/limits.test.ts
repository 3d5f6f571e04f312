// Limits at the edge, over real HTTP (startTestIngest on port 0): header size (431, not a crash),
// body size (413, with and without Content-Length), batch size and bytes (413), Idempotency-Key
// length, and open tap (SSE) streams per key (429 past the limit, slots released on disconnect).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { createApiKey, parseApiKey } from '../../core/api-keys.ts';
import { DEFAULT_LIMITS } from '../../ingest/app.ts';
import { BATCH_MAX_BYTES, BATCH_MAX_EVENTS } from '../../ingest/batch-body.ts';
import { startTestIngest } from '../../ingest/testing.ts';
import type { TestIngest } from '../../ingest/testing.ts';
import { killTapClients, problemViolation, streamKeys, tapClients, totalLength } from '../fuzz/harness.ts';
import { sendRaw } from '../fuzz/raw.ts';
import type { RawAnswer } from '../fuzz/raw.ts';

const M = 'm_limits';
const tx = (extra: Record<string, unknown> = {}) => ({ type: 'payin', merchant_id: M, amount: 100, currency: 'USD', ...extra });

describe('limits', () => {
  let inst: TestInstance;
  let ing: TestIngest;
  let key = '';
  let tapKey = '';
  let tapKey2 = '';
  let streams: string[] = [];

  const post = (path: string, body: BodyInit, headers: Record<string, string> = {}) =>
    fetch(`${ing.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body,
      duplex: 'half',
    } as RequestInit);
  const expectProblem = async (res: Response, status: number) => {
    const text = await res.text();
    assert.equal(res.status, status, text.slice(0, 300));
    assert.equal(problemViolation(res.status, res.headers, text), undefined, text.slice(0, 300));
  };
  /** A body sent as a stream: chunked, no Content-Length. */
  const chunked = (bytes: Uint8Array) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 64 * 1024) c.enqueue(bytes.subarray(i, i + 64 * 1024));
        c.close();
      },
    });
  const alive = async () => assert.equal((await fetch(`${ing.url}/healthz`)).status, 200, 'the server still answers');
  const raw = (head: string) => sendRaw(ing.server.port, Buffer.from(head), 5_000);
  const tail = (k: string, signal?: AbortSignal, method = 'GET') =>
    fetch(`${ing.url}/v1/streams/transactions/tail`, { method, headers: { authorization: `Bearer ${k}` }, ...(signal ? { signal } : {}) });

  before(async () => {
    inst = await createInstance('sec-limits');
    ing = await startTestIngest(inst);
    key = await createApiKey(inst.pool, { merchantId: M });
    tapKey = await createApiKey(inst.pool, { scope: 'tap' });
    tapKey2 = await createApiKey(inst.pool, { scope: 'tap' });
    streams = streamKeys(ing.topology, inst.env.prefix);
  });
  after(async () => {
    if (inst)
      await killTapClients(
        inst.redis,
        [tapKey, tapKey2].filter(Boolean).map((k) => parseApiKey(k)!.keyId),
      );
    await ing?.server.close();
    await inst?.cleanup();
  });

  test('headers over 16 KiB → 431, and the server carries on', async () => {
    for (const size of [17 * 1024, 64 * 1024, 1024 * 1024]) {
      const res = await raw(
        `POST /v1/transactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nX-Big: ${'b'.repeat(size)}\r\nContent-Length: 0\r\n\r\n`,
      );
      assert.equal(res.answers[0]?.status, 431, `${size} bytes of headers: ${res.raw.subarray(0, 200).toString()}`);
      await alive();
    }
    // many small headers add up the same way
    const many = Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'v'.repeat(60)}`).join('\r\n');
    assert.equal((await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\n${many}\r\n\r\n`)).answers[0]?.status, 431);
    // and just under the limit is fine
    const ok = await fetch(`${ing.url}/healthz`, { headers: { 'x-big': 'b'.repeat(15 * 1024) } });
    assert.equal(ok.status, 200);
    await alive();
  });

  test('errors Node answers before the app are problem+json too (design §3: all errors)', async () => {
    // Today Node's default clientError handler writes a bare "HTTP/1.1 431" / "400 Bad Request"
    // with no body, and @hono/node-server answers an unparsable URL or Host with an empty 400.
    const cases: [string, string][] = [
      ['431 header overflow', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`],
      ['400 malformed request line', 'GARBAGE\r\n\r\n'],
      [
        '400 bad chunk size',
        `POST /v1/transactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
      ],
      ['400 invalid Host', 'GET /healthz HTTP/1.1\r\nHost: [::1\r\nConnection: close\r\n\r\n'],
    ];
    const wrong: string[] = [];
    for (const [what, req] of cases) {
      const a: RawAnswer | undefined = (await raw(req)).answers[0];
      const why = a ? problemViolation(a.status, a.headers, a.body) : 'no answer';
      if (why) wrong.push(`${what}: ${a?.status} ${why}`);
    }
    await alive();
    assert.deepEqual(wrong, [], 'transport-level errors are problem+json');
  });

  test(`POST /v1/transactions: bodies over ${DEFAULT_LIMITS.maxBodyBytes} bytes → 413, with or without Content-Length`, async () => {
    const max = DEFAULT_LIMITS.maxBodyBytes;
    const padded = (n: number) => {
      const json = JSON.stringify(tx());
      return new TextEncoder().encode(`{${' '.repeat(n - json.length)}${json.slice(1)}`);
    };
    const before = await totalLength(inst.redis, streams);
    await expectProblem(await post('/v1/transactions', padded(max + 1)), 413);
    await expectProblem(await post('/v1/transactions', chunked(padded(max + 1))), 413);
    await expectProblem(await post('/v1/transactions', chunked(padded(8 * max))), 413);
    assert.equal(await totalLength(inst.redis, streams), before, 'nothing appended');
    const exact = await post('/v1/transactions', padded(max));
    assert.equal(exact.status, 202, await exact.text());
    await alive();
  });

  test(`POST /v1/transactions/batch: more than ${BATCH_MAX_EVENTS} events or ${BATCH_MAX_BYTES} bytes → 413`, async () => {
    const line = JSON.stringify(tx());
    const ndjson = (n: number) => new TextEncoder().encode(Array.from({ length: n }, () => line).join('\n'));
    const headers = { 'content-type': 'application/x-ndjson' };
    const before = await totalLength(inst.redis, streams);
    await expectProblem(await post('/v1/transactions/batch', ndjson(BATCH_MAX_EVENTS + 1), headers), 413);
    await expectProblem(await post('/v1/transactions/batch', `[${Array.from({ length: BATCH_MAX_EVENTS + 1 }, () => line).join(',')}]`), 413);
    const big = new TextEncoder().encode(`${line}\n${' '.repeat(BATCH_MAX_BYTES)}`);
    await expectProblem(await post('/v1/transactions/batch', big, headers), 413);
    await expectProblem(await post('/v1/transactions/batch', chunked(big), headers), 413);
    assert.equal(await totalLength(inst.redis, streams), before, 'nothing appended');
    // exactly the limit is a batch (its lines may be rate-limited one by one, never the whole)
    const full = await post('/v1/transactions/batch', ndjson(BATCH_MAX_EVENTS), headers);
    const text = await full.text();
    assert.equal(full.status, 202, text.slice(0, 300));
    assert.equal((JSON.parse(text) as { results: unknown[] }).results.length, BATCH_MAX_EVENTS);
    await alive();
  });

  test('Idempotency-Key: 1-255 characters', async () => {
    assert.equal((await post('/v1/transactions', JSON.stringify(tx()), { 'idempotency-key': 'k'.repeat(255) })).status, 202);
    await expectProblem(await post('/v1/transactions', JSON.stringify(tx()), { 'idempotency-key': 'k'.repeat(256) }), 400);
    await expectProblem(await post('/v1/transactions', JSON.stringify(tx()), { 'idempotency-key': 'k'.repeat(10_000) }), 400);
  });

  test(`tap: at most ${DEFAULT_LIMITS.tapMaxStreamsPerKey} open streams per key (429 past it), released when clients go`, async () => {
    const max = DEFAULT_LIMITS.tapMaxStreamsPerKey;
    const ids = [parseApiKey(tapKey)!.keyId];
    const open: AbortController[] = [];
    for (let i = 0; i < max; i++) {
      const ac = new AbortController();
      const res = await tail(tapKey, ac.signal);
      assert.equal(res.status, 200, `stream ${i + 1}`);
      open.push(ac);
    }
    const over = await tail(tapKey);
    await expectProblem(over, 429);
    assert.match(over.headers.get('retry-after') ?? '', /^\d+$/);
    // the limit is per key: another tap key still gets a stream
    const ac2 = new AbortController();
    assert.equal((await tail(tapKey2, ac2.signal)).status, 200);
    ac2.abort();
    // clients going away free their slots (and their Redis connections)
    for (const ac of open) ac.abort();
    for (let i = 0; i < 100 && (await tapClients(inst.redis, ids)).length; i++) await new Promise((ok) => setTimeout(ok, 20));
    assert.deepEqual(await tapClients(inst.redis, ids), [], 'the Redis connections are closed');
    const again: AbortController[] = [];
    for (let i = 0; i < max; i++) {
      const ac = new AbortController();
      const res = await tail(tapKey, ac.signal);
      assert.equal(res.status, 200, `stream ${i + 1} after the others closed`);
      again.push(ac);
    }
    for (const ac of again) ac.abort();
  });

  test('tap: HEAD does not hold a stream (nor a slot, nor a Redis connection)', async () => {
    // Hono answers HEAD by running the GET handler and dropping the body without cancelling it:
    // the SSE loop behind it (its own Redis connection, blocking reads, a keep-alive timer) and its
    // per-key slot stay until the process exits. Five HEADs lock a tap key out (429) for good.
    const k = await createApiKey(inst.pool, { scope: 'tap' });
    const ids = [parseApiKey(k)!.keyId];
    try {
      for (let i = 0; i < DEFAULT_LIMITS.tapMaxStreamsPerKey + 1; i++) await (await tail(k, undefined, 'HEAD')).body?.cancel();
      await new Promise((ok) => setTimeout(ok, 200));
      const held = (await tapClients(inst.redis, ids)).length;
      const ac = new AbortController();
      const res = await tail(k, ac.signal);
      const status = res.status;
      ac.abort();
      assert.deepEqual(
        { redisConnectionsHeld: held, getAfterHeads: status },
        { redisConnectionsHeld: 0, getAfterHeads: 200 },
        'HEAD requests leak tap streams',
      );
    } finally {
      await killTapClients(inst.redis, ids); // ends the leaked streams (their reads fail), so the test process can exit
    }
  });
});
