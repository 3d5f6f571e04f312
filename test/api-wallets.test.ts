// GET /v1/wallets: the key's merchant's balances from Postgres `wallets`, one per currency, and
// nobody else's.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { createApiKey } from '../core/api-keys.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';

const M = 'merchant_wallets';
const OTHER = 'merchant_wallets_b';
const EMPTY = 'merchant_wallets_none';

describe('GET /v1/wallets', () => {
  let inst: TestInstance;
  let ingest: TestIngest;
  const apiKeys: Record<string, string> = {};

  const get = async (key?: string) => {
    const res = await fetch(`${ingest.url}/v1/wallets`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
    return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
  };

  before(async () => {
    inst = await createInstance('api-wallets');
    // 002_payments.sql creates it; an older schema gets the same shape here
    await inst.pool.query(`CREATE TABLE IF NOT EXISTS wallets (
      merchant_id text NOT NULL, currency char(3) NOT NULL, balance bigint NOT NULL DEFAULT 0,
      updated_at timestamptz NOT NULL DEFAULT now(), CONSTRAINT wallets_pkey PRIMARY KEY (merchant_id, currency))`);
    await inst.pool.query(
      `INSERT INTO wallets (merchant_id, currency, balance, updated_at) VALUES
         ($1, 'USD', 1234567, '2024-05-01T10:00:00.123Z'),
         ($1, 'EUR', -500, '2024-05-02T11:30:00Z'),
         ($1, 'JPY', 0, '2024-05-03T00:00:00Z'),
         ($2, 'USD', 999, '2024-05-04T00:00:00Z'),
         ($1, 'GBP', 9007199254740991, '2024-05-05T00:00:00Z')`,
      [M, OTHER],
    );
    ingest = await startTestIngest(inst);
    apiKeys.main = await createApiKey(inst.pool, { merchantId: M });
    apiKeys.other = await createApiKey(inst.pool, { merchantId: OTHER });
    apiKeys.empty = await createApiKey(inst.pool, { merchantId: EMPTY });
    apiKeys.tap = await createApiKey(inst.pool, { scope: 'tap' });
  });

  after(async () => {
    await ingest?.server.close();
    await inst?.cleanup();
  });

  test("the merchant's balances, by currency, integers in minor units", async () => {
    const r = await get(apiKeys.main);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.deepEqual(r.json, {
      wallets: [
        { currency: 'EUR', balance: -500, updated_at: '2024-05-02T11:30:00.000Z' },
        { currency: 'GBP', balance: 9007199254740991, updated_at: '2024-05-05T00:00:00.000Z' },
        { currency: 'JPY', balance: 0, updated_at: '2024-05-03T00:00:00.000Z' },
        { currency: 'USD', balance: 1234567, updated_at: '2024-05-01T10:00:00.123Z' },
      ],
    });
  });

  test('merchant-scoped: each key sees only its own; none is an empty list', async () => {
    assert.deepEqual((await get(apiKeys.other)).json, { wallets: [{ currency: 'USD', balance: 999, updated_at: '2024-05-04T00:00:00.000Z' }] });
    assert.deepEqual((await get(apiKeys.empty)).json, { wallets: [] });
  });

  test('a balance change shows on the next read', async () => {
    await inst.pool.query("UPDATE wallets SET balance = balance + 100, updated_at = '2024-06-01T00:00:00Z' WHERE merchant_id = $1 AND currency = 'USD'", [
      OTHER,
    ]);
    assert.deepEqual((await get(apiKeys.other)).json, { wallets: [{ currency: 'USD', balance: 1099, updated_at: '2024-06-01T00:00:00.000Z' }] });
  });

  test('no key 401, a tap key 403', async () => {
    const none = await get();
    assert.equal(none.status, 401);
    assert.match(none.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal((await get(apiKeys.tap)).status, 403);
  });
});
