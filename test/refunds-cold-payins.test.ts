// Refunds of payins that left Redis (refunds.hot: 2 s), through the real pipeline: ingest's append
// (EventAppender), `rill worker` processes (validate → risk → ledger → Postgres sink). Payins settle
// and one is refunded inside the hot window; once their buckets have expired, refunds and
// chargebacks of them pass ingest and are checked by the ledger against Postgres. Worker A is
// SIGKILLed while the cold refunds are being settled, worker B (another consumer id) finishes.
// Every accepted transaction is one row; refunds that fit go through exactly once (ledger lines,
// Redis and Postgres balances, each payin's refunded sum exact); those that pass their payin across
// the tiers fail refund_exceeds_payin, one of an unknown old payin fails payin_not_found.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import type { RillProcess } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { deadLetters, outstanding } from './helpers/pipeline.ts';
import { SHIPPED_TOPOLOGY, WITHOUT_WEBHOOKS, writeTopology } from './helpers/topology-file.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { UnknownPayinError } from '../core/errors.ts';
import { partitionOf } from '../core/partition.ts';
import { newTxId } from '../core/tx-id.ts';
import { payinBucket } from '../core/payins.ts';
import type { TransactionBody } from '../ingest/validation.ts';

let inst: TestInstance;
const workers: RillProcess[] = [];
before(async () => {
  inst = await createInstance('coldrefunds');
});
after(async () => {
  await Promise.all(workers.map((w) => w.kill('SIGKILL')));
  await inst?.cleanup();
});

const body = (type: TransactionBody['type'], merchant: string, amount: number, reference?: string): TransactionBody =>
  ({ type, merchant_id: merchant, amount, currency: 'EUR', ...(reference ? { reference } : {}) }) as TransactionBody;

