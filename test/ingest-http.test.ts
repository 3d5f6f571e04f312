// The edge as operators see it: health, readiness, metrics, 404/405, dependency failures as 503
// with Retry-After, keep-alive after rejected uploads, and a close() that drains.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { connectRedis } from '../core/redis.ts';
import { createPool } from '../core/postgres.ts';
import { partitionOf } from '../core/partition.ts';
import { Keys } from '../core/keys.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { createApiKey } from '../core/api-keys.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';

const M = 'merchant_http';
const BODY = JSON.stringify({ type: 'payin', merchant_id: M, amount: 100, currency: 'USD' });

async function assertProblem(res: Response, status: number): Promise<Record<string, unknown>> {
  assert.equal(res.status, status);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const p = (await res.json()) as Record<string, unknown>;
  assert.equal(p.status, status);
  for (const f of ['type', 'title', 'detail']) assert.equal(typeof p[f], 'string', f);
  return p;
}

describe('ingest HTTP surface', () => {
  let inst: TestInstance;
  let ingest: TestIngest;
  let key: string;
  const post = (url: string, headers: Record<string, string> = {}) =>
    fetch(`${url}/v1/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
      body: BODY,
    });

  before(async () => {
    inst = await createInstance('ingest-http');
    ingest = await startTestIngest(inst);
    key = await createApiKey(inst.pool, { merchantId: M });
  });
  after(async () => {
    await ingest?.server.close();
    await inst?.cleanup();
  });

  test('port 0 binds a real port', () => {
    assert.ok(ingest.server.port > 0);
  });

  test('healthz and readyz', async () => {
    const h = await fetch(`${ingest.url}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: 'ok' });
    const r = await fetch(`${ingest.url}/readyz`);
    assert.equal(r.status, 200);
  });

  test('404 and 405 are problem+json', async () => {
    await assertProblem(await fetch(`${ingest.url}/nope`), 404);
    await assertProblem(await fetch(`${ingest.url}/v1/transactions/x/y`), 404);
    const get = await fetch(`${ingest.url}/v1/transactions`);
    await assertProblem(get, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    const del = await fetch(`${ingest.url}/healthz`, { method: 'DELETE' });
    await assertProblem(del, 405);
    assert.match(del.headers.get('allow') ?? '', /GET/);
  });

  test('metrics: defaults, requests by route pattern, latency histogram', async () => {
    const res = await fetch(`${ingest.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    assert.match(text, /^rill_process_cpu_user_seconds_total /m);
    assert.match(text, /rill_ingest_requests_total\{route="\/healthz",status="200"\} 1\b/);
    assert.match(text, /rill_ingest_requests_total\{route="unmatched",status="404"\} 2\b/);
    assert.match(text, /rill_ingest_request_duration_seconds_bucket\{le="0.005",route="\/healthz"\} \d+/);
    assert.doesNotMatch(text, /route="\/nope"/);
  });

  test('keep-alive survives rejected uploads (with and without Content-Length)', async () => {
    const big = JSON.stringify({ reference: 'x'.repeat(1024 * 1024) });
    for (let i = 0; i < 5; i++) {
      const tooBig = await fetch(`${ingest.url}/v1/transactions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: big,
      });
      await assertProblem(tooBig, 413);
      assert.equal(tooBig.headers.get('connection'), 'close');
      const unauth = await fetch(`${ingest.url}/v1/transactions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
      await assertProblem(unauth, 401);
      const ok = await post(ingest.url);
      assert.equal(ok.status, 202);
      await ok.body?.cancel();
    }
  });

  test('Redis down: 503 with Retry-After, fail-fast connection', async () => {
    const dead = new Redis({ port: 1, host: '127.0.0.1', enableOfflineQueue: false, lazyConnect: true, retryStrategy: () => 1000 });
    dead.on('error', () => undefined);
    const down = await startTestIngest(inst, { redis: dead });
    try {
      const res = await post(down.url);
      await assertProblem(res, 503);
      assert.match(res.headers.get('retry-after') ?? '', /^\d+$/);
      const ready = await fetch(`${down.url}/readyz`);
      await assertProblem(ready, 503);
      assert.ok(ready.headers.get('retry-after'));
    } finally {
      await down.server.close();
      dead.disconnect();
    }
  });

  test('Redis down: 503 after the timeout, queueing connection', async () => {
    const dead = connectRedis({ redisUrl: 'redis://127.0.0.1:1', redisCluster: false });
    dead.on('error', () => undefined);
    const down = await startTestIngest(inst, { redis: dead, limits: { dependencyTimeoutMs: 200 } });
    try {
      const t0 = performance.now();
      const res = await post(down.url, { 'idempotency-key': 'redis-down' });
      await assertProblem(res, 503);
      assert.ok(performance.now() - t0 < 2000);
      assert.ok(res.headers.get('retry-after'));
    } finally {
      await down.server.close();
      dead.disconnect();
    }
  });

  test('Postgres down: readyz 503 and names it', async () => {
    const deadPool = createPool({ databaseUrl: 'postgres://postgres@127.0.0.1:1/postgres', pgSchema: inst.env.pgSchema });
    deadPool.on('error', () => undefined);
    const down = await startTestIngest(inst, { pool: deadPool });
    try {
      const ready = await fetch(`${down.url}/readyz`);
      const p = await assertProblem(ready, 503);
      assert.match(String(p.detail), /postgres/);
      assert.doesNotMatch(String(p.detail), /redis/);
    } finally {
      await down.server.close();
      await deadPool.end();
    }
  });

  test('close() waits for in-flight requests, then refuses new ones', async () => {
    // a Redis whose appends take 300 ms: the request is in flight when close() starts
    const slow = new Proxy(inst.redis, {
      get(target, prop, receiver) {
        const v: unknown = Reflect.get(target, prop, receiver);
        if (prop !== 'appendEvents' || typeof v !== 'function') return v;
        return async (...args: unknown[]) => {
          await new Promise((r) => setTimeout(r, 300));
          return (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      },
    });
    const s = await startTestIngest(inst, { redis: slow });
    const inflight = post(s.url);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    await s.server.close();
    const res = await inflight;
    assert.equal(res.status, 202);
    assert.ok(performance.now() - t0 >= 150, 'close waited for the request');
    assert.ok(performance.now() - t0 < 2000, 'and not for keep-alive timeouts');
    await assert.rejects(fetch(`${s.url}/healthz`));
  });

  test('appends never trim, even past retention.max_len (unacknowledged entries must survive)', async () => {
    const topology = structuredClone(ingest.topology);
    topology.topics.transactions!.retention = { max_len: 10 };
    const keys = new Keys(inst.env.prefix);
    const appender = new EventAppender(inst.redis, topology, keys, { timeoutMs: 2000 });
    const merchant = 'merchant_trim';
    const stream = keys.lane('transactions', partitionOf(merchant, 8), 'normal');
    const before = await inst.redis.xlen(stream);
    for (let i = 0; i < 500; i++) {
      await appender.append({ type: 'payin', merchant_id: merchant, amount: 1, currency: 'USD' }, i % 2 ? `k${i}` : undefined);
    }
    assert.equal((await inst.redis.xlen(stream)) - before, 500);
  });
});
