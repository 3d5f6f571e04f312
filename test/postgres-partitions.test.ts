// `transactions` is partitioned by UTC day (range of ingested_at) and within a day by hash of
// merchant_id. Migration 002 moves the 001 rows over and creates yesterday..today+7; the
// maintenance leader keeps partitions_ahead days ready (two instances at once create each
// partition exactly once) and detaches (never drops) partitions older than the retention; the sink
// creates a missing day itself and retries once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { readEnv } from '../core/config.ts';
import { createPool, ident } from '../core/postgres.ts';
import type { PgPool } from '../core/postgres.ts';
import { connectRedis } from '../core/redis.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import type { Registry } from '../core/metrics.ts';
import { MaintenanceSchema } from '../core/topology/schema.ts';
import { migrate, readMigrations } from '../sinks/postgres/migrate.ts';
import { startMaintenance } from '../sinks/postgres/maintenance.ts';
import type { Maintenance } from '../sinks/postgres/maintenance.ts';
import { BatchWriter } from '../sinks/postgres/batch-writer.ts';
import type { TransactionEvent } from '../core/event.ts';

const DAY = 86_400_000;
let inst: TestInstance;
const closers: (() => Promise<void> | void)[] = [];

before(async () => {
  inst = await createInstance('pgparts');
});
after(async () => {
  for (const close of closers.reverse()) await close();
  await inst?.cleanup();
});

/** YYYYMMDD of the UTC day `offset` days from the database's today. */
async function dayName(pool: PgPool, offset: number): Promise<string> {
  const { rows } = await pool.query<{ d: string }>(`SELECT to_char((now() AT TIME ZONE 'UTC')::date + $1::int, 'YYYYMMDD') AS d`, [offset]);
  return rows[0]!.d;
}

/** Daily partitions attached to transactions, each with its hash sub-partitions' bounds. */
async function partitions(pool: PgPool): Promise<Map<string, string[]>> {
  const { rows } = await pool.query<{ day: string; sub: string | null; bound: string | null }>(
    `SELECT d.relname AS day, s.relname AS sub, pg_get_expr(s.relpartbound, s.oid) AS bound
     FROM pg_inherits di JOIN pg_class d ON d.oid = di.inhrelid
     LEFT JOIN pg_inherits si ON si.inhparent = d.oid LEFT JOIN pg_class s ON s.oid = si.inhrelid
     WHERE di.inhparent = 'transactions'::regclass
     ORDER BY d.relname, s.relname`,
  );
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const subs = out.get(r.day) ?? [];
    if (r.sub) subs.push(`${r.sub} ${r.bound}`);
    out.set(r.day, subs);
  }
  return out;
}

function hashSubs(day: string): string[] {
  return [0, 1, 2, 3].map((i) => `transactions_p${day}_h${i} FOR VALUES WITH (modulus 4, remainder ${i})`);
}

function metric(registries: Registry[], name: string, labels: Record<string, string> = {}): Promise<number> {
  return Promise.all(registries.map((r) => r.getSingleMetric(name)?.get())).then((all) => {
    let sum = 0;
    for (const m of all) for (const v of m?.values ?? []) if (Object.entries(labels).every(([k, x]) => v.labels[k] === x)) sum += v.value;
    return sum;
  });
}

