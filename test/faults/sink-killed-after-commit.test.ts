// RILL_FAULT=sink-after-commit:N on the payments topology: the sink process dies by SIGKILL right
// after a batch's COMMIT, before its XACK. Its pending entries are then that committed batch and
// the next one, read while it was written (uncommitted); a restart under the same consumer id reads them again first (own pending), and a third
// run under another id reclaims the second committed-but-unacked batch (XAUTOCLAIM). Each
// redelivered batch is committed again and changes nothing: its rows, ledger entries and wallet
// moves are already there. The stages run in their own worker throughout.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { waitFor } from '../helpers/wait.ts';
import { EventAppender } from '../../ingest/append/index.ts';
import type { Keys } from '../../core/keys.ts';
import { combine, drainAndJudge, formatVerdict, heldBy, pendingByConsumer, waiting } from './support/consistency.ts';
import { moneyVerdict } from './support/money.ts';
import { appenderPoster, PaymentsWorkload, paymentsTopology } from './support/payments.ts';
import type { Poster } from './support/payments.ts';
import { cleanupInstance, exitWithin, Fleet, freePort, scrape } from './support/processes.ts';

let inst: TestInstance;
let fleet: Fleet;
let work: PaymentsWorkload | undefined;

before(async () => {
  inst = await createInstance('f-sinkcommit');
});
after(async () => {
  work?.stop();
  await fleet?.killAll();
  await cleanupInstance(inst);
});

/** The sink group's pending entries held by one consumer id: entry → tx id. */
async function sinkPel(redis: Redis, keys: Keys, consumerId: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let p = 0; p < 8; p++) {
    for (const lane of ['critical', 'high', 'normal', 'low']) {
      const stream = keys.lane('settled', p, lane);
      const pel = (await redis.xpending(stream, 'postgres', '-', '+', 100_000)) as [string, string, number, number][];
      for (const [id, consumer] of pel) {
        if (!consumer.includes(`-${consumerId}-`)) continue;
        const [entry] = (await redis.xrange(stream, id, id)) as [string, string[]][];
        out.set(`${stream}/${id}`, entry![1][entry![1].indexOf('tx') + 1]!);
      }
    }
  }
  return out;
}

async function withRows(pool: TestInstance['pool'], txs: Iterable<string>): Promise<number> {
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions WHERE id = ANY($1)', [[...txs]]);
  return Number(rows[0]!.n);
}

test('the sink killed after COMMIT, before XACK: the batch comes again and nothing applies twice', async (t) => {
  const started = performance.now();
  const { path, topology } = paymentsTopology();
  const ctx = { ...inst, topology };
  fleet = new Fleet({ ...inst.vars, RILL_TOPOLOGY: path });
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const post: Poster = appenderPoster(appender);
  work = new PaymentsWorkload(40, 150);

  const stages = fleet.worker('stages', {}, ['--stages', Object.keys(topology.stages).join(',')]);
  await work.seed(post);
  const seedSink = fleet.spawn('sink seed', ['sink', '--consumer', 'seed']);
  await waitFor('the seeds drained', async () => (await waiting(ctx)) === 0, 60_000, 50);
  assert.equal(await seedSink.kill('SIGTERM'), 0, fleet.tails());
  await work.run(post);

  // 1. the third COMMIT is followed by SIGKILL: what stays pending is exactly that batch, all in Postgres
  const first = fleet.spawn('sink k1 (fault)', ['sink', '--consumer', 'k1'], { RILL_FAULT: 'sink-after-commit:3' });
  assert.equal(await exitWithin(first, 60_000), 'SIGKILL', fleet.tails());
  const p1 = await sinkPel(inst.redis, inst.keys, 'k1');
  const c1 = await withRows(inst.pool, p1.values());
  assert.ok(c1 > 0, 'the killed sink left its committed batch pending');
  assert.ok(c1 <= p1.size);

  // 2. the same consumer id again: its own pending entries first; it dies after its fourth COMMIT
  const second = fleet.spawn('sink k1 (again, fault)', ['sink', '--consumer', 'k1'], { RILL_FAULT: 'sink-after-commit:4' });
  assert.equal(await exitWithin(second, 60_000), 'SIGKILL', fleet.tails());
  const p2 = await sinkPel(inst.redis, inst.keys, 'k1');
  const stillThere = [...p1.keys()].filter((e) => p2.has(e));
  assert.deepEqual(stillThere, [], 'the first committed batch was redelivered to the restarted sink, committed again and acknowledged');
  const c2 = await withRows(inst.pool, p2.values());
  assert.ok(c2 > 0, 'the second killed batch was committed too');

  // 3. another consumer id reclaims the second batch after the visibility timeout (XAUTOCLAIM)
  const metricsPort = await freePort();
  const third = fleet.spawn('sink k2', ['sink', '--consumer', 'k2'], { METRICS_PORT: String(metricsPort) });
  const { verdict, drained } = await drainAndJudge(ctx, work.accepted, { timeoutMs: 90_000, uniqueIn: ['transactions', 'validated', 'scored', 'settled'] });
  assert.equal(heldBy(await pendingByConsumer(ctx), 'k1'), 0, 'nothing left under k1');
  // rows flushed by the third run minus rows it inserted = the rows it saw again = the second batch
  const flushed = await scrape(metricsPort, 'rill_sink_batch_rows_sum');
  const inserted = await scrape(metricsPort, 'rill_sink_rows_total', 'sink="postgres"');
  const money = await moneyVerdict({ ...inst, partitions: 8 }, work.money);
  const all = combine(verdict, money);
  t.diagnostic(
    `kill 1: ${c1} committed entries left unacknowledged (${p1.size - c1} more read, not written); kill 2: ${c2} (${p2.size - c2}); the third sink flushed ${flushed} rows, ${inserted} of them new`,
  );
  t.diagnostic(formatVerdict(all, `${work.acceptedCount} accepted`));
  assert.ok(drained && all.ok, `${formatVerdict(all)}\n${fleet.tails()}`);
  assert.equal(flushed - inserted, c2, 'the reclaimed committed batch was written again and inserted nothing');
  const want = work.expectedCounts();
  assert.equal(verdict.counts.tableRows, want.rows);
  assert.equal(verdict.counts.deadLetterEntries, 0, 'nothing dead-lettered');
  assert.equal(work.refused, want.refused, 'every orphan refund refused at ingest');
  assert.equal(await third.kill('SIGTERM'), 0, fleet.tails());
  assert.equal(await stages.kill('SIGTERM'), 0, fleet.tails());
  t.diagnostic(`rows ${want.rows}, refused at ingest ${want.refused}; ${Math.round((performance.now() - started) / 1000)} s`);
});
