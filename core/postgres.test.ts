import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPool, IDLE_IN_TRANSACTION_MS } from './postgres.ts';
import { waitFor } from './wait.ts';

const env = { databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test', pgSchema: 'public' };

test('a transaction left idle (a frozen process) is ended by Postgres (its row locks go with it)', async () => {
  const pool = createPool(env, { max: 2, name: 'rill-test-idle-tx' });
  const other = createPool(env, { max: 1, name: 'rill-test-idle-tx-watch' });
  try {
    const { rows } = await pool.query<{ v: string }>("SELECT current_setting('idle_in_transaction_session_timeout') AS v");
    assert.equal(rows[0]!.v, `${IDLE_IN_TRANSACTION_MS / 1000}s`);
    const frozen = await pool.connect();
    frozen.on('error', () => undefined); // the server ends this session: expected
    const pid = (
      await frozen.query<{ pid: number }>('BEGIN; SELECT pg_backend_pid() AS pid').then((r) => (r as unknown as { rows: { pid: number }[] }[])[1]!.rows[0]!)
    ).pid;
    await waitFor(
      'Postgres to end the idle transaction',
      async () => (await other.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount === 0,
      IDLE_IN_TRANSACTION_MS + 15_000,
      200,
    );
    frozen.release(true);
  } finally {
    await pool.end();
    await other.end();
  }
});