test('refunds of payins past the hot window: exactly once through a SIGKILL, over-refunds and unknown payins fail', async (t) => {
  const { path, topology } = writeTopology(
    {
      'refunds.hot': '4s',
      'refunds.await_payin': '10s', // how long a refund of an old payin Postgres does not have waits for it
      'stages.validate.lease_ttl': '2s',
      'stages.risk.lease_ttl': '2s',
      'stages.risk.config.features': false, // velocity rules alone: the refunds reach the ledger
      'stages.ledger.lease_ttl': '2s',
      'stages.ledger.visibility_timeout': '2s',
      'sinks.postgres.visibility_timeout': '2s', // a killed sink's batch comes back at once
      ...WITHOUT_WEBHOOKS,
    },
    SHIPPED_TOPOLOGY,
  );
  const vars = { ...inst.vars, RILL_TOPOLOGY: path };
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const post = async (b: TransactionBody) => (await appender.append(b)).id;
  const m = 'm_cold_refunds';
  const part = partitionOf(m, 8);
  const rows = async () =>
    (
      await inst.pool.query<{ id: string; type: string; status: string; failure_code: string | null }>(
        'SELECT id, type, status, failure_code FROM transactions WHERE merchant_id LIKE $1',
        [`${m}%`],
      )
    ).rows;
  const spawn = (consumer: string) => {
    const w = spawnRill(['worker', '--consumer', consumer], vars);
    workers.push(w);
    return w;
  };

  const a = spawn('a');
  // a refund of an old payin nobody accepted passes ingest (another merchant's: it waits
  // await_payin for that payin to reach Postgres, holding its merchant's later refunds)
  const unknownOld = await post(body('refund', `${m}_2`, 10, newTxId(Date.now() - 60_000)));
  const warmUp = await post(body('payin', `${m}_2`, 10));
  await waitFor('worker A to settle a first payin', async () => (await rows()).some((r) => r.id === warmUp), 60_000, 50).catch((e) => {
    throw new Error(`${e.message}: ${a.output().slice(-3000)}`);
  });
  // four payins of 1,000; the first is refunded 400 inside the hot window (checked in Redis)
  const payins: string[] = [];
  for (let i = 0; i < 4; i++) payins.push(await post(body('payin', m, 1_000)));
  const hotRefund = await post(body('refund', m, 400, payins[0]));
  const firsts = [...payins, hotRefund];
  await waitFor('the payins and the hot refund to be rows', async () => (await rows()).filter((r) => firsts.includes(r.id)).length === 5, 60_000, 50);

  // the payins leave Redis: their buckets expire with the hot window
  const buckets = [...new Set(payins.map((id) => inst.keys.payins(part, m, payinBucket(id, topology.refunds.hot).name)))];
  await waitFor('the payins to leave Redis', async () => (await inst.redis.exists(...buckets)) === 0, 30_000, 50);
  // ingest still refuses a refund of a payin nobody accepted inside the hot window
  await assert.rejects(appender.append(body('refund', m, 10, newTxId())), UnknownPayinError);

  // 40 cold refunds of 10 (10 a payin), posted one by one; worker A is SIGKILLed while it settles them
  const cold: string[] = [];
  const posting = (async () => {
    for (let i = 0; i < 40; i++) {
      cold.push(await post(body('refund', m, 10, payins[i % 4])));
      await new Promise((r) => setTimeout(r, 15));
    }
  })();
  await waitFor('some cold refunds to be rows', async () => (await rows()).filter((r) => cold.includes(r.id)).length >= 8, 60_000, 5);
  assert.equal(await a.kill('SIGKILL'), 'SIGKILL', a.output());
  const coldAtKill = (await rows()).filter((r) => cold.includes(r.id)).length;
  t.diagnostic(`cold refunds settled when worker A was killed: ${coldAtKill} of 40`);
  const b = spawn('b');
  await posting;

  // then what is left of payin 0 (1,000 − 400 − 100 = 500) exactly, then 1 more; a chargeback of all
  // that is left of payin 1 (900), then 1 more; 901 of payin 2 (900 left)
  const fits = [await post(body('refund', m, 500, payins[0])), await post(body('chargeback', m, 900, payins[1]))];
  const over = [await post(body('refund', m, 1, payins[0])), await post(body('refund', m, 1, payins[1])), await post(body('refund', m, 901, payins[2]))];
  const total = 2 + 4 + 1 + 40 + fits.length + over.length;
  await waitFor(
    'every transaction to be a row',
    async () => (await rows()).length >= total && (await outstanding(inst.redis, inst.keys, topology)) === 0,
    90_000,
    100,
  ).catch((e) => {
    throw new Error(`${e.message}: ${b.output().slice(-3000)}`);
  });
  assert.equal(await b.kill('SIGTERM'), 0, b.output());

  const all = await rows();
  const byId = new Map(all.map((r) => [r.id, r]));
  assert.equal(all.length, total, `every accepted transaction is one row (cold refunds settled when A was killed: ${coldAtKill})`);
  assert.equal(byId.size, all.length, 'no row twice');
  const verdict = (id: string) => `${byId.get(id)?.status}${byId.get(id)?.failure_code ? `:${byId.get(id)!.failure_code}` : ''}`;
  const succeeded = [...payins, hotRefund, ...cold, ...fits];
  assert.equal(verdict(warmUp), 'succeeded');
  assert.deepEqual(
    succeeded.map(verdict),
    succeeded.map(() => 'succeeded'),
  );
  assert.deepEqual(over.map(verdict), ['failed:refund_exceeds_payin', 'failed:refund_exceeds_payin', 'failed:refund_exceeds_payin']);
  assert.equal(verdict(unknownOld), 'failed:payin_not_found');
  for (const stage of ['validate', 'risk', 'ledger'])
    assert.equal((await deadLetters(inst.redis, inst.keys, stage, 8)).length, 0, `${stage}: nothing dead-lettered`);

  // money: each payin's refunded sum, two ledger lines per succeeded transaction, balances in both stores
  const refunded = await inst.pool.query<{ payin_id: string; refunded: string }>('SELECT payin_id, refunded::text FROM payin_refunds WHERE merchant_id = $1', [
    m,
  ]);
  assert.deepEqual(Object.fromEntries(refunded.rows.map((r) => [r.payin_id, r.refunded])), {
    [payins[0]!]: '1000',
    [payins[1]!]: '1000',
    [payins[2]!]: '100',
    [payins[3]!]: '100',
  });
  const lines = await inst.pool.query<{ tx_id: string; n: string }>(
    'SELECT tx_id, count(*)::text AS n FROM ledger_entries WHERE merchant_id = $1 GROUP BY tx_id',
    [m],
  );
  assert.deepEqual(
    new Map(lines.rows.map((r) => [r.tx_id, r.n])),
    new Map(succeeded.map((id) => [id, '2'])),
    'two ledger lines for each succeeded transaction, none for a failed one',
  );
  const balance = 4_000 - 2_200;
  const pg = await inst.pool.query<{ balance: string }>('SELECT balance::text FROM wallets WHERE merchant_id = $1', [m]);
  assert.deepEqual(pg.rows, [{ balance: String(balance) }]);
  assert.equal(await inst.redis.hget(inst.keys.partitioned(part, 'wallet', m), 'EUR'), String(balance));
  const written = await inst.pool.query<{ written: string }>('SELECT written::text FROM merchant_refunds WHERE merchant_id = $1', [m]);
  assert.deepEqual(written.rows, [{ written: String(1 + 40 + fits.length) }]);
  assert.equal(await inst.redis.get(inst.keys.partitioned(part, 'refunds', m)), String(1 + 40 + fits.length), 'the ledger counted each refund once');
  // settled: each decision record was shortened to the redelivery horizon by the settle (minutes, not the days it keeps while pending)
  for (const id of succeeded) {
    const ttl = await inst.redis.pttl(inst.keys.partitioned(part, 'ledger', id));
    assert.ok(ttl === -2 || (ttl > 0 && ttl <= 3_600_000), `ledger record of ${id}: ${ttl} ms`);
  }
});
