// Authorization on every API route the app has (discovered from app.routes, so a route added later
// is covered by the generic checks the day it lands): no key → 401, a bad or revoked key → 401, tap
// keys are read-only, and a merchant key never reads or writes another merchant's data (403 or
// 404 as design §3 documents, never the data). The other merchant shares the partition on purpose:
// partition-level reads (Redis scans, partition-keyed tables) see both merchants' rows.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { createApiKey, parseApiKey, revokeApiKey } from '../../core/api-keys.ts';
import { newTxId } from '../../core/tx-id.ts';
import { BatchWriter } from '../../sinks/postgres/batch-writer.ts';
import { discoverRoutes, inProcessIngest, isApiRoute, isWriteMethod, problemViolation, streamKeys, totalLength } from '../fuzz/harness.ts';
import type { InProcessIngest, RouteInfo } from '../fuzz/harness.ts';
import { call, fillPath, NEVER_SHED, otherPartitionMerchant, samePartitionMerchant } from './helpers.ts';
import type { Answer } from './helpers.ts';

const A = 'm_sec_a';

describe('tenant isolation and key scopes on every API route', () => {
  let inst: TestInstance;
  let ing: InProcessIngest;
  let routes: RouteInfo[];
  let streams: string[];
  let B: string;
  let C: string;
  const key: Record<'a' | 'b' | 'c' | 'tap' | 'revoked', string> = { a: '', b: '', c: '', tap: '', revoked: '' };
  /** Strings only merchant B's data contains. */
  const marker = `SECRETB${randomBytes(6).toString('hex')}`;
  let idB = ''; // B's transaction, still in Redis
  let idBpg = ''; // B's transaction, in Postgres

  const isTapRoute = (r: RouteInfo) => r.path.startsWith('/v1/streams/');
  /** The risk review queue: operator keys only. */
  const isOperatorRoute = (r: RouteInfo) => r.path.startsWith('/v1/reviews');
  const bodyFor = (merchant: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ type: 'payin', merchant_id: merchant, amount: 4242, currency: 'USD', reference: marker, metadata: { note: marker }, ...extra });
  /** A plausible request for a route: its own method, B's identifiers in the path, a body for writes. */
  const probe = (r: RouteInfo, k: { key?: string; authorization?: string }, merchant = A): Promise<Answer> => {
    const path = fillPath(r, { id: idB, topic: 'transactions', other: B });
    if (!isWriteMethod(r.method)) return call(ing.app, r.method, `${path}?merchant_id=${B}`, k);
    const batch = r.path.endsWith('/batch');
    return call(ing.app, r.method, path, {
      ...k,
      body: batch ? `${bodyFor(merchant)}\n${bodyFor(merchant)}` : bodyFor(merchant),
      contentType: batch ? 'application/x-ndjson' : 'application/json',
    });
  };
  const assertProblem = (res: Answer, status: number, what: string) => {
    assert.equal(res.status, status, `${what}: ${res.status} ${res.text.slice(0, 300)}`);
    assert.equal(problemViolation(res.status, res.headers, res.text), undefined, `${what}: problem+json`);
  };

  before(async () => {
    inst = await createInstance('sec-tenants');
    ing = inProcessIngest(inst, { load: NEVER_SHED });
    routes = discoverRoutes(ing.app).filter(isApiRoute);
    streams = streamKeys(ing.topology, inst.env.prefix);
    const partitions = ing.topology.topics[ing.topology.ingest.topic]!.partitions;
    B = samePartitionMerchant(A, partitions, 'm_sec_b');
    C = otherPartitionMerchant(A, partitions, 'm_sec_c');
    key.a = await createApiKey(inst.pool, { merchantId: A });
    key.b = await createApiKey(inst.pool, { merchantId: B });
    key.c = await createApiKey(inst.pool, { merchantId: C });
    key.tap = await createApiKey(inst.pool, { scope: 'tap' });
    key.revoked = await createApiKey(inst.pool, { merchantId: A });
    await revokeApiKey(inst.pool, key.revoked);

    // B's data: one event in Redis (accepted, not yet processed), one row (and wallet) in Postgres
    const res = await call(ing.app, 'POST', '/v1/transactions', { key: key.b, body: bodyFor(B) });
    assert.equal(res.status, 202, res.text);
    idB = (res.json() as { id: string }).id;
    // a tx id carries its ingest millisecond, and lookups bind ingested_at to it: make them one
    const now = Date.now();
    idBpg = newTxId(now);
    const writer = new BatchWriter(inst.env);
    const row = (id: string, merchant: string, amount: number, currency: string, reference: string) => ({
      event: {
        id,
        merchant_id: merchant,
        type: 'payin' as const,
        amount,
        currency,
        reference,
        metadata: { note: reference },
        ingested_at: now,
        status: 'succeeded' as const,
        ledger: [
          { account: 'wallet' as const, amount },
          { account: 'external' as const, amount: -amount },
        ],
      },
      streamId: '1-1',
      attempts: 1,
    });
    await writer.writeBatch([row(idBpg, B, 4343, 'EUR', `${marker}pg`), row(newTxId(now), A, 1111, 'USD', 'a-ref')]);
    await writer.close();
  });

  after(async () => {
    await ing?.stop();
    await inst?.cleanup();
  });

  test('routes under test', (t) => {
    t.diagnostic(routes.map((r) => `${r.method} ${r.path}`).join(', '));
    assert.ok(
      routes.some((r) => r.method === 'POST' && r.path === '/v1/transactions'),
      'POST /v1/transactions is there',
    );
  });

  test('no key → 401 with a Bearer challenge', async (t) => {
    for (const r of routes) {
      await t.test(`${r.method} ${r.path}`, async () => {
        for (const authorization of [undefined, '', 'Bearer', 'Basic dXNlcjpwYXNz']) {
          const res = await probe(r, authorization === undefined ? {} : { authorization });
          assertProblem(res, 401, `Authorization ${JSON.stringify(authorization)}`);
          assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm=/);
        }
      });
    }
  });

  test('malformed, unknown, wrong-secret and revoked keys → 401', async (t) => {
    const { keyId, secret } = parseApiKey(key.a)!;
    const tapId = parseApiKey(key.tap)!.keyId;
    const bad: Record<string, string> = {
      revoked: key.revoked,
      unknown: `rk_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`,
      'right id, wrong secret': `rk_${keyId}_${randomBytes(32).toString('base64url')}`,
      "another key's id with this secret": `rk_${tapId}_${secret}`,
      truncated: key.a.slice(0, -1),
      extended: `${key.a}x`,
      'secret only': secret,
      'id only': `rk_${keyId}`,
    };
    for (const r of routes) {
      await t.test(`${r.method} ${r.path}`, async () => {
        for (const [what, k] of Object.entries(bad)) assertProblem(await probe(r, { key: k }), 401, what);
      });
    }
  });

  test('tap keys are read-only: every write route refuses them, and nothing is appended', async (t) => {
    const writes = routes.filter((r) => isWriteMethod(r.method));
    assert.ok(writes.length > 0);
    for (const r of writes) {
      await t.test(`${r.method} ${r.path}`, async () => {
        const before = await totalLength(inst.redis, streams);
        for (const merchant of [A, B]) assertProblem(await probe(r, { key: key.tap }, merchant), 403, `tap key, merchant_id ${merchant}`);
        assert.equal(await totalLength(inst.redis, streams), before, 'nothing appended');
      });
    }
  });

  test('scopes on read routes: merchant data needs a merchant key, streams need a tap key', async (t) => {
    for (const r of routes.filter((x) => !isWriteMethod(x.method))) {
      await t.test(`${r.method} ${r.path}`, async () => {
        if (isTapRoute(r)) {
          assertProblem(await probe(r, { key: key.a }), 403, 'merchant key on a tap route');
          const ok = await probe(r, { key: key.tap });
          assert.equal(ok.status, 200, `tap key on ${r.path}: ${ok.text}`);
        } else {
          assertProblem(await probe(r, { key: key.tap }), 403, 'tap key on a merchant route');
        }
      });
    }
  });

  test('operator routes (the risk review queue) refuse merchant and tap keys', async (t) => {
    for (const r of routes.filter(isOperatorRoute)) {
      await t.test(`${r.method} ${r.path}`, async () => {
        for (const k of [key.a, key.b, key.tap]) assertProblem(await probe(r, { key: k }, B), 403, 'not an operator key');
      });
    }
  });

  test("a merchant key never reads another merchant's data (any read route, B's ids in the path and query)", async (t) => {
    for (const r of routes.filter((x) => !isWriteMethod(x.method) && !isTapRoute(x))) {
      await t.test(`${r.method} ${r.path}`, async () => {
        for (const id of [idB, idBpg]) {
          for (const k of [key.a, key.c]) {
            const path = fillPath(r, { id, topic: 'transactions', other: B });
            for (const q of ['', `?merchant_id=${B}`, `?merchant=${B}`]) {
              const res = await call(ing.app, r.method, path + q, { key: k });
              assert.ok(res.status === 200 || res.status === 403 || res.status === 404, `${path + q}: ${res.status} ${res.text.slice(0, 200)}`);
              assert.ok(!res.text.includes(marker), `${path + q} answered B's data: ${res.text.slice(0, 300)}`);
              assert.ok(!res.text.includes(B), `${path + q} named merchant ${B}: ${res.text.slice(0, 300)}`);
              if (res.status !== 200) assert.equal(problemViolation(res.status, res.headers, res.text), undefined);
            }
          }
        }
      });
    }
  });

  test("a merchant key never writes another merchant's events (any write route)", async (t) => {
    for (const r of routes.filter((x) => isWriteMethod(x.method))) {
      await t.test(`${r.method} ${r.path}`, async () => {
        const before = await totalLength(inst.redis, streams);
        const res = await probe(r, { key: key.a }, B);
        if (/^\/v1\/(webhook_endpoints|events)\b/.test(r.path)) {
          // the merchant is the key's own, never taken from the body: a body naming another
          // merchant is not even valid, and another merchant's objects are unknown ids (404;
          // test/webhooks-*.test.ts shows a merchant cannot see or change another's endpoints)
          assert.ok(res.status === 400 || res.status === 404, `${r.method} ${r.path}: ${res.status} ${res.text}`);
          assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
        } else if (res.status === 202) {
          // a batch answers per line: every line for B is rejected as forbidden
          const { results } = res.json() as { results: { status: string; errors?: { status: number; path: string }[] }[] };
          assert.ok(results.length > 0 && results.every((x) => x.status === 'rejected' && x.errors?.some((e) => e.status === 403)), res.text);
        } else {
          assertProblem(res, 403, `${A}'s key, merchant_id ${B}`);
        }
        assert.equal(await totalLength(inst.redis, streams), before, 'nothing appended');
      });
    }
  });

  test("GET /v1/transactions/:id: another merchant's id answers exactly like an unknown one", { skip: false }, async (t) => {
    const r = routes.find((x) => x.method === 'GET' && x.path === '/v1/transactions/:id');
    if (!r) return t.skip('no GET /v1/transactions/:id');
    // the ids are real: their merchant sees them
    for (const id of [idB, idBpg]) {
      const own = await call(ing.app, 'GET', `/v1/transactions/${id}`, { key: key.b });
      assert.equal(own.status, 200, own.text);
      assert.ok(own.text.includes(marker));
    }
    const unknown = await call(ing.app, 'GET', `/v1/transactions/${newTxId()}`, { key: key.a });
    assertProblem(unknown, 404, 'unknown id');
    for (const id of [idB, idBpg]) {
      for (const k of [key.a, key.c]) {
        const res = await call(ing.app, 'GET', `/v1/transactions/${id}`, { key: k });
        assertProblem(res, 404, `another merchant's ${id}`);
        assert.equal(res.text, unknown.text, 'the same body as for an unknown id: ids cannot be probed');
      }
    }
  });

  test("GET /v1/wallets: only the key's own balances, whatever the query says", async (t) => {
    const r = routes.find((x) => x.method === 'GET' && x.path === '/v1/wallets');
    if (!r) return t.skip('no GET /v1/wallets');
    for (const q of ['', `?merchant_id=${B}`, `?merchant_id=${A}&merchant_id=${B}`]) {
      const res = await call(ing.app, 'GET', `/v1/wallets${q}`, { key: key.a });
      assert.equal(res.status, 200, res.text);
      const { wallets } = res.json() as { wallets: { currency: string; balance: number }[] };
      assert.deepEqual(
        wallets.map((w) => [w.currency, w.balance]),
        [['USD', 1111]],
        `A's wallets only: ${res.text}`,
      );
    }
    const own = await call(ing.app, 'GET', '/v1/wallets', { key: key.b });
    assert.deepEqual(
      (own.json() as { wallets: { currency: string; balance: number }[] }).wallets.map((w) => [w.currency, w.balance]),
      [['EUR', 4343]],
    );
  });

  test('revocation: invalidated at once in-process; after the cache TTL otherwise', async (t) => {
    // api-keys.ts caches a key for ttlMs (30 s by default) per process: `rill keys revoke` from
    // another process takes effect within that TTL; a revocation in-process calls invalidate().
    const reads = routes.filter((r) => !isWriteMethod(r.method) && !isTapRoute(r) && !isOperatorRoute(r));
    const writes = routes.filter((r) => isWriteMethod(r.method) && !isOperatorRoute(r));
    const authorizedEverywhere = async (k: string) => {
      for (const r of [...reads, ...writes]) {
        const res = await probe(r, { key: k });
        assert.ok(res.status !== 401 && res.status !== 403, `${r.method} ${r.path} before revocation: ${res.status} ${res.text}`);
      }
    };
    const refusedEverywhere = async (k: string) => {
      for (const r of routes) assertProblem(await probe(r, { key: k }), 401, `${r.method} ${r.path} after revocation`);
    };

    await t.test('revoke + KeyStore.invalidate → 401 at once', async () => {
      const k = await createApiKey(inst.pool, { merchantId: A });
      await authorizedEverywhere(k);
      assert.equal(await revokeApiKey(inst.pool, k), true);
      ing.keyStore.invalidate(parseApiKey(k)!.keyId);
      await refusedEverywhere(k);
    });

    await t.test('revoke from elsewhere → 401 once the cached entry expires', async () => {
      const shortTtl = inProcessIngest(inst, { load: NEVER_SHED, keyStore: { ttlMs: 300 } });
      try {
        const k = await createApiKey(inst.pool, { merchantId: A });
        const get = (r: RouteInfo) =>
          call(shortTtl.app, r.method, fillPath(r, { id: idB, topic: 'transactions', other: B }), {
            key: k,
            body: bodyFor(A),
            contentType: r.path.endsWith('/batch') ? 'application/x-ndjson' : 'application/json',
          });
        for (const r of [...reads, ...writes]) assert.notEqual((await get(r)).status, 401);
        assert.equal(await revokeApiKey(inst.pool, k), true);
        await new Promise((res) => setTimeout(res, 350));
        for (const r of routes) assertProblem(await get(r), 401, `${r.method} ${r.path} after the TTL`);
      } finally {
        await shortTtl.stop();
      }
    });
  });
});