/** A maintenance instance with its own pool and Redis connection, like another worker process. */
function instance(config: Record<string, unknown>): { m: Maintenance; registry: Registry } {
  const pool = createPool(inst.env, { max: 2, name: 'rill-test-maint' });
  const redis = connectRedis(inst.env) as Redis;
  const registry = createRegistry({ defaults: false });
  const m = startMaintenance({
    pool,
    redis,
    keys: inst.keys,
    registry,
    config: MaintenanceSchema.parse(config),
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

function event(id: string, ingestedAt: number, merchant = 'm_1'): TransactionEvent {
  return { id, merchant_id: merchant, type: 'payin', amount: 100, currency: 'USD', ingested_at: ingestedAt, status: 'succeeded' };
}

test('after migrate: daily partitions for yesterday..today+7, each with 4 hash sub-partitions', async () => {
  const parts = await partitions(inst.pool);
  const expected = await Promise.all(Array.from({ length: 9 }, (_, i) => dayName(inst.pool, i - 1)));
  assert.deepEqual(
    [...parts.keys()],
    expected.map((d) => `transactions_p${d}`),
  );
  for (const d of expected) assert.deepEqual(parts.get(`transactions_p${d}`), hashSubs(d));
  // bounds are whole UTC days
  const { rows } = await inst.pool.query<{ ok: boolean }>(
    `SELECT pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES FROM (%L) TO (%L)', d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC') AS ok
     FROM pg_class c, (SELECT (now() AT TIME ZONE 'UTC')::date AS d) t WHERE c.oid = to_regclass('transactions_p' || to_char(t.d, 'YYYYMMDD'))`,
  );
  assert.deepEqual(rows, [{ ok: true }]);
  // the primary key carries the partition keys
  const { rows: pk } = await inst.pool.query<{ def: string }>(
    `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conname = 'transactions_pkey' AND conrelid = 'transactions'::regclass`,
  );
  assert.equal(pk[0]!.def, 'PRIMARY KEY (id, ingested_at, merchant_id)');
});

test('two maintenance instances at once: each missing partition created exactly once, both succeed', async () => {
  const a = instance({ partitions_ahead: 10, interval: '1h', refresh_interval: '1h' });
  const b = instance({ partitions_ahead: 10, interval: '1h', refresh_interval: '1h' });
  const [ra, rb] = await Promise.all([a.m.runOnce(), b.m.runOnce()]);
  assert.deepEqual(ra.errors, []);
  assert.deepEqual(rb.errors, []);
  assert.equal(ra.partitionsCreated + rb.partitionsCreated, 3, 'today+8..today+10');
  assert.equal(await metric([a.registry, b.registry], 'rill_partitions_created_total'), 3);
  const parts = await partitions(inst.pool);
  const expected = await Promise.all(Array.from({ length: 12 }, (_, i) => dayName(inst.pool, i - 1)));
  assert.deepEqual(
    [...parts.keys()],
    expected.map((d) => `transactions_p${d}`),
  );
  for (const d of expected) assert.deepEqual(parts.get(`transactions_p${d}`), hashSubs(d));

  // again, many times at once: nothing more to create, nobody fails
  const again = await Promise.all([a.m.runOnce(), b.m.runOnce(), a.m.runOnce(), b.m.runOnce()]);
  for (const r of again) assert.deepEqual(r.errors, []);
  assert.equal(
    again.reduce((s, r) => s + r.partitionsCreated, 0),
    0,
  );
  assert.equal(await metric([a.registry, b.registry], 'rill_partitions_created_total'), 3);
});

test('rill_ensure_partitions called by many sessions at once creates each day once', async () => {
  const pools = Array.from({ length: 4 }, () => createPool(inst.env, { max: 1, name: 'rill-test-ensure' }));
  try {
    const created = await Promise.all(
      pools.map((p) =>
        p.query<{ n: number }>(`SELECT rill_ensure_partitions((now() AT TIME ZONE 'UTC')::date + 20, (now() AT TIME ZONE 'UTC')::date + 24) AS n`),
      ),
    );
    assert.equal(
      created.reduce((s, r) => s + r.rows[0]!.n, 0),
      5,
    );
  } finally {
    await Promise.all(pools.map((p) => p.end()));
  }
  // pinned to its schema: a session with another search_path still creates them here
  const other = new (await import('pg')).default.Client({ connectionString: inst.env.databaseUrl });
  await other.connect();
  try {
    const { rows } = await other.query<{ n: number }>(
      `SELECT ${ident(inst.env.pgSchema)}.rill_ensure_partitions((now() AT TIME ZONE 'UTC')::date + 30, (now() AT TIME ZONE 'UTC')::date + 30) AS n`,
    );
    assert.equal(rows[0]!.n, 1);
  } finally {
    await other.end();
  }
  const parts = await partitions(inst.pool);
  for (const off of [20, 21, 22, 23, 24, 30]) {
    const d = await dayName(inst.pool, off);
    assert.deepEqual(parts.get(`transactions_p${d}`), hashSubs(d));
  }
});

test('the writer creates a missing day itself and retries once', async () => {
  const writer = new BatchWriter(inst.env, 'rill-test-parts');
  closers.push(() => writer.close());
  const far = Date.now() + 40 * DAY;
  const past = Date.now() - 40 * DAY;
  const rows = [event(`tx_far_${randomBytes(4).toString('hex')}`, far), event(`tx_past_${randomBytes(4).toString('hex')}`, past, 'm_2')].map((e, i) => ({
    event: e,
    streamId: `0-${i}`,
    attempts: 1,
  }));
  const res = await writer.writeBatch(rows);
  assert.equal(res.transactions, 2);
  assert.equal(res.partitionsCreated, 2);
  const { rows: found } = await inst.pool.query<{ id: string; part: string }>(
    `SELECT id, tableoid::regclass::text AS part FROM transactions WHERE id = ANY($1) ORDER BY id`,
    [rows.map((r) => r.event.id)],
  );
  assert.equal(found.length, 2);
  for (const f of found) assert.match(f.part, /^transactions_p\d{8}_h[0-3]$/);
  // the day exists now: a redelivery neither fails nor creates anything
  assert.deepEqual(await writer.writeBatch(rows), { transactions: 0, ledgerEntries: 0, wallets: 0, partitionsCreated: 0 });
});

test('retention detaches (does not drop) an old partition; its rows leave transactions', async () => {
  const oldDay = await dayName(inst.pool, -60);
  const { rows: made } = await inst.pool.query<{ n: number }>(
    `SELECT rill_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 60, (now() AT TIME ZONE 'UTC')::date - 60) AS n`,
  );
  assert.equal(made[0]!.n, 1);
  const writer = new BatchWriter(inst.env, 'rill-test-retention');
  closers.push(() => writer.close());
  const oldId = `tx_old_${randomBytes(4).toString('hex')}`;
  const newId = `tx_new_${randomBytes(4).toString('hex')}`;
  assert.equal(
    await writer.write([event(oldId, Date.now() - 60 * DAY), event(newId, Date.now())].map((e, i) => ({ event: e, streamId: `0-${i}`, attempts: 1 }))),
    2,
  );
  const visible = async (id: string) => (await inst.pool.query('SELECT 1 FROM transactions WHERE id = $1', [id])).rowCount === 1;
  assert.ok(await visible(oldId));

  const { m, registry } = instance({ partitions_ahead: 7, retention: '30d', interval: '1h', refresh_interval: '1h' });
  const report = await m.runOnce();
  assert.deepEqual(report.errors, []);
  assert.ok(report.leader);
  // the 60-day-old partition and the 40-day-old one the writer made; nothing newer than 30 days
  const past40 = await dayName(inst.pool, -40);
  assert.deepEqual(report.detached, [`transactions_p${oldDay}`, `transactions_p${past40}`]);
  assert.equal(await metric([registry], 'rill_partitions_detached_total'), 2);
  assert.equal(await visible(oldId), false, 'the old row is no longer visible through transactions');
  assert.ok(await visible(newId));
  // detached, not dropped: the table (and its row) is still there for archiving
  const { rows: kept } = await inst.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${ident(`transactions_p${oldDay}`)} WHERE id = $1`, [oldId]);
  assert.equal(Number(kept[0]!.n), 1);
  const parts = await partitions(inst.pool);
  assert.equal(parts.has(`transactions_p${oldDay}`), false);
  assert.ok(parts.has(`transactions_p${await dayName(inst.pool, -1)}`), 'yesterday stays');
  // the next pass has nothing to detach
  assert.deepEqual((await m.runOnce()).detached, []);
  // a write into a detached day fails loudly instead of hiding the row
  await assert.rejects(
    writer.write([{ event: event(`tx_late_${randomBytes(4).toString('hex')}`, Date.now() - 60 * DAY), streamId: '0-9', attempts: 1 }]),
    /not attached/,
  );
});

test('the timer runs passes on its own', async () => {
  const pool = createPool(inst.env, { max: 1, name: 'rill-test-timer' });
  const redis = connectRedis(inst.env) as Redis;
  const registry = createRegistry({ defaults: false });
  const m = startMaintenance({
    pool,
    redis,
    keys: inst.keys,
    registry,
    config: MaintenanceSchema.parse({ partitions_ahead: 45, interval: '50ms', refresh_interval: '1h' }),
    logger: createLogger('silent'),
  });
  try {
    await waitFor('the timer to create today+45', async () => (await partitions(inst.pool)).has(`transactions_p${await dayName(inst.pool, 45)}`), 10_000);
  } finally {
    await m.stop();
    await pool.end();
    redis.disconnect();
  }
});

test('migration 002 moves the rows of a 001 table over and drops it', async () => {
  const schema = `${inst.env.pgSchema}_v1`;
  const env = readEnv({ ...process.env, ...inst.vars, RILL_PG_SCHEMA: schema });
  const pool = createPool(env, { max: 2, name: 'rill-test-migrate' });
  try {
    assert.deepEqual(
      await migrate(
        pool,
        schema,
        readMigrations().filter((m) => m.version === 1),
      ),
      ['001_init'],
    );
    await pool.query(
      `INSERT INTO transactions (id, merchant_id, type, amount, currency, status, ingested_at, stream_id, metadata)
       SELECT 'tx_' || i, 'm_' || (i % 7), 'payin', 100 + i, 'USD', CASE WHEN i % 5 = 0 THEN 'failed' ELSE 'succeeded' END,
              now() - (i % 30) * interval '1 day', '0-' || i, '{"k":"v"}'
       FROM generate_series(1, 300) i`,
    );
    assert.deepEqual(
      await migrate(pool, schema),
      readMigrations()
        .filter((m) => m.version > 1)
        .map((m) => m.name),
      'every later migration applies on top of 001',
    );
    const { rows } = await pool.query<{ n: string; s: string; days: string }>(
      `SELECT count(*) AS n, sum(amount)::text AS s, count(DISTINCT (ingested_at AT TIME ZONE 'UTC')::date) AS days FROM transactions`,
    );
    assert.equal(Number(rows[0]!.n), 300);
    assert.equal(BigInt(rows[0]!.s), BigInt(Array.from({ length: 300 }, (_, i) => 101 + i).reduce((a, b) => a + b, 0)));
    assert.equal(Number(rows[0]!.days), 30);
    assert.equal((await pool.query(`SELECT to_regclass('transactions_v1') AS t`)).rows[0].t, null, 'the old table is gone');
    const { rows: kind } = await pool.query<{ k: string }>(`SELECT relkind::text AS k FROM pg_class WHERE oid = 'transactions'::regclass`);
    assert.equal(kind[0]!.k, 'p');
    // 003 added failure_code to the partitioned table: the moved rows have none
    const { rows: codes } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions WHERE failure_code IS NULL');
    assert.equal(Number(codes[0]!.n), 300);
    // the view was built from the moved rows
    const { rows: mv } = await pool.query<{ n: string }>('SELECT sum(count)::text AS n FROM merchant_daily_volume');
    assert.equal(Number(mv[0]!.n), 240);
    // applying again is a no-op
    assert.deepEqual(await migrate(pool, schema), []);
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`);
    await pool.end();
  }
});
