// The payments pipeline's end-of-run verdict, shared by the money-conservation and Redis Cluster
// tests: every posted transaction in exactly one final place with its expected outcome, and money
// conserved (expected balance = Postgres wallet = sum of wallet-side ledger lines; double entry).
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Keys } from '../../core/keys.ts';
import type { TransactionBody } from '../../ingest/validation.ts';
import { deadLetters } from './pipeline.ts';

export type Expect = { status: 'succeeded' } | { status: 'failed'; reason: RegExp } | { status: 'dead_lettered' };

export interface Posted {
  id: string;
  body: TransactionBody;
  expect: Expect;
}

export interface PlacesVerdict {
  rows: number;
  dead: number;
  counts: Record<Expect['status'], number>;
}

/**
 * Every posted id is a row or a ledger dead letter (PayinNotFoundError), never both, never twice,
 * with its expected status; `quietStages` dead-lettered nothing.
 */
export async function assertPlaces(o: { pool: pg.Pool; redis: Redis; keys: Keys; partitions: number; posted: readonly Posted[]; quietStages: readonly string[] }): Promise<PlacesVerdict> {
  const { rows } = await o.pool.query<{ id: string; status: string; failure_reason: string | null }>('SELECT id, status, failure_reason FROM transactions');
  const inTable = new Map(rows.map((r) => [r.id, r]));
  assert.equal(inTable.size, rows.length, 'no row twice');
  const dead = await deadLetters(o.redis, o.keys, 'ledger', o.partitions);
  const deadIds = new Set(dead.map((d) => d.get('tx')!));
  assert.equal(deadIds.size, dead.length, 'no dead letter twice');
  for (const stage of o.quietStages) assert.equal((await deadLetters(o.redis, o.keys, stage, o.partitions)).length, 0, `nothing dead-lettered by ${stage}`);
  const counts = { succeeded: 0, failed: 0, dead_lettered: 0 };
  for (const p of o.posted) {
    const row = inTable.get(p.id);
    const isDead = deadIds.has(p.id);
    assert.ok(Boolean(row) !== isDead, `${p.id} (${p.body.type}) is in exactly one place`);
    if (p.expect.status === 'dead_lettered') assert.ok(isDead, `${p.id} dead-lettered`);
    else {
      assert.equal(row?.status, p.expect.status, `${p.id} ${p.body.type} ${p.body.amount}: ${row?.failure_reason}`);
      if (p.expect.status === 'failed') assert.match(row!.failure_reason ?? '', p.expect.reason);
    }
    counts[p.expect.status]++;
  }
  assert.equal(rows.length + dead.length, o.posted.length);
  for (const d of dead) assert.equal(d.get('error'), 'PayinNotFoundError');
  return { rows: rows.length, dead: dead.length, counts };
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
