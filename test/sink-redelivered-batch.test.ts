// The BatchWriter's fast path (COPY straight into transactions and ledger_entries, wallets moved by
// sums made in Node) and its fallback: a batch overlapping rows already written fails the fast path
// with a unique violation, which the writer handles by rolling back and merging through the
// staging tables, so only the new rows and lines are written, each wallet moves once, and no 23505
// reaches the caller. A batch repeating an id keeps the first copy and never conflicts with itself.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createInstance } from './helpers/instance.ts';
import { event, expectedWallets, row } from './helpers/ledger-rows.ts';
import type { TestInstance } from './helpers/instance.ts';
import { BatchWriter } from '../sinks/postgres/batch-writer.ts';
import type { TransactionEvent } from '../core/event.ts';

let inst: TestInstance;
let writer: BatchWriter;
/** Every statement the writer sent (SQL text; a COPY's text too). */
const sent: string[] = [];

/** A real pg.Client whose queries are written to `sent`. */
function recordingClient(config: pg.ClientConfig): pg.Client {
  const client = new pg.Client(config);
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const q = args[0];
    sent.push(typeof q === 'string' ? q : String((q as { text?: string }).text));
    return query(...args);
  };
  return client;
}

/** Which way the writes since the last call went: the fast path alone, or the fast path then the staging merge. */
function paths(): string {
  const copies = sent.filter((s) => s.startsWith('COPY')).map((s) => s.split(' ')[1]);
  sent.length = 0;
  return copies.join(' ');
}

before(async () => {
  inst = await createInstance('redeliver');
  writer = new BatchWriter(inst.env, 'rill-test-redeliver', recordingClient);
});
after(async () => {
  await writer?.close();
  await inst?.cleanup();
});

async function state() {
  const q = async <T extends pg.QueryResultRow>(sql: string) => (await inst.pool.query<T>(sql)).rows;
  const tx = await q<{ id: string; amount: string }>('SELECT id, amount::text FROM transactions ORDER BY id');
  const lines = await q<{ tx_id: string; account: string; amount: string }>('SELECT tx_id, account, amount::text FROM ledger_entries ORDER BY tx_id, account');
  const wallets = await q<{ merchant_id: string; currency: string; balance: string }>('SELECT merchant_id, currency, balance::text FROM wallets');
  const fromLedger = await q<{ k: string; s: string }>(
    `SELECT merchant_id || '/' || currency AS k, sum(amount)::text AS s FROM ledger_entries WHERE account = 'wallet' GROUP BY 1`,
  );
  return {
    tx,
    lines,
    wallets: new Map(wallets.map((w) => [`${w.merchant_id}/${w.currency}`, BigInt(w.balance)])),
    walletsFromLedger: new Map(fromLedger.map((r) => [r.k, BigInt(r.s)])),
  };
}

async function reset(): Promise<void> {
  await inst.pool.query('TRUNCATE transactions, ledger_entries, wallets');
  sent.length = 0;
}

test('an overlapping (redelivered) batch falls back to the merge: new rows only, each line once, wallets moved once', async () => {
  await reset();
  const first = [
    event('m_a', 'USD', 'payin', 10_000),
    event('m_a', 'USD', 'payout', 1_500),
    event('m_b', 'EUR', 'payin', 700),
    event('m_c', 'GBP', 'payin', 300),
  ];
  assert.deepEqual(await writer.writeBatch(first.map((e, i) => row(e, i))), { transactions: 4, ledgerEntries: 8, wallets: 3, partitionsCreated: 0 });
  assert.equal(paths(), 'transactions ledger_entries', 'a new batch takes the fast path');

  // a reclaimed batch: two rows already committed (one of them twice), three new ones; m_a/USD and
  // m_b/EUR get new lines, m_d/JPY is a new wallet, m_c/GBP has nothing new
  const fresh = [event('m_a', 'USD', 'payin', 123), event('m_b', 'EUR', 'refund', 45), event('m_d', 'JPY', 'payin', 9_999)];
  const overlapping = [first[1]!, fresh[0]!, first[2]!, fresh[1]!, first[1]!, fresh[2]!].map((e, i) => row(e, 10 + i));
  assert.deepEqual(await writer.writeBatch(overlapping), { transactions: 3, ledgerEntries: 6, wallets: 3, partitionsCreated: 0 });
  assert.equal(paths(), 'transactions rill_staging rill_ledger_staging', 'the fast path fails on the old rows, the merge writes the rest');
  const all = [...first, ...fresh];
  const s = await state();
  assert.deepEqual(
    s.tx.map((t) => t.id),
    all.map((e) => e.id).sort(),
  );
  assert.equal(s.lines.length, all.length * 2);
  assert.deepEqual(
    s.lines.map((l) => `${l.tx_id}/${l.account}`),
    all.flatMap((e) => [`${e.id}/external`, `${e.id}/wallet`]).sort(),
  );
  assert.deepEqual(s.wallets, expectedWallets(all));
  assert.deepEqual(
    s.wallets,
    new Map([
      ['m_a/USD', 8_623n],
      ['m_b/EUR', 655n],
      ['m_c/GBP', 300n],
      ['m_d/JPY', 9_999n],
    ]),
  );
  assert.deepEqual(s.wallets, s.walletsFromLedger, 'wallets equal the sum of their ledger lines');

  // the whole thing once more, reversed: nothing new, nothing moves
  assert.deepEqual(await writer.writeBatch([...overlapping, ...first.map((e) => row(e))].reverse()), {
    transactions: 0,
    ledgerEntries: 0,
    wallets: 0,
    partitionsCreated: 0,
  });
  assert.equal(paths(), 'transactions rill_staging rill_ledger_staging');
  assert.deepEqual(await state(), s);

  // and the writer's connection is still good for the fast path
  const later = event('m_a', 'USD', 'payin', 1);
  assert.deepEqual(await writer.writeBatch([row(later)]), { transactions: 1, ledgerEntries: 2, wallets: 1, partitionsCreated: 0 });
  assert.equal(paths(), 'transactions ledger_entries');
  assert.equal((await state()).wallets.get('m_a/USD'), 8_624n);
});

