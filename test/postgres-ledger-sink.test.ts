// The sink's BatchWriter posts the events' ledger lines with their rows, in one transaction:
// ledger_entries get one line per (transaction, account), wallets the sum of the new wallet lines.
// A redelivered batch changes nothing; a batch mixing old and new rows applies only the new ones;
// a failed transaction writes its row and no ledger entries.
import type { PostgresSinkConfig } from '../core/topology/schema.ts';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import { event, expectedWallets, row } from './helpers/ledger-rows.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { deadLetters } from './helpers/pipeline.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { BatchWriter } from '../sinks/postgres/batch-writer.ts';
import { PostgresSink } from '../sinks/postgres/sink.ts';
import type { TransactionType } from '../core/event.ts';
import { connectRedis, defineScripts } from '../core/redis.ts';
import { CORE_SCRIPTS } from '../core/scripts.ts';
import { entryArgs } from '../core/entry.ts';
import { partitionOf } from '../core/partition.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';

let inst: TestInstance;
let writer: BatchWriter;

before(async () => {
  inst = await createInstance('pgledger');
  writer = new BatchWriter(inst.env, 'rill-test-ledger');
});
after(async () => {
  await writer?.close();
  await inst?.cleanup();
});

async function wallets(): Promise<Map<string, bigint>> {
  const { rows } = await inst.pool.query<{ merchant_id: string; currency: string; balance: string }>(
    'SELECT merchant_id, currency, balance::text FROM wallets',
  );
  return new Map(rows.map((r) => [`${r.merchant_id}/${r.currency}`, BigInt(r.balance)]));
}

async function snapshot() {
  const { rows } = await inst.pool.query<{ tx: string; le: string; w: string }>(
    `SELECT (SELECT count(*) FROM transactions)::text AS tx,
            (SELECT count(*) || ':' || coalesce(sum(amount), 0) FROM ledger_entries) AS le,
            (SELECT string_agg(merchant_id || '/' || currency || '=' || balance || '@' || updated_at, ',' ORDER BY merchant_id, currency) FROM wallets) AS w`,
  );
  return rows[0]!;
}

async function reset(): Promise<void> {
  await inst.pool.query('TRUNCATE transactions, ledger_entries, wallets');
}

test('ledger lines land in ledger_entries and wallets; a redelivered batch changes nothing', async () => {
  await reset();
  const events = [
    event('m_a', 'USD', 'payin', 10_000),
    event('m_a', 'USD', 'payin', 2_500),
    event('m_a', 'USD', 'payout', 4_000),
    event('m_a', 'EUR', 'payin', 700),
    event('m_b', 'USD', 'payin', 1_000),
    event('m_b', 'USD', 'refund', 250),
    event('m_c', 'GBP', 'chargeback', 900), // takes the wallet below zero: the ledger stage allowed it
  ];
  const batch = events.map((e, i) => row(e, i));
  const first = await writer.writeBatch(batch);
  assert.deepEqual(first, { transactions: 7, ledgerEntries: 14, wallets: 4, partitionsCreated: 0 });

  assert.deepEqual(await wallets(), expectedWallets(events));
  assert.deepEqual(
    await wallets(),
    new Map([
      ['m_a/USD', 8_500n],
      ['m_a/EUR', 700n],
      ['m_b/USD', 750n],
      ['m_c/GBP', -900n],
    ]),
  );
  const { rows: le } = await inst.pool.query<{ tx_id: string; account: string; merchant_id: string; currency: string; amount: string }>(
    'SELECT tx_id, account, merchant_id, currency, amount::text FROM ledger_entries ORDER BY tx_id, account',
  );
  assert.equal(le.length, 14);
  for (const e of events) {
    const lines = le.filter((l) => l.tx_id === e.id);
    assert.deepEqual(
      lines.map((l) => [l.account, l.merchant_id, l.currency, Number(l.amount)]),
      [...e.ledger!].sort((a, b) => a.account.localeCompare(b.account)).map((l) => [l.account, e.merchant_id, e.currency, l.amount]),
    );
  }
  const { rows: zero } = await inst.pool.query<{ n: string }>(
    'SELECT count(*) AS n FROM (SELECT tx_id FROM ledger_entries GROUP BY tx_id HAVING sum(amount) <> 0) x',
  );
  assert.equal(Number(zero[0]!.n), 0, 'every transaction balances');

  // redelivery (crash after COMMIT, before XACK): the same batch again, and again with the
  // entries' delivery counts raised, changes nothing, not even updated_at
  const before = await snapshot();
  assert.equal(await writer.write(batch), 0);
  assert.deepEqual(await writer.writeBatch(batch.map((r) => ({ ...r, attempts: 2 }))), { transactions: 0, ledgerEntries: 0, wallets: 0, partitionsCreated: 0 });
  assert.deepEqual(await snapshot(), before);
});

