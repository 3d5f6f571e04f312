// KeyStore: hashed storage, constant-time checks, and a cache that keeps Postgres off the hot path.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from '../test/helpers/instance.ts';
import type { TestInstance } from '../test/helpers/instance.ts';
import { createApiKey, KeyStore, parseApiKey, revokeApiKey } from './api-keys.ts';
import type { SqlRunner } from './api-keys.ts';

describe('KeyStore', () => {
  let inst: TestInstance;
  before(async () => {
    inst = await createInstance('ingest-keys');
  });
  after(async () => {
    await inst?.cleanup();
  });

  /** The instance's pool, counting queries, failing them while `down` is set. */
  const counting = () => {
    const state = { queries: 0, down: false };
    const db: SqlRunner = {
      query: async (text, values) => {
        state.queries++;
        if (state.down) throw new Error('connect ECONNREFUSED');
        return inst.pool.query(text, values);
      },
    };
    return { db, state };
  };

  test('keys are random, shown once, stored hashed', async () => {
    const key = await createApiKey(inst.pool, { merchantId: 'm1' });
    assert.match(key, /^rk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const { keyId, secret } = parseApiKey(key)!;
    const row = (await inst.pool.query('SELECT * FROM api_keys WHERE key_id = $1', [keyId])).rows[0] as Record<string, unknown>;
    assert.equal(row.merchant_id, 'm1');
    assert.equal(row.scope, 'merchant');
    assert.ok(Buffer.isBuffer(row.secret_hash) && row.secret_hash.length === 32);
    assert.ok(!JSON.stringify(row).includes(secret));
    assert.notEqual(await createApiKey(inst.pool, { merchantId: 'm1' }), key);
    await assert.rejects(createApiKey(inst.pool, { merchantId: 'bad:id' }));
  });

  test('authenticates merchant and tap keys; rejects wrong secrets and revoked keys', async () => {
    const store = new KeyStore(inst.pool);
    const merchant = await createApiKey(inst.pool, { merchantId: 'm2' });
    const tap = await createApiKey(inst.pool, { scope: 'tap' });
    assert.deepEqual(await store.authenticate(merchant), { keyId: parseApiKey(merchant)!.keyId, scope: 'merchant', merchantId: 'm2' });
    assert.deepEqual(await store.authenticate(tap), { keyId: parseApiKey(tap)!.keyId, scope: 'tap' });
    const flipped = merchant.slice(0, -1) + (merchant.endsWith('A') ? 'B' : 'A');
    assert.equal(await store.authenticate(flipped), undefined);
    assert.equal(await store.authenticate('rk_nothex_x'), undefined);
    assert.equal(await store.authenticate(''), undefined);

    assert.equal(await revokeApiKey(inst.pool, merchant), true);
    assert.equal(await revokeApiKey(inst.pool, merchant), false);
    store.invalidate(parseApiKey(merchant)!.keyId);
    assert.equal(await store.authenticate(merchant), undefined);
  });

  test('operator keys: a scope of their own, no merchant; live() follows revocation', async () => {
    const store = new KeyStore(inst.pool, { ttlMs: 0, negativeTtlMs: 0 });
    const key = await createApiKey(inst.pool, { scope: 'operator' });
    const { keyId } = parseApiKey(key)!;
    assert.deepEqual(await store.authenticate(key), { keyId, scope: 'operator' });
    const row = (await inst.pool.query('SELECT scope, merchant_id FROM api_keys WHERE key_id = $1', [keyId])).rows[0] as Record<string, unknown>;
    assert.deepEqual(row, { scope: 'operator', merchant_id: null });
    assert.deepEqual(await store.live(keyId), { keyId, scope: 'operator' });
    await revokeApiKey(inst.pool, key);
    assert.equal(await store.live(keyId), undefined);
    assert.equal(await store.live('0000000000000000'), undefined);
  });

  test('one query per key id per TTL, however many concurrent requests', async () => {
    let now = 1_000_000;
    const { db, state } = counting();
    const store = new KeyStore(db, { ttlMs: 30_000, negativeTtlMs: 5_000, now: () => now });
    const key = await createApiKey(inst.pool, { merchantId: 'm3' });
    const results = await Promise.all(Array.from({ length: 100 }, () => store.authenticate(key)));
    assert.ok(results.every((p) => p?.scope === 'merchant'));
    assert.equal(state.queries, 1);
    now += 29_000;
    await store.authenticate(key);
    assert.equal(state.queries, 1);
    now += 2_000;
    await store.authenticate(key);
    assert.equal(state.queries, 2);

    // unknown ids are remembered briefly too
    const unknown = `rk_${'f'.repeat(16)}_${'A'.repeat(43)}`;
    await Promise.all([store.authenticate(unknown), store.authenticate(unknown)]);
    assert.equal(state.queries, 3);
    now += 4_000;
    await store.authenticate(unknown);
    assert.equal(state.queries, 3);
    now += 2_000;
    await store.authenticate(unknown);
    assert.equal(state.queries, 4);
    // malformed tokens never reach Postgres
    await store.authenticate('Bearer nonsense');
    assert.equal(state.queries, 4);
  });

  test('revocation takes effect within the TTL', async () => {
    let now = 0;
    const store = new KeyStore(inst.pool, { ttlMs: 30_000, now: () => now });
    const key = await createApiKey(inst.pool, { merchantId: 'm4' });
    assert.ok(await store.authenticate(key));
    await revokeApiKey(inst.pool, key);
    now += 30_001;
    assert.equal(await store.authenticate(key), undefined);
  });

  test('Postgres down: cached keys keep working up to maxStaleMs; unknown ones fail loudly', async () => {
    let now = 0;
    const { db, state } = counting();
    const store = new KeyStore(db, { ttlMs: 30_000, maxStaleMs: 300_000, now: () => now });
    const key = await createApiKey(inst.pool, { merchantId: 'm5' });
    assert.ok(await store.authenticate(key));
    state.down = true;
    now += 60_000;
    assert.equal((await store.authenticate(key))?.scope, 'merchant');
    const other = await createApiKey(inst.pool, { merchantId: 'm6' });
    await assert.rejects(store.authenticate(other), /ECONNREFUSED/);
    now += 300_000;
    await assert.rejects(store.authenticate(key), /ECONNREFUSED/);
  });

  test('the cache is bounded', async () => {
    const { db } = counting();
    const store = new KeyStore(db, { maxEntries: 3 });
    for (let i = 0; i < 10; i++) await store.authenticate(`rk_${i.toString(16).padStart(16, '0')}_${'A'.repeat(43)}`);
    assert.ok((store as unknown as { cache: Map<string, unknown> }).cache.size <= 3);
  });
});
