// The payments pipeline (validate → risk → ledger → sink) under a steady load while its worker is
// SIGKILLed mid-batch five times, restarted each time under the other consumer id (a, b, a, …):
// three kills by the crash points (processed but not settled; settled; committed but not acked)
// and two from outside while batches flow. Then a last worker drains it. Every accepted
// transaction ends in exactly one place with its expected outcome, no topic holds a result twice,
// and money is conserved (wallets = ledger entries = the ledger stage's state = the oracle).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { waitFor } from '../helpers/wait.ts';
import { EventAppender } from '../../ingest/append/index.ts';
import { combine, drainAndJudge, formatVerdict, heldBy, pendingByConsumer, waiting } from './support/consistency.ts';
import { moneyVerdict } from './support/money.ts';
import { appenderPoster, PaymentsWorkload, paymentsTopology } from './support/payments.ts';
import type { Poster } from './support/payments.ts';
import { cleanupInstance, exitWithin, Fleet } from './support/processes.ts';

const MERCHANTS = 40;
const MAX_PER_MERCHANT = 1_000; // a cap: the load runs until the fifth kill, then stops
const RATE = 300; // events per second
/**
 * Each kill: which consumer id runs, and how it dies. The stage crash points count settles of the
 * chained validate → risk → ledger task (one per batch of all three stages, core/topology/chains.ts).
 */
const KILLS: { consumer: string; fault?: string }[] = [
  { consumer: 'a', fault: 'stage-before-settle:15' },
  { consumer: 'b', fault: 'sink-after-commit:5' },
  { consumer: 'a' },
  { consumer: 'b', fault: 'stage-after-settle:15' },
  { consumer: 'a' },
];

let inst: TestInstance;
let fleet: Fleet;
let work: PaymentsWorkload | undefined;

before(async () => {
  inst = await createInstance('f-kill5');
});
after(async () => {
  work?.stop();
  await fleet?.killAll();
  await cleanupInstance(inst);
});

async function rowCount(): Promise<number> {
  const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
  return Number(rows[0]!.n);
}

test('a worker SIGKILLed mid-batch five times under load: exactly once, money conserved', async (t) => {
  const started = performance.now();
  const { path, topology } = paymentsTopology();
  const ctx = { ...inst, topology };
  fleet = new Fleet({ ...inst.vars, RILL_TOPOLOGY: path });
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const post: Poster = appenderPoster(appender);
  work = new PaymentsWorkload(MERCHANTS, MAX_PER_MERCHANT);

  // the seed payins through the pipeline first (a clean start and stop)
  await work.seed(post);
  const seeder = fleet.worker('a');
  await waitFor('the seeds drained', async () => (await waiting(ctx)) === 0, 60_000, 50);
  assert.equal(await seeder.kill('SIGTERM'), 0, fleet.tails());

  // the load, and the five kills while it runs
  const load = work.run(post, { perSecond: RATE });
  const log: string[] = [];
  for (const [i, k] of KILLS.entries()) {
    const rowsBefore = await rowCount();
    const w = fleet.worker(k.consumer, k.fault ? { RILL_FAULT: k.fault } : {});
    if (!k.fault) {
      await waitFor(`worker ${k.consumer} to commit rows`, async () => (await rowCount()) >= rowsBefore + 300, 60_000, 20);
      w.child.kill('SIGKILL');
    }
    const how = await exitWithin(w, 60_000);
    assert.equal(how, 'SIGKILL', `kill ${i + 1} (${k.fault ?? 'from outside'}): ${fleet.tails()}`);
    const held = heldBy(await pendingByConsumer(ctx), k.consumer);
    log.push(
      `kill ${i + 1}: worker ${k.consumer} by ${k.fault ?? 'SIGKILL from outside'} after ${(await rowCount()) - rowsBefore} new rows, ` +
        `${held} entries left pending under its id, ${work.acceptedCount} accepted so far`,
    );
  }
  work.stop();
  await load;
  const last = fleet.worker('b');

  const { verdict, drained } = await drainAndJudge(ctx, work.accepted, { timeoutMs: 120_000, uniqueIn: ['transactions', 'validated', 'scored', 'settled'] });
  const money = await moneyVerdict({ ...inst, partitions: 8 }, work.money);
  const all = combine(verdict, money);
  for (const line of log) t.diagnostic(line);
  t.diagnostic(formatVerdict(all, `${work.acceptedCount} accepted`));
  assert.ok(drained && all.ok, `${formatVerdict(all)}\n${fleet.tails()}`);
  const want = work.expectedCounts();
  assert.equal(verdict.counts.tableRows, want.rows);
  assert.equal(verdict.counts.deadLetterEntries, 0, 'nothing dead-lettered');
  assert.equal(work.refused, want.refused, 'every orphan refund refused at ingest');
  assert.equal(await last.kill('SIGTERM'), 0, fleet.tails());
  t.diagnostic(
    `rows ${want.rows} (${want.succeeded} succeeded, ${want.failed} failed), refused at ingest ${want.refused}; ${Math.round((performance.now() - started) / 1000)} s`,
  );
});