test('a batch mixing written and new rows applies only the new ones', async () => {
  await reset();
  const old = [event('m_a', 'USD', 'payin', 5_000), event('m_b', 'EUR', 'payin', 3_000), event('m_a', 'USD', 'payout', 1_000)];
  assert.equal(await writer.write(old.map((e, i) => row(e, i))), 3);
  const fresh = [event('m_a', 'USD', 'payin', 123), event('m_b', 'EUR', 'refund', 45), event('m_d', 'JPY', 'payin', 9_999)];
  // the new batch repeats the old rows (a reclaimed batch overlapping a committed one), one of them twice
  const mixed = [...old, fresh[0]!, old[1]!, fresh[1]!, fresh[2]!].map((e, i) => row(e, 100 + i));
  const res = await writer.writeBatch(mixed);
  assert.deepEqual(res, { transactions: 3, ledgerEntries: 6, wallets: 3, partitionsCreated: 0 });
  assert.deepEqual(await wallets(), expectedWallets([...old, ...fresh]));
  assert.deepEqual(
    await wallets(),
    new Map([
      ['m_a/USD', 4_123n],
      ['m_b/EUR', 2_955n],
      ['m_d/JPY', 9_999n],
    ]),
  );
  const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM ledger_entries');
  assert.equal(Number(rows[0]!.n), 12);
  // a batch of only old rows, in another order: nothing
  assert.deepEqual(await writer.writeBatch([...mixed].reverse()), { transactions: 0, ledgerEntries: 0, wallets: 0, partitionsCreated: 0 });
  assert.deepEqual(await wallets(), expectedWallets([...old, ...fresh]));
});

test('failed transactions write their row and no ledger entries', async () => {
  await reset();
  const ok = event('m_f', 'USD', 'payin', 2_000);
  const failed = event('m_f', 'USD', 'payout', 50_000, { status: 'failed', failure_reason: 'insufficient_funds', ledger: undefined });
  // a failed transaction that (wrongly) carries lines moves no money either
  const failedWithLines = event('m_f', 'USD', 'payout', 70_000, { status: 'failed', failure_reason: 'insufficient_funds' });
  const batch = [ok, failed, failedWithLines].map((e, i) => row(e, i));
  assert.deepEqual(await writer.writeBatch(batch), { transactions: 3, ledgerEntries: 2, wallets: 1, partitionsCreated: 0 });
  const { rows } = await inst.pool.query<{ id: string; status: string; failure_reason: string | null; lines: string }>(
    `SELECT t.id, t.status, t.failure_reason, (SELECT count(*) FROM ledger_entries l WHERE l.tx_id = t.id)::text AS lines
     FROM transactions t ORDER BY t.id`,
  );
  assert.deepEqual(
    rows.map((r) => [r.id, r.status, r.failure_reason, Number(r.lines)]),
    [
      [ok.id, 'succeeded', null, 2],
      [failed.id, 'failed', 'insufficient_funds', 0],
      [failedWithLines.id, 'failed', 'insufficient_funds', 0],
    ],
  );
  assert.deepEqual(await wallets(), new Map([['m_f/USD', 2_000n]]));
  // a batch of only failed transactions: rows, no ledger statement, no wallet change
  const onlyFailed = [event('m_f', 'USD', 'payout', 10, { status: 'failed', ledger: undefined })].map((e) => row(e));
  assert.deepEqual(await writer.writeBatch(onlyFailed), { transactions: 1, ledgerEntries: 0, wallets: 0, partitionsCreated: 0 });
  assert.deepEqual(await wallets(), new Map([['m_f/USD', 2_000n]]));
});

