// rill/client against a real ingest: idempotency keys kept across retries, Retry-After honoured,
// batches split at the limits with per-event results in order, rate-limited batch lines sent
// again, problems as typed errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { RillClient, RillProblemError } from '../client/index.ts';
import type { BatchLine, RillClientOptions } from '../client/index.ts';
import { createApiKey } from '../core/api-keys.ts';
import type { LoadState } from '../ingest/backpressure/hysteresis.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { SHIPPED_TOPOLOGY, writeTopology } from './helpers/topology-file.ts';

const M = 'merchant_client';
const tx = (over: Partial<BatchLine> = {}): BatchLine => ({ type: 'payin', merchant_id: M, amount: 1999, currency: 'USD', ...over });

interface Sent {
  url: string;
  key: string | null;
  body: string;
}

describe('rill/client', () => {
  let inst: TestInstance;
  let ingest: TestIngest;
  let gated: TestIngest;
  let limited: TestIngest;
  let apiKey = '';
  const gate: { state: LoadState; retryAfterSeconds: number } = { state: { shedding: false, reasons: [] }, retryAfterSeconds: 2 };

  /** A client whose requests are recorded; `sleep` records the waits and runs the hook. */
  const client = (url: string, more: Partial<RillClientOptions> & { onSleep?: () => void } = {}) => {
    const sent: Sent[] = [];
    const waits: number[] = [];
    const { onSleep, ...opts } = more;
    const c = new RillClient({
      baseUrl: url,
      apiKey,
      fetch: async (input, init) => {
        const h = new Headers(init?.headers);
        sent.push({ url: String(input), key: h.get('idempotency-key'), body: String(init?.body ?? '') });
        return fetch(input, init);
      },
      sleep: async (ms) => {
        waits.push(ms);
        onSleep?.();
        await delay(10); // time at a hundredth: enough for a token bucket refilling at 1,000/s
      },
      ...opts,
    });
    return { c, sent, waits };
  };

  before(async () => {
    inst = await createInstance('client');
    ingest = await startTestIngest(inst);
    gated = await startTestIngest(inst, { load: gate });
    limited = await startTestIngest(inst, { topology: writeTopology({ 'ingest.rate_limit': { per_second: 1000, burst: 1 } }, SHIPPED_TOPOLOGY).topology });
    apiKey = await createApiKey(inst.pool, { merchantId: M });
  });

  after(async () => {
    await Promise.all([ingest?.server.close(), gated?.server.close(), limited?.server.close()]);
    await inst?.cleanup();
  });

  test('createTransaction: accepted, readable, replayed under the same key', async () => {
    const { c, sent } = client(ingest.url);
    const first = await c.createTransaction(tx(), { idempotencyKey: 'order-42' });
    assert.match(first.id, /^tx_/);
    assert.equal(first.replayed, false);
    const again = await c.createTransaction(tx(), { idempotencyKey: 'order-42' });
    assert.deepEqual(again, { ...first, replayed: true });
    const view = await c.getTransaction(first.id);
    assert.equal(view.status, 'accepted');
    assert.equal(view.amount, 1999);
    assert.deepEqual(await c.getWallets(), []);
    // without a key of yours, each logical request gets one of its own
    await c.createTransaction(tx());
    await c.createTransaction(tx());
    assert.equal(new Set(sent.filter((s) => s.key !== null).map((s) => s.key)).size, 3);
  });

  test('503 with Retry-After: waits at least that long and retries with the same Idempotency-Key', async () => {
    gate.state = { shedding: true, reasons: ['test'] };
    const { c, sent, waits } = client(gated.url, { onSleep: () => (gate.state = { shedding: false, reasons: [] }) });
    const out = await c.createTransaction(tx());
    assert.match(out.id, /^tx_/);
    assert.equal(sent.length, 2);
    assert.ok(sent[0]!.key && sent[0]!.key === sent[1]!.key, "the retry carries the first attempt's key");
    assert.equal(waits.length, 1);
    assert.ok(waits[0]! >= 2000 && waits[0]! <= 2200, `waited ${waits[0]} ms for Retry-After: 2`);
  });

  test('a network error is retried with the same key; the answer is the one append', async () => {
    let calls = 0;
    const seen: (string | null)[] = [];
    const c = new RillClient({
      baseUrl: ingest.url,
      apiKey,
      sleep: async () => {},
      fetch: async (input, init) => {
        seen.push(new Headers(init?.headers).get('idempotency-key'));
        const res = await fetch(input, init);
        if (++calls === 1) throw new TypeError('fetch failed'); // the answer was lost on the way back
        return res;
      },
    });
    const out = await c.createTransaction(tx({ reference: 'lost-answer' }));
    assert.equal(out.replayed, true, 'the second attempt found the first append');
    assert.equal(seen.length, 2);
    assert.equal(seen[0], seen[1]);
  });

  test('problems are typed errors; a Retry-After too long to wait is thrown, not slept', async () => {
    const { c } = client(ingest.url);
    const invalid = await c.createTransaction(tx({ amount: -5 })).catch((e: unknown) => e);
    assert.ok(invalid instanceof RillProblemError);
    assert.equal(invalid.status, 400);
    assert.equal(invalid.type, 'urn:problem-type:rill:validation-failed');
    assert.deepEqual(invalid.errors, [{ path: '/amount', message: 'must be greater than 0' }]);
    await c.createTransaction(tx(), { idempotencyKey: 'k-conflict' });
    const conflict = await c.createTransaction(tx({ amount: 1 }), { idempotencyKey: 'k-conflict' }).catch((e: unknown) => e);
    assert.ok(conflict instanceof RillProblemError && conflict.status === 409);
    const bad = new RillClient({ baseUrl: ingest.url, apiKey: 'rk_nope' });
    const unauth = await bad.getWallets().catch((e: unknown) => e);
    assert.ok(unauth instanceof RillProblemError && unauth.status === 401);
    gate.state = { shedding: true, reasons: ['test'] };
    const { c: patient, waits } = client(gated.url, { maxRetryAfterMs: 1000 });
    const shed = await patient.createTransaction(tx()).catch((e: unknown) => e);
    gate.state = { shedding: false, reasons: [] };
    assert.ok(shed instanceof RillProblemError && shed.status === 503 && shed.retryAfter === 2);
    assert.deepEqual(waits, []);
  });

  test('createTransactions: split at the event and byte limits, one result per event in order', async () => {
    const events = Array.from({ length: 25 }, (_, i) => tx({ reference: `batch-${i}`, ...(i === 7 ? { amount: 0 } : {}) }));
    const { c, sent } = client(ingest.url, { batchMaxEvents: 10 });
    const results = await c.createTransactions(events);
    assert.equal(sent.length, 3);
    assert.deepEqual(
      sent.map((s) => s.body.split('\n').length),
      [10, 10, 5],
    );
    assert.deepEqual(
      results.map((r) => r.index),
      events.map((_, i) => i),
    );
    assert.deepEqual(
      results.filter((r) => r.status !== 'accepted').map((r) => r.index),
      [7],
    );
    // the same events again (their generated keys are gone): a fresh client, a byte limit of 1 KB
    const { c: small, sent: smallSent } = client(ingest.url, { batchMaxBytes: 1024 });
    const withKeys = events.map((e, i) => ({ ...e, idempotency_key: `batch-key-${i}` }));
    await small.createTransactions(withKeys);
    assert.ok(smallSent.length > 1 && smallSent.every((s) => Buffer.byteLength(s.body) + 1 <= 1024));
    const replay = await small.createTransactions(withKeys);
    assert.deepEqual(
      replay.map((r) => r.status),
      events.map((_, i) => (i === 7 ? 'rejected' : 'duplicate')),
    );
  });

  test('createTransactions: lines rejected as rate-limited are sent again with their keys', async () => {
    const { c, sent, waits } = client(limited.url);
    const results = await c.createTransactions([tx(), tx(), tx()]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['accepted', 'accepted', 'accepted'],
    );
    assert.deepEqual(
      results.map((r) => r.index),
      [0, 1, 2],
    );
    assert.ok(sent.length >= 2, 'the limited lines went again');
    assert.ok(
      waits.every((w) => w >= 1000),
      "each retry waited for the batch answer's Retry-After",
    );
    const keysOf = (body: string) => body.split('\n').map((l) => (JSON.parse(l) as { idempotency_key: string }).idempotency_key);
    const firstKeys = keysOf(sent[0]!.body);
    for (const s of sent.slice(1)) for (const k of keysOf(s.body)) assert.ok(firstKeys.includes(k));
  });
});
