// The payments pipeline's end-of-run verdict, shared by the money-conservation and Redis Cluster
// tests: every accepted transaction a row, once, with its expected outcome (failed ones with their
// failure_code), nothing dead-lettered, and money
// conserved (expected balance = Postgres wallet = sum of wallet-side ledger lines; double entry).
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Keys } from '../../core/keys.ts';
import type { FailureCode } from '../../core/failure-codes.ts';
import type { TransactionBody } from '../../ingest/validation.ts';
import { deadLetters } from './pipeline.ts';

export type Expect = { status: 'succeeded' } | { status: 'failed'; code: FailureCode; reason: RegExp };

export interface Posted {
  id: string;
  body: TransactionBody;
  expect: Expect;
}

export interface PlacesVerdict {
  rows: number;
  counts: Record<Expect['status'], number>;
}

/**
 * Every posted id is a row, never twice, with its expected status (and, when failed, its
 * failure_code and reason); nothing was dead-lettered by the ledger nor by `quietStages`: merchant
 * mistakes (orphan refunds included, refused at ingest or failed payin_not_found) end as rows.
 */
export async function assertPlaces(o: {
  pool: pg.Pool;
  redis: Redis;
  keys: Keys;
  partitions: number;
  posted: readonly Posted[];
  quietStages: readonly string[];
}): Promise<PlacesVerdict> {
  const { rows } = await o.pool.query<{ id: string; status: string; failure_code: string | null; failure_reason: string | null }>(
    'SELECT id, status, failure_code, failure_reason FROM transactions',
  );
  const inTable = new Map(rows.map((r) => [r.id, r]));
  assert.equal(inTable.size, rows.length, 'no row twice');
  for (const stage of new Set(['ledger', ...o.quietStages]))
    assert.equal((await deadLetters(o.redis, o.keys, stage, o.partitions)).length, 0, `nothing dead-lettered by ${stage}`);
  const counts = { succeeded: 0, failed: 0 };
  for (const p of o.posted) {
    const row = inTable.get(p.id);
    assert.ok(row, `${p.id} (${p.body.type}) is a row`);
    assert.equal(row.status, p.expect.status, `${p.id} ${p.body.type} ${p.body.amount}: ${row.failure_code} ${row.failure_reason}`);
    if (p.expect.status === 'failed') {
      assert.equal(row.failure_code, p.expect.code, `${p.id} ${p.body.type}: ${row.failure_reason}`);
      assert.match(row.failure_reason ?? '', p.expect.reason);
    } else assert.equal(row.failure_code, null);
    counts[p.expect.status]++;
  }
  assert.equal(rows.length, o.posted.length);
  return { rows: rows.length, counts };
}

/** Money: expected balance from the succeeded sequence = wallet = sum of wallet-side entries; double entry. Returns the wallets expected. */
export async function assertMoney(pool: pg.Pool, posted: readonly Posted[]): Promise<Map<string, number>> {
  const expected = new Map<string, number>();
  for (const p of posted) {
    if (p.expect.status !== 'succeeded') continue;
    const k = `${p.body.merchant_id}/${p.body.currency}`;
    expected.set(k, (expected.get(k) ?? 0) + (p.body.type === 'payin' ? p.body.amount : -p.body.amount));
  }
  const { rows: wallets } = await pool.query<{ k: string; balance: string }>("SELECT merchant_id || '/' || currency AS k, balance::text FROM wallets");
  const { rows: sums } = await pool.query<{ k: string; sum: string }>(
    "SELECT merchant_id || '/' || currency AS k, sum(amount)::text AS sum FROM ledger_entries WHERE account = 'wallet' GROUP BY 1",
  );
  assert.deepEqual(new Map(wallets.map((w) => [w.k, Number(w.balance)])), expected, 'wallet balances');
  assert.deepEqual(new Map(sums.map((s) => [s.k, Number(s.sum)])), expected, 'sum of ledger entries');
  const { rows: zero } = await pool.query<{ sum: string; unbalanced: string }>(
    'SELECT sum(amount)::text AS sum, (SELECT count(*) FROM (SELECT tx_id FROM ledger_entries GROUP BY tx_id HAVING sum(amount) <> 0) x) AS unbalanced FROM ledger_entries',
  );
  assert.equal(Number(zero[0]!.sum), 0, 'double entry: all entries sum to zero');
  assert.equal(Number(zero[0]!.unbalanced), 0, 'every transaction balances');
  return expected;
}