test('concurrent writers with overlapping batches: each line and balance change applied once, no deadlock', async () => {
  await reset();
  const merchants = Array.from({ length: 20 }, (_, i) => `m_${i}`);
  const events = Array.from({ length: 4_000 }, (_, i) =>
    event(merchants[(i * 7) % merchants.length]!, i % 3 ? 'USD' : 'EUR', i % 4 ? 'payin' : 'payout', 1 + (i % 1000)),
  );
  const writers = Array.from({ length: 4 }, (_, i) => new BatchWriter(inst.env, `rill-test-ledger-${i}`));
  try {
    // every writer writes every event (in its own slices and order): like four consumers redelivering
    await Promise.all(
      writers.map(async (w, wi) => {
        const order = wi % 2 ? [...events].reverse() : events;
        for (let i = 0; i < order.length; i += 500) await w.write(order.slice(i, i + 500).map((e, j) => row(e, j)));
      }),
    );
  } finally {
    await Promise.all(writers.map((w) => w.close()));
  }
  const { rows } = await inst.pool.query<{ tx: string; le: string }>(
    'SELECT (SELECT count(*) FROM transactions)::text AS tx, (SELECT count(*) FROM ledger_entries)::text AS le',
  );
  assert.equal(Number(rows[0]!.tx), events.length);
  assert.equal(Number(rows[0]!.le), events.length * 2);
  assert.deepEqual(await wallets(), expectedWallets(events));
  const { rows: rec } = await inst.pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM wallets w FULL JOIN
       (SELECT merchant_id, currency, sum(amount) AS s FROM ledger_entries WHERE account = 'wallet' GROUP BY 1, 2) l USING (merchant_id, currency)
     WHERE w.balance IS DISTINCT FROM l.s`,
  );
  assert.equal(Number(rec[0]!.n), 0, 'wallets reconcile with the ledger');
});

test('the sink posts ledgers from the stream and dead-letters one that can never be posted', async () => {
  await reset();
  const { topology } = writeTopology({ 'sinks.postgres.batch_rows': 50, 'sinks.postgres.max_wait': '20ms' });
  const partitions = topology.topics.validated!.partitions;
  const good = Array.from({ length: 120 }, (_, i) => event(`m_s${i % 5}`, 'USD', i % 3 ? 'payin' : 'payout', 10 + i));
  const unbalanced = event('m_s1', 'USD', 'payin', 500, {
    ledger: [
      { account: 'wallet', amount: 500 },
      { account: 'external', amount: -400 },
    ],
  });
  const twice = event('m_s2', 'USD', 'payin', 500, {
    ledger: [
      { account: 'wallet', amount: 500 },
      { account: 'wallet', amount: -500 },
    ],
  });
  const pipe = inst.redis.pipeline();
  for (const e of [...good.slice(0, 60), unbalanced, ...good.slice(60), twice]) {
    pipe.xadd(inst.keys.lane('validated', partitionOf(e.merchant_id, partitions), 'normal'), '*', ...entryArgs({ txId: e.id, event: JSON.stringify(e) }));
  }
  await pipe.exec();
  const redis = connectRedis(inst.env) as typeof inst.redis;
  defineScripts(redis, CORE_SCRIPTS);
  const sink = new PostgresSink({
    name: 'postgres',
    config: topology.sinks.postgres as PostgresSinkConfig,
    topology,
    keys: inst.keys,
    redis,
    writer: new BatchWriter(inst.env, 'rill-test-sink'),
    consumer: 'c1',
    registry: createRegistry({ defaults: false }),
    logger: createLogger('silent'),
  });
  await sink.start();
  try {
    await waitFor(
      'the good rows',
      async () => {
        const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
        return Number(rows[0]!.n) >= good.length;
      },
      30_000,
    );
    await waitFor('two dead letters', async () => (await deadLetters(inst.redis, inst.keys, 'postgres', partitions)).length >= 2, 10_000);
  } finally {
    await sink.stop();
    redis.disconnect();
  }
  const dead = await deadLetters(inst.redis, inst.keys, 'postgres', partitions);
  assert.equal(dead.length, 2);
  const text = dead.map((d) => [...d.values()].join(' ')).join('\n');
  assert.match(text, /sum to 100, not 0/);
  assert.match(text, /a second wallet line/);
  const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions WHERE id = ANY($1)', [[unbalanced.id, twice.id]]);
  assert.equal(Number(rows[0]!.n), 0);
  assert.deepEqual(await wallets(), expectedWallets(good));
});

test('throughput: 5,000-row batches with 2 ledger lines each (diagnostic)', async (t) => {
  await reset();
  const merchants = Array.from({ length: 50 }, (_, i) => `m_${String(i).padStart(3, '0')}`);
  const currencies = ['USD', 'EUR', 'GBP'];
  const types: TransactionType[] = ['payin', 'payout', 'refund', 'chargeback'];
  const mk = (i: number, ledger: boolean) => {
    const e = event(merchants[i % 50]!, currencies[i % 3]!, types[i % 4]!, 100 + ((i * 7919) % 100_000), {
      reference: `ref-${i}`,
      metadata: { order: String(i) },
      risk_score: i % 100,
    });
    if (!ledger) delete e.ledger;
    return row(e, i);
  };
  const BATCHES = 6;
  const SIZE = 5_000;
  const measure = async (ledger: boolean) => {
    const batches = Array.from({ length: BATCHES }, (_, b) => Array.from({ length: SIZE }, (_, i) => mk(b * SIZE + i, ledger)));
    await writer.write(batches[0]!); // warm-up (plans, caches)
    const started = performance.now();
    let n = 0;
    for (const b of batches.slice(1)) n += await writer.write(b);
    const ms = performance.now() - started;
    assert.equal(n, (BATCHES - 1) * SIZE);
    return Math.round(n / (ms / 1000));
  };
  const withLedger = await measure(true);
  const rowsOnly = await measure(false);
  t.diagnostic(`new writer, ${SIZE}-row batches with 2 ledger lines each: ${withLedger} rows/s (${withLedger * 2} ledger lines/s)`);
  t.diagnostic(`new writer, ${SIZE}-row batches without ledger lines: ${rowsOnly} rows/s`);
  const { rows } = await inst.pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM wallets w FULL JOIN
       (SELECT merchant_id, currency, sum(amount) AS s FROM ledger_entries WHERE account = 'wallet' GROUP BY 1, 2) l USING (merchant_id, currency)
     WHERE w.balance IS DISTINCT FROM l.s`,
  );
  assert.equal(Number(rows[0]!.n), 0, 'wallets reconcile with the ledger');
});
