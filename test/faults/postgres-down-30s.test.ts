// Postgres down for 30 s under load: the scenario runs its own Postgres cluster (initdb in a temp
// dir, migrated first), the worker writes to it, and it is stopped the hard way (`pg_ctl stop -m
// immediate`: every backend killed, crash recovery at the next start) while the payments workload
// keeps arriving. The stages go on; the sink holds its batch and retries until Postgres is back,
// then catches up. Nothing is dead-lettered for the outage, every row arrives exactly once, and
// money is conserved.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { waitFor } from '../helpers/wait.ts';
import { EventAppender } from '../../ingest/append/index.ts';
import { combine, drainAndJudge, formatVerdict, waiting } from './support/consistency.ts';
import { moneyVerdict } from './support/money.ts';
import { OwnPostgres } from './support/own-postgres.ts';
import { appenderPoster, PaymentsWorkload, paymentsTopology } from './support/payments.ts';
import type { Poster } from './support/payments.ts';
import { cleanupInstance, Fleet } from './support/processes.ts';

const OUTAGE_MS = 30_000; // deliberate: the outage is the scenario
const MERCHANTS = 30;
const PER_MERCHANT = 200;
const RATE = 150; // events per second: the load lasts about 40 s, the outage in its middle

let pg: OwnPostgres;
let inst: TestInstance;
let fleet: Fleet;
let work: PaymentsWorkload | undefined;

before(async () => {
  pg = await OwnPostgres.start();
  inst = await createInstance('f-pgdown', { DATABASE_URL: pg.url });
  inst.pool.on('error', () => undefined); // idle connections die with the server; the pool reconnects
});
after(async () => {
  work?.stop();
  await fleet?.killAll();
  await cleanupInstance(inst);
  await pg?.destroy();
});

async function rowCount(): Promise<number> {
  const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
  return Number(rows[0]!.n);
}

test('Postgres down 30 s under load: the sink waits and retries, nothing dead-lettered, every row once', async (t) => {
  const started = performance.now();
  const { path, topology } = paymentsTopology();
  const ctx = { ...inst, topology };
  fleet = new Fleet({ ...inst.vars, RILL_TOPOLOGY: path });
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const post: Poster = appenderPoster(appender);
  work = new PaymentsWorkload(MERCHANTS, PER_MERCHANT);
  const worker = fleet.worker('w1');

  await work.seed(post);
  await waitFor('the seeds drained', async () => (await waiting(ctx)) === 0, 60_000, 50);
  const load = work.run(post, { perSecond: RATE });

  await waitFor('rows flowing', async () => (await rowCount()) >= 1_000, 60_000, 50);
  const rowsAtStop = await rowCount();
  await pg.stopImmediate();
  const stoppedAt = performance.now();
  await delay(OUTAGE_MS);
  const waitingAtRestart = await waiting(ctx);
  const deadAtRestart = await deadLetterCount(ctx);
  assert.equal(worker.child.exitCode ?? worker.child.signalCode, null, `the worker survived the outage\n${fleet.tails()}`);
  await pg.startAgain();
  const downMs = performance.now() - stoppedAt;
  await load;

  const { verdict, drained } = await drainAndJudge(ctx, work.accepted, { timeoutMs: 120_000, uniqueIn: ['transactions', 'validated', 'scored', 'settled'] });
  const money = await moneyVerdict({ ...inst, partitions: 8 }, work.money);
  const all = combine(verdict, money);
  t.diagnostic(
    `Postgres down ${Math.round(downMs)} ms after ${rowsAtStop} rows; at restart ${waitingAtRestart} entries waited in the pipeline, ${deadAtRestart} dead letters`,
  );
  t.diagnostic(formatVerdict(all, `${work.acceptedCount} accepted`));
  assert.ok(waitingAtRestart > 0, 'the sink held back while Postgres was down');
  assert.ok(drained && all.ok, `${formatVerdict(all)}\n${fleet.tails()}`);
  const want = work.expectedCounts();
  assert.equal(verdict.counts.tableRows, want.rows);
  assert.equal(deadAtRestart, 0, 'nothing dead-lettered for the outage');
  assert.equal(verdict.counts.deadLetterEntries, 0, 'nothing dead-lettered (the orphan refunds were refused at ingest)');
  assert.equal(work.refused, want.refused, 'every orphan refund refused at ingest (422)');
  assert.ok(want.refused > 0);
  assert.equal(await worker.kill('SIGTERM'), 0, fleet.tails());
  t.diagnostic(`rows ${want.rows}, refused at ingest ${want.refused}; ${Math.round((performance.now() - started) / 1000)} s`);
});

async function deadLetterCount(ctx: { redis: TestInstance['redis']; keys: TestInstance['keys'] }): Promise<number> {
  let n = 0;
  for (const stage of ['validate', 'risk', 'ledger', 'postgres']) for (let p = 0; p < 8; p++) n += await ctx.redis.xlen(ctx.keys.deadLetter(stage, p));
  return n;
}