test('a batch with the same id twice keeps the first copy and takes the fast path', async () => {
  await reset();
  const a = event('m_x', 'USD', 'payin', 5_000);
  const b = event('m_x', 'USD', 'payout', 2_000);
  // a second copy of `a` that differs (it must not win, nor add its lines)
  const a2: TransactionEvent = {
    ...a,
    amount: 7_777,
    ledger: [
      { account: 'wallet', amount: 7_777 },
      { account: 'external', amount: -7_777 },
    ],
  };
  const batch = [row(a, 0), row(b, 1), row(a2, 2), row(a, 3)];
  assert.deepEqual(await writer.writeBatch(batch), { transactions: 2, ledgerEntries: 4, wallets: 1, partitionsCreated: 0 });
  assert.equal(paths(), 'transactions ledger_entries', 'the batch does not conflict with itself');
  const s = await state();
  assert.deepEqual(s.tx, [
    { id: a.id, amount: '5000' },
    { id: b.id, amount: '2000' },
  ]);
  assert.deepEqual(s.lines, [
    { tx_id: a.id, account: 'external', amount: '-5000' },
    { tx_id: a.id, account: 'wallet', amount: '5000' },
    { tx_id: b.id, account: 'external', amount: '2000' },
    { tx_id: b.id, account: 'wallet', amount: '-2000' },
  ]);
  assert.deepEqual(s.wallets, new Map([['m_x/USD', 3_000n]]));
  assert.deepEqual(s.wallets, s.walletsFromLedger);

  // the same batch redelivered: the merge path, nothing changes
  assert.deepEqual(await writer.writeBatch(batch), { transactions: 0, ledgerEntries: 0, wallets: 0, partitionsCreated: 0 });
  assert.equal(paths(), 'transactions rill_staging rill_ledger_staging');
  assert.deepEqual(await state(), s);
});

test('an overlapping batch whose new rows need a missing partition: merge, create the day, merge again', async () => {
  await reset();
  const old = [event('m_p', 'EUR', 'payin', 400), event('m_p', 'EUR', 'payin', 600)];
  assert.equal(await writer.write(old.map((e, i) => row(e, i))), 2);
  sent.length = 0;
  // ingested on a day with no partition; which the COPY reports first, the committed rows (23505:
  // merge, which then fails 23514) or the day (23514), is up to COPY's buffering: either way the
  // day is created and the second try merges
  const day = Date.UTC(2001, 1, 3, 12);
  const lost = [event('m_p', 'EUR', 'payin', 50, { ingested_at: day }), event('m_q', 'EUR', 'payout', 20, { ingested_at: day })];
  const res = await writer.writeBatch([...old, ...lost].map((e, i) => row(e, i)));
  assert.deepEqual(res, { transactions: 2, ledgerEntries: 4, wallets: 2, partitionsCreated: 1 });
  assert.match(paths(), /^transactions (rill_staging )?transactions rill_staging rill_ledger_staging$/);
  const s = await state();
  assert.equal(s.tx.length, 4);
  assert.equal(s.lines.length, 8);
  assert.deepEqual(s.wallets, expectedWallets([...old, ...lost]));
  assert.deepEqual(
    s.wallets,
    new Map([
      ['m_p/EUR', 1_050n],
      ['m_q/EUR', -20n],
    ]),
  );
  assert.deepEqual(s.wallets, s.walletsFromLedger);
  const { rows } = await inst.pool.query<{ n: string }>(`SELECT count(*) AS n FROM transactions_p20010203 WHERE id = ANY($1)`, [lost.map((e) => e.id)]);
  assert.equal(Number(rows[0]!.n), 2);
});
