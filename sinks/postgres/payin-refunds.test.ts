// What is refunded of each payin (migration 007, payin-refunds.ts), on real Postgres: the batch
// writer counts each succeeded refund or chargeback once, on its fast path and on its slow path (a
// batch mixing rows already written and new ones), never a failed one; the migration counts the
// refunds written before it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from '../../test/helpers/instance.ts';
import type { TestInstance } from '../../test/helpers/instance.ts';
import { event, row } from '../../test/helpers/ledger-rows.ts';
import { BatchWriter } from './batch-writer.ts';
import { migrate, readMigrations } from './migrate.ts';

let inst: TestInstance;
let writer: BatchWriter;
before(async () => {
  inst = await createInstance('payinrefunds');
  writer = new BatchWriter(inst.env);
});
after(async () => {
  await writer.close();
  await inst.cleanup();
});

const sums = async () =>
  Object.fromEntries(
    (await inst.pool.query<{ payin_id: string; refunded: string }>('SELECT payin_id, refunded::text FROM payin_refunds')).rows.map((r) => [
      r.payin_id,
      r.refunded,
    ]),
  );
const written = async (m: string) =>
  (await inst.pool.query<{ written: string }>('SELECT written::text FROM merchant_refunds WHERE merchant_id = $1', [m])).rows[0]?.written;

test('each succeeded refund and chargeback counts once, on the fast and the slow path; failed ones not at all', async () => {
  const m = 'm_pr';
  const payin = event(m, 'EUR', 'payin', 1_000);
  const r1 = event(m, 'EUR', 'refund', 100, { reference: payin.id });
  const r2 = event(m, 'EUR', 'chargeback', 200, { reference: payin.id });
  const refused = event(m, 'EUR', 'refund', 5_000, { reference: payin.id, status: 'failed', failure_code: 'refund_exceeds_payin', ledger: [] });
  await writer.write([payin, r1, refused].map((e, i) => row(e, i)));
  assert.deepEqual(await sums(), { [payin.id]: '100' });
  // redelivered together with a new one: the slow path, only r2 is new
  await writer.write([r1, refused, r2].map((e, i) => row(e, i)));
  assert.deepEqual(await sums(), { [payin.id]: '300' });
  assert.equal(await written(m), '2');
  await writer.write([r2].map((e, i) => row(e, i)));
  assert.deepEqual(await sums(), { [payin.id]: '300' });
  assert.equal(await written(m), '2');
});

test('the migration counts the refunds written before it', async () => {
  const s = await createInstance('payinrefundsmig');
  try {
    await s.pool.query('DROP TABLE payin_refund_lines, payin_refunds, merchant_refunds; DELETE FROM schema_migrations WHERE version = 7');
    await s.pool.query('SELECT rill_ensure_partitions(current_date, current_date)');
    await s.pool.query(`INSERT INTO transactions (id, merchant_id, type, amount, currency, status, reference, ingested_at, stream_id) VALUES
      ('p1', 'm', 'payin', 100, 'EUR', 'succeeded', NULL, now(), '1-0'), ('r1', 'm', 'refund', 30, 'EUR', 'succeeded', 'p1', now(), '1-1'),
      ('r2', 'm', 'chargeback', 20, 'EUR', 'succeeded', 'p1', now(), '1-2'), ('r3', 'm', 'refund', 99, 'EUR', 'failed', 'p1', now(), '1-3')`);
    assert.deepEqual(await migrate(s.pool, s.env.pgSchema, readMigrations()), ['007_payin_refunds']);
    assert.deepEqual((await s.pool.query('SELECT payin_id, refunded::text FROM payin_refunds')).rows, [{ payin_id: 'p1', refunded: '50' }]);
    assert.deepEqual((await s.pool.query('SELECT written::text FROM merchant_refunds')).rows, [{ written: '2' }]);
  } finally {
    await s.cleanup();
  }
});
