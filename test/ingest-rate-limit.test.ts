// The per-merchant rate limit: a token bucket taken in the same script as the append. Past the
// burst, 429 with Retry-After and nothing appended; other merchants unaffected; idempotent
// replays (which append nothing) never limited and never charged.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { partitionOf } from '../core/partition.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { createApiKey } from '../core/api-keys.ts';
import { IngestKeys } from '../ingest/keys.ts';
import { RateLimitedError } from '../core/errors.ts';
import { scanPrefix, startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';

// slow refill: a busy machine must not refill a token between emptying a bucket and the next post
const PER_SECOND = 1;
const BURST = 20;

describe('ingest rate limit', () => {
  let inst: TestInstance;
  let ingest: TestIngest;
  let keys: IngestKeys;
  const apiKeys = new Map<string, string>();
  let accepted = 0; // every 202 that appended, over the whole suite
  let limited = 0;

  const post = async (merchant: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${ingest.url}/v1/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKeys.get(merchant)}`, ...headers },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (res.status === 202 && res.headers.get('idempotent-replayed') === null) accepted++;
    if (res.status === 429) limited++;
    return { status: res.status, headers: res.headers, json };
  };

  /** Posts (no key) until one is limited: the bucket is empty now, whatever time the posts before took. */
  const emptyBucket = async (merchant: string, from: number) => {
    for (let i = 0; i < BURST * 5; i++) {
      const r = await post(merchant, sampleBody(from + i, [merchant]));
      if (r.status === 429) return r;
    }
    throw new Error(`${merchant}: never limited after ${BURST * 5} posts`);
  };

  const assertLimited = (r: Awaited<ReturnType<typeof post>>) => {
    assert.equal(r.status, 429);
    assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(r.json.status, 429);
    assert.match(String(r.json.type), /rate-limited/);
    assert.match(String(r.json.detail), /rate limit/);
    const retryAfter = r.headers.get('retry-after') ?? '';
    assert.match(retryAfter, /^\d+$/);
    assert.ok(Number(retryAfter) >= 1, `Retry-After ${retryAfter}`);
    return Number(retryAfter);
  };

  before(async () => {
    inst = await createInstance('ingest-rl');
    const { path } = writeTopology({ 'ingest.rate_limit.per_second': PER_SECOND, 'ingest.rate_limit.burst': BURST });
    ingest = await startTestIngest(inst, { topology: path });
    keys = new IngestKeys(inst.env.prefix);
    for (const m of ['m_flood', 'm_calm', 'm_idem']) apiKeys.set(m, await createApiKey(inst.pool, { merchantId: m }));
    // the refunds and chargebacks of the mix name payins ingest must know (else 422 before any token is taken)
    for (const m of ['m_flood', 'm_calm', 'm_idem', 'm_lib']) {
      await registerReferencedPayins(
        inst.redis,
        inst.keys,
        ingest.topology,
        Array.from({ length: 200 }, (_, i) => sampleBody(i, [m])),
      );
    }
  });
  after(async () => {
    await ingest?.server.close();
    await inst?.cleanup();
  });

  test('60 posts at once: the burst passes, the rest is 429 with Retry-After, nothing appended for them', async (t) => {
    const t0 = performance.now();
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => post('m_flood', sampleBody(i, ['m_flood']))));
    const elapsedS = (performance.now() - t0) / 1000;
    const ok = results.filter((r) => r.status === 202);
    const rejected = results.filter((r) => r.status !== 202);
    assert.ok(ok.length >= BURST, `at least the burst (${ok.length})`);
    assert.ok(ok.length <= BURST + PER_SECOND * elapsedS + 1, `at most burst + refill (${ok.length} in ${elapsedS.toFixed(3)} s)`);
    for (const r of rejected) assertLimited(r);
    t.diagnostic(`${ok.length} accepted, ${rejected.length} limited in ${elapsedS.toFixed(3)} s`);
    assert.equal((await scanPrefix(inst.redis, inst.env.prefix)).entries, accepted, 'one stream entry per 202, none for a 429');

    // the bucket sits in the merchant's partition slot and expires once it would be full again
    const partition = partitionOf('m_flood', ingest.topology.topics.transactions!.partitions);
    const bucket = keys.rateLimit(partition, 'm_flood');
    assert.ok(bucket.includes(`:{${partition}}:`));
    const pttl = await inst.redis.pttl(bucket);
    assert.ok(pttl > 0 && pttl <= (BURST / PER_SECOND) * 1000, `pttl ${pttl}`);
  });

  test('Retry-After is honest: after waiting it, the merchant gets through again', async () => {
    const wait = assertLimited(await emptyBucket('m_flood', 100));
    await delay(wait * 1000);
    const again = await post('m_flood', sampleBody(101, ['m_flood']));
    assert.equal(again.status, 202, JSON.stringify(again.json));
  });

  test('another merchant is unaffected', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => post('m_calm', sampleBody(i, ['m_calm']))));
    assert.deepEqual(
      results.map((r) => r.status),
      Array(10).fill(202),
    );
  });

  test('idempotent replays are neither limited nor charged; a limited key is not remembered', async () => {
    const body = sampleBody(7, ['m_idem']);
    const first = await post('m_idem', body, { 'idempotency-key': 'k1' });
    assert.equal(first.status, 202);
    const id = first.json.id;

    // empty the bucket
    const drain = await Promise.all(Array.from({ length: BURST + 5 }, (_, i) => post('m_idem', sampleBody(i + 100, ['m_idem']))));
    assert.ok(drain.some((r) => r.status === 429));
    const entries = (await scanPrefix(inst.redis, inst.env.prefix)).entries;
    const bucket = keys.rateLimit(partitionOf('m_idem', ingest.topology.topics.transactions!.partitions), 'm_idem');
    const tokens = await inst.redis.hget(bucket, 't');

    // replays of k1 while the bucket is empty: the first answer, every time
    const replays = await Promise.all(Array.from({ length: 10 }, () => post('m_idem', body, { 'idempotency-key': 'k1' })));
    for (const r of replays) {
      assert.equal(r.status, 202);
      assert.equal(r.headers.get('idempotent-replayed'), 'true');
      assert.equal(r.json.id, id);
    }
    // the same key with another body is still a conflict, not a 429
    assert.equal((await post('m_idem', { ...body, amount: body.amount + 1 }, { 'idempotency-key': 'k1' })).status, 409);
    assert.equal((await scanPrefix(inst.redis, inst.env.prefix)).entries, entries, 'replays append nothing');
    assert.equal(await inst.redis.hget(bucket, 't'), tokens, 'and take no token');

    // a new key while limited: 429, and nothing recorded under it, so a later retry appends
    const k2 = sampleBody(8, ['m_idem']);
    await emptyBucket('m_idem', 130); // empty again: the replays above may have taken longer than a refill
    const wait = assertLimited(await post('m_idem', k2, { 'idempotency-key': 'k2' }));
    assert.equal(await inst.redis.exists(keys.idempotency(partitionOf('m_idem', ingest.topology.topics.transactions!.partitions), 'm_idem', 'k2')), 0);
    await delay(wait * 1000);
    const retried = await post('m_idem', k2, { 'idempotency-key': 'k2' });
    assert.equal(retried.status, 202);
    assert.equal(retried.headers.get('idempotent-replayed'), null);
    assert.equal((await scanPrefix(inst.redis, inst.env.prefix)).entries, entries + 1);
  });

  test('429s are counted by the request metric', async () => {
    const text = await (await fetch(`${ingest.url}/metrics`)).text();
    const m = /rill_ingest_requests_total\{route="\/v1\/transactions",status="429"\} (\d+)/.exec(text);
    assert.equal(Number(m?.[1]), limited);
  });

  test('the appender throws RateLimitedError past the burst', async () => {
    const { topology } = writeTopology({ 'ingest.rate_limit.per_second': 0.5, 'ingest.rate_limit.burst': 3 });
    const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 2000 });
    for (let i = 0; i < 3; i++) await appender.append(sampleBody(i, ['m_lib']));
    await assert.rejects(appender.append(sampleBody(3, ['m_lib'])), (err: unknown) => {
      assert.ok(err instanceof RateLimitedError);
      assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= 2000, `${err.retryAfterMs} ms`);
      assert.equal(err.retryAfterSeconds, Math.ceil(err.retryAfterMs / 1000));
      return true;
    });
  });
});
