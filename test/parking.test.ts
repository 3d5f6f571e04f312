// One merchant waits alone: in the payments pipeline (validate → risk → ledger, all ordering: key),
// a merchant whose refunds wait for a payin that does not settle shares its partition with a good
// merchant. The good merchant's payins and refunds all settle; the stuck ones are parked
// (never dead-lettered) and end failed payin_not_settled after await_payin; a refund posted before
// its payin settled is released when it settles; a refund of a failed payin fails payin_failed; an
// orphan refund is refused at the edge. Worker A is SIGKILLed while events are parked, worker B
// (another consumer id) takes the leases over and resumes the same parked queues: every merchant's
// rows keep their order, every count is exact.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import type { RillProcess } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { deadLetters, outstanding } from './helpers/pipeline.ts';
import { SHIPPED_TOPOLOGY, WITHOUT_WEBHOOKS, writeTopology } from './helpers/topology-file.ts';
import { UnknownPayinError } from '../core/errors.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { partitionOf } from '../core/partition.ts';
import { newTxId } from '../core/tx-id.ts';
import { PAYIN_ACCEPTED, payinBucket } from '../core/payins.ts';
import type { TransactionBody } from '../ingest/validation.ts';

let inst: TestInstance;
/** Every worker a test starts: killed at the end whatever happened (a failed wait must not hang the run). */
const workers: RillProcess[] = [];
const worker = (consumer: string, vars: Record<string, string>): RillProcess => {
  const w = spawnRill(['worker', '--consumer', consumer], vars);
  workers.push(w);
  return w;
};
before(async () => {
  inst = await createInstance('parking');
});
after(async () => {
  await Promise.all(workers.map((w) => w.kill('SIGKILL')));
  await inst?.cleanup();
});

/** `n` merchant ids that all fall in partition `p` of 8. */
function merchantsIn(p: number, n: number, tag: string): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (partitionOf(`m_${tag}_${i}`, 8) === p) out.push(`m_${tag}_${i}`);
  return out;
}

const body = (type: TransactionBody['type'], merchant: string, amount: number, extra: Partial<TransactionBody> = {}): TransactionBody =>
  ({ type, merchant_id: merchant, amount, currency: 'EUR', ...extra }) as TransactionBody;

