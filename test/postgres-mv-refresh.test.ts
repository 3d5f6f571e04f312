// merchant_daily_volume is refreshed CONCURRENTLY by one leader, once per refresh_interval across
// all instances (the last refresh time lives in Redis): two instances passing at once refresh once,
// and once more only after the interval has passed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { createPool } from '../core/postgres.ts';
import { connectRedis } from '../core/redis.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import type { Registry } from '../core/metrics.ts';
import { MaintenanceSchema } from '../core/topology/schema.ts';
import { startMaintenance } from '../sinks/postgres/maintenance.ts';
import type { Maintenance, MaintenanceReport } from '../sinks/postgres/maintenance.ts';
import { BatchWriter } from '../sinks/postgres/batch-writer.ts';
import type { SinkRow } from '../sinks/postgres/rows.ts';
import type { TransactionEvent, TransactionType } from '../core/event.ts';

let inst: TestInstance;
let writer: BatchWriter;
const closers: (() => Promise<void> | void)[] = [];

before(async () => {
  inst = await createInstance('pgmv');
  writer = new BatchWriter(inst.env, 'rill-test-mv');
});
after(async () => {
  for (const close of closers.reverse()) await close();
  await writer?.close();
  await inst?.cleanup();
});

function instance(refreshInterval: string): { m: Maintenance; registry: Registry } {
  const pool = createPool(inst.env, { max: 2, name: 'rill-test-mv' });
  const redis = connectRedis(inst.env) as Redis;
  const registry = createRegistry({ defaults: false });
  const m = startMaintenance({
    pool,
    redis,
    keys: inst.keys,
    registry,
    config: MaintenanceSchema.parse({ partitions_ahead: 7, interval: '1h', refresh_interval: refreshInterval }),
    logger: createLogger('silent'),
    schedule: false,
  });
  closers.push(async () => {
    await m.stop();
    await pool.end();
    redis.disconnect();
  });
  return { m, registry };
}

async function refreshes(registries: Registry[]): Promise<number> {
  let sum = 0;
  for (const r of registries) for (const v of (await r.getSingleMetric('rill_mv_refreshes_total')?.get())?.values ?? []) sum += v.value;
  return sum;
}

let n = 0;
async function writeTransactions(count: number, over: Partial<TransactionEvent> = {}): Promise<void> {
  const types: TransactionType[] = ['payin', 'payout', 'refund', 'chargeback'];
  const rows: SinkRow[] = Array.from({ length: count }, (_, i) => ({
    event: {
      id: `tx_mv_${++n}_${randomBytes(4).toString('hex')}`,
      merchant_id: `m_${i % 3}`,
      type: types[i % 4]!,
      amount: 100 + i,
      currency: i % 2 ? 'USD' : 'EUR',
      ingested_at: Date.now(),
      status: 'succeeded',
      ...over,
    },
    streamId: `0-${i}`,
    attempts: 1,
  }));
  assert.equal(await writer.write(rows), count);
}

/** The view's totals against the table's, over succeeded transactions. */
async function viewMatchesTable(): Promise<{ view: string; table: string }> {
  const { rows } = await inst.pool.query<{ view: string; table: string }>(
    `SELECT (SELECT coalesce(sum(count), 0) || '/' || coalesce(sum(amount), 0) || '/' || count(*) FROM merchant_daily_volume) AS view,
            (SELECT count(*) || '/' || coalesce(sum(amount), 0) || '/' || count(DISTINCT (merchant_id, (ingested_at AT TIME ZONE 'UTC')::date, type, currency))
             FROM transactions WHERE status = 'succeeded') AS table`,
  );
  return rows[0]!;
}

function refreshedIn(reports: MaintenanceReport[]): number {
  for (const r of reports) assert.deepEqual(r.errors, []);
  return reports.filter((r) => r.refreshed).length;
}

test('two instances, a long refresh_interval: exactly one refresh, and the view shows the rows', async () => {
  await writeTransactions(200);
  await writeTransactions(20, { status: 'failed', failure_reason: 'risk' });
  const a = instance('1h');
  const b = instance('1h');
  const reports = await Promise.all([a.m.runOnce(), b.m.runOnce()]);
  assert.equal(refreshedIn(reports), 1);
  assert.equal(await refreshes([a.registry, b.registry]), 1);
  const { view, table } = await viewMatchesTable();
  assert.equal(view, table);
  assert.match(view, /^200\//, 'succeeded transactions only');
  // more passes, by either, in any order: the interval has not passed, no refresh
  await writeTransactions(10);
  assert.equal(refreshedIn(await Promise.all([a.m.runOnce(), b.m.runOnce(), a.m.runOnce(), b.m.runOnce()])), 0);
  assert.equal(await refreshes([a.registry, b.registry]), 1);
  assert.match((await viewMatchesTable()).view, /^200\//, 'not refreshed yet');
});

test('a short refresh_interval: one more refresh once it has passed, one per interval', async () => {
  const a = instance('300ms');
  const b = instance('300ms');
  const both = [a.registry, b.registry];
  await writeTransactions(30);
  // instances that just started: they refresh when 300 ms have passed since the last refresh (the
  // previous test's, by other instances), and exactly one of each pair of passes does
  // (waitFor retries on a throw: collect the reports, check them after)
  const pairs: MaintenanceReport[][] = [];
  await waitFor(
    'the next refresh',
    async () => {
      pairs.push(await Promise.all([a.m.runOnce(), b.m.runOnce()]));
      return (await refreshes(both)) >= 1;
    },
    10_000,
    20,
  );
  assert.deepEqual(
    pairs.map(refreshedIn).filter((x) => x > 0),
    [1],
    'one of two concurrent passes refreshed, once',
  );
  assert.equal(await refreshes(both), 1);
  const { view, table } = await viewMatchesTable();
  assert.equal(view, table);
  assert.match(view, /^240\//);
  // right after it, nothing is due
  const t0 = Date.now();
  const immediate = refreshedIn(await Promise.all([a.m.runOnce(), b.m.runOnce()]));
  if (Date.now() - t0 < 250) assert.equal(immediate, 0);
  // and again after the interval: one more
  await writeTransactions(5);
  const before = await refreshes(both);
  pairs.length = 0;
  await waitFor(
    'one more refresh',
    async () => {
      pairs.push(await Promise.all([a.m.runOnce(), b.m.runOnce()]));
      return (await refreshes(both)) > before;
    },
    10_000,
    20,
  );
  assert.deepEqual(
    pairs.map(refreshedIn).filter((x) => x > 0),
    [1],
  );
  assert.equal(await refreshes(both), before + 1);
  assert.match((await viewMatchesTable()).view, /^245\//);
  // over ~1.2 s of passes every 20 ms by both, at most one refresh per 300 ms
  const from = await refreshes(both);
  const t1 = Date.now();
  while (Date.now() - t1 < 1_200) assert.ok(refreshedIn(await Promise.all([a.m.runOnce(), b.m.runOnce()])) <= 1);
  const made = (await refreshes(both)) - from;
  const elapsed = Date.now() - t1;
  assert.ok(made >= 2 && made <= Math.floor(elapsed / 300) + 1, `${made} refreshes in ${elapsed} ms`);
});