test('a stuck merchant waits alone: its neighbour settles, parked events survive a SIGKILL and a lease handover, order holds', async () => {
  const { path, topology } = writeTopology(
    {
      'refunds.await_payin': '25s',
      'stages.validate.lease_ttl': '2s',
      'stages.risk.lease_ttl': '2s',
      'stages.risk.config.features': false, // the velocity rules alone: refunds must reach the ledger, not review
      'stages.ledger.lease_ttl': '2s',
      'stages.ledger.visibility_timeout': '2s',
      ...WITHOUT_WEBHOOKS,
    },
    SHIPPED_TOPOLOGY,
  );
  const vars = { ...inst.vars, RILL_TOPOLOGY: path };
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const [good, bad] = merchantsIn(3, 2, 'park');
  const id = async (b: TransactionBody) => (await appender.append(b)).id;

  // the bad merchant's payin is accepted but never settles (its entry is lost upstream): its
  // refunds wait for it, parked, until await_payin
  const ghost = newTxId();
  await inst.redis.hset(inst.keys.payins(3, bad!, payinBucket(ghost, topology.refunds.hot).name), ghost, PAYIN_ACCEPTED);

  // orphan refused at the edge: nothing appended
  const before = await inst.redis.xlen(inst.keys.lane('transactions', 3, 'critical'));
  await assert.rejects(appender.append(body('refund', good!, 10, { reference: newTxId() })), UnknownPayinError);
  assert.equal(await inst.redis.xlen(inst.keys.lane('transactions', 3, 'critical')), before);

  const goodPayins: string[] = [];
  for (let i = 0; i < 30; i++) goodPayins.push(await id(body('payin', good!, 1_000 + i, { reference: `o-${i}` })));
  // refunds posted before the payins settled: they overtake them (critical lane) and wait
  const goodRefunds: string[] = [];
  for (let i = 0; i < 30; i++) goodRefunds.push(await id(body('refund', good!, 100 + i, { reference: goodPayins[i] })));
  const badRefunds: string[] = [];
  for (let i = 0; i < 20; i++) badRefunds.push(await id(body('refund', bad!, 10 + i, { reference: ghost })));
  // a payin that fails validation, and its refund (posted while it was still accepted)
  const zar = await id(body('payin', good!, 500, { currency: 'ZAR' }));
  const zarRefund = await id(body('refund', good!, 100, { reference: zar }));

  // worker A is SIGKILLed once the bad refunds are parked in the ledger
  const a = worker('a', vars);
  const parkedNow = async () => Number((await inst.redis.get(inst.keys.parked('ledger', 3, 'count'))) ?? 0);
  await waitFor('the bad refunds to be parked', async () => (await parkedNow()) > 0, 60_000, 20).catch((e) => {
    throw new Error(`${e.message}: ${a.output().slice(-3000)}`);
  });
  const parkedAtKill = await parkedNow();
  assert.ok(parkedAtKill > 0, 'events were parked when worker A was killed');
  assert.equal(await a.kill('SIGKILL'), 'SIGKILL', a.output());
  const b = worker('b', vars);
  const total = 30 + 30 + 20 + 2;
  await waitFor(
    'every transaction to be a row',
    async () => {
      const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
      return Number(rows[0]!.n) >= total && (await outstanding(inst.redis, inst.keys, topology)) === 0;
    },
    150_000,
    100,
  );
  assert.equal(await b.kill('SIGTERM'), 0, b.output());

  const { rows } = await inst.pool.query<{ id: string; type: string; merchant_id: string; status: string; failure_code: string | null; stream_id: string }>(
    'SELECT id, type, merchant_id, status, failure_code, stream_id FROM transactions',
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  assert.equal(byId.size, rows.length, 'no row twice');
  const all = [...goodPayins, ...goodRefunds, ...badRefunds, zar, zarRefund];
  assert.equal(rows.length, all.length, `every accepted transaction is a row (parked at the kill: ${parkedAtKill})`);
  const status = (ids: string[]) => ids.map((i) => `${byId.get(i)?.status}${byId.get(i)?.failure_code ? `:${byId.get(i)!.failure_code}` : ''}`);
  assert.deepEqual(
    status(goodPayins),
    goodPayins.map(() => 'succeeded'),
  );
  assert.deepEqual(
    status(goodRefunds),
    goodRefunds.map(() => 'succeeded'),
    'refunds before their payins: released when each settled',
  );
  assert.deepEqual(
    status(badRefunds),
    badRefunds.map(() => 'failed:payin_not_settled'),
  );
  assert.deepEqual(status([zar, zarRefund]), ['failed:currency_not_allowed', 'failed:payin_failed']);
  for (const stage of ['validate', 'risk', 'ledger'])
    assert.equal((await deadLetters(inst.redis, inst.keys, stage, 8)).length, 0, `${stage}: nothing dead-lettered`);

  // per-merchant order within each lane: rows in settled-stream order are in posting order
  const streamOrder = (ids: string[]) => [...ids].sort((x, y) => cmpStreamId(byId.get(x)!.stream_id, byId.get(y)!.stream_id));
  for (const [name, ids] of [
    ['good payins', goodPayins],
    ['good refunds', goodRefunds],
    ['bad refunds', badRefunds],
  ] as const) {
    assert.deepEqual(streamOrder([...ids]), [...ids], `${name} in order`);
  }
  assert.equal(Number((await inst.redis.get(inst.keys.parked('ledger', 3, 'count'))) ?? 0), 0, 'nothing left parked');
});

test('past a cap the lane waits (nothing lost, order kept) and drains once the waits end', async () => {
  const { path, topology } = writeTopology(
    {
      'refunds.await_payin': '2s',
      'stages.ledger.parking': { max_per_key: 3, max_per_partition: 5 },
      'stages.risk.config.features': false,
      ...WITHOUT_WEBHOOKS,
    },
    SHIPPED_TOPOLOGY,
  );
  const vars = { ...inst.vars, RILL_TOPOLOGY: path };
  await inst.pool.query('TRUNCATE transactions, ledger_entries');
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const [m1, m2, m3] = merchantsIn(5, 3, 'cap');
  // m3's payin settles first: its refunds then depend only on the lane getting past the cap
  const payin = (await appender.append(body('payin', m3!, 1_000))).id;
  const w = worker('cap', vars);
  await waitFor('the payin in Postgres', async () => (await inst.pool.query('SELECT 1 FROM transactions WHERE id = $1', [payin])).rowCount === 1, 60_000, 50);
  const ghost = newTxId();
  const stuck: string[] = [];
  for (const m of [m1!, m2!]) {
    await inst.redis.hset(inst.keys.payins(5, m, payinBucket(ghost, topology.refunds.hot).name), ghost, PAYIN_ACCEPTED);
    for (let i = 0; i < 6; i++) stuck.push((await appender.append(body('refund', m, 5 + i, { reference: ghost }))).id);
  }
  const refunds: string[] = [];
  for (let i = 0; i < 5; i++) refunds.push((await appender.append(body('refund', m3!, 10 + i, { reference: payin }))).id);

  let most = 0;
  const total = stuck.length + 1 + refunds.length;
  await waitFor(
    'every transaction to be a row',
    async () => {
      most = Math.max(most, Number((await inst.redis.get(inst.keys.parked('ledger', 5, 'count'))) ?? 0));
      const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
      return Number(rows[0]!.n) >= total && (await outstanding(inst.redis, inst.keys, topology)) === 0;
    },
    150_000,
    50,
  );
  assert.equal(await w.kill('SIGTERM'), 0, w.output());
  assert.ok(most <= 5, `parked at most max_per_partition (saw ${most})`);
  // waiting at a cap is not a delivery: nothing behind it reaches the poison guard
  assert.equal((await deadLetters(inst.redis, inst.keys, 'ledger', 8)).length, 0, 'nothing dead-lettered');

  const { rows } = await inst.pool.query<{ id: string; status: string; failure_code: string | null; stream_id: string }>(
    'SELECT id, status, failure_code, stream_id FROM transactions',
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  assert.equal(rows.length, total);
  assert.deepEqual(
    stuck.map((i) => byId.get(i)?.failure_code),
    stuck.map(() => 'payin_not_settled'),
  );
  assert.deepEqual(
    [payin, ...refunds].map((i) => byId.get(i)?.status),
    [payin, ...refunds].map(() => 'succeeded'),
    [payin, ...refunds].map((i) => byId.get(i)?.failure_code).join(' '),
  );
  for (const ids of [stuck.slice(0, 6), stuck.slice(6), refunds]) {
    assert.deepEqual(
      [...ids].sort((x, y) => cmpStreamId(byId.get(x)!.stream_id, byId.get(y)!.stream_id)),
      ids,
      'each merchant in order',
    );
  }
});

function cmpStreamId(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}
