// A worker frozen with SIGSTOP past the visibility timeout while it holds a processed, unsettled
// batch; a second worker takes its work over and finishes it; then the first is continued and
// settles its stale batch: the settle script's XACK gate must make that a no-op. Twice, on the
// payments pipeline with an extra `ordering: none` stage after the ledger:
//   1. in the ledger stage (ordering: key), right after the real ledger applied the batch's wallet
//      effects: the second worker gets the partitions when the frozen one's leases expire, takes
//      over its pending entries and applies them again (the ledger's decision records make that
//      idempotent);
//   2. in the `audit` stage (ordering: none, visibility_timeout 1 s): the second worker reclaims
//      the entries with XAUTOCLAIM once they have been idle for 1 s.
// The frozen worker stops itself (a fixture processor, on a marked event) so the freeze is exactly
// mid-batch; the test continues it only after every entry it held has been settled by the other.
// Then: every transaction exactly once, no topic holding any result twice, money conserved.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { waitFor } from '../helpers/wait.ts';
import { EventAppender } from '../../ingest/append/index.ts';
import { chainOf, planChains } from '../../core/topology/chains.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { combine, drainAndJudge, formatVerdict, readersOf, waiting } from './support/consistency.ts';
import { moneyVerdict } from './support/money.ts';
import { appenderPoster, PaymentsWorkload, paymentsTopology } from './support/payments.ts';
import type { Poster } from './support/payments.ts';
import { cleanupInstance, Fleet } from './support/processes.ts';

const STOP_ONCE = new URL('./support/processors/stop-once.ts', import.meta.url).pathname;
const MERCHANTS = 30;
const PER_MERCHANT = 150;
const RATE = 200;

let inst: TestInstance;
let fleet: Fleet;
let work: PaymentsWorkload | undefined;

before(async () => {
  inst = await createInstance('f-sigstop');
});
after(async () => {
  work?.stop();
  await fleet?.killAll();
  await cleanupInstance(inst);
});

/** Every entry a consumer id holds unacknowledged: "<stream> <group>" → entry ids. */
async function heldEntries(topology: Topology, consumerId: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const [topic, readers] of readersOf(topology)) {
    for (let p = 0; p < 8; p++) {
      for (const lane of topology.priorities) {
        const stream = inst.keys.lane(topic, p, lane.name);
        for (const group of readers) {
          const pel = (await inst.redis.xpending(stream, group, '-', '+', 100_000).catch(() => [])) as [string, string][];
          const ids = pel.filter(([, c]) => c.includes(`-${consumerId}-`)).map(([id]) => id);
          if (ids.length) out.set(`${stream} ${group}`, ids);
        }
      }
    }
  }
  return out;
}

/** How many of `held` are still pending in their groups (under anyone). */
async function stillPending(held: Map<string, string[]>): Promise<number> {
  let n = 0;
  for (const [k, ids] of held) {
    const [stream, group] = k.split(' ') as [string, string];
    const pel = new Set(((await inst.redis.xpending(stream, group, '-', '+', 100_000)) as [string][]).map(([id]) => id));
    n += ids.filter((id) => pel.has(id)).length;
  }
  return n;
}

const isStopped = (pid: number) =>
  readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /s, '')
    .startsWith('T');

test('a worker SIGSTOPped past the visibility timeout, its work reclaimed, then continued: no double effect', async (t) => {
  const started = performance.now();
  const { path, topology } = paymentsTopology({
    'topics.audited': { partitions: 8 },
    'stages.validate.lease_ttl': '2s',
    'stages.risk.lease_ttl': '2s',
    'stages.ledger.lease_ttl': '2s',
    'stages.ledger.processor': STOP_ONCE,
    'stages.ledger.config': { marker: 'ledger', ledger: { low_balance: { default: 10_000 }, alerts_topic: 'alerts' } },
    'stages.audit': {
      input: 'settled',
      processor: STOP_ONCE,
      output: 'audited',
      ordering: 'none',
      batch: 100,
      visibility_timeout: '1s',
      dead_letter: {},
      config: { marker: 'audit' },
    },
    'sinks.postgres.input': 'audited',
    'sinks.postgres.visibility_timeout': '1s',
  });
  const ctx = { ...inst, topology };
  fleet = new Fleet({ ...inst.vars, RILL_TOPOLOGY: path });
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const post: Poster = appenderPoster(appender);
  const w = (work = new PaymentsWorkload(MERCHANTS, PER_MERCHANT));
  const workers = { a: fleet.worker('a'), b: fleet.worker('b') };

  await w.seed(post);
  await waitFor('the seeds drained', async () => (await waiting(ctx)) === 0, 60_000, 50);
  const load = w.run(post, { perSecond: RATE });

  const log: string[] = [];
  for (const [i, marker] of (['ledger', 'audit'] as const).entries()) {
    await waitFor('the load under way', () => w.acceptedCount >= MERCHANTS + (i + 1) * 1_000, 60_000, 10);
    const step = {
      body: { type: 'payin' as const, merchant_id: w.merchants[i]!, amount: 4_321, currency: w.currencyOf(w.merchants[i]!), metadata: { stop: marker } },
      expect: { place: 'row' as const, status: 'succeeded' as const },
      succeeds: true,
    };
    const marked = await post(step.body, `marked-${marker}`);
    assert.ok(marked, 'the marked payin accepted');
    w.record(step, marked);

    const pid = Number(await waitFor(`a worker to stop itself in the ${marker} stage`, () => inst.redis.get(inst.keys.global('stopped', marker)), 60_000, 20));
    const [frozenId, frozen] = Object.entries(workers).find(([, p]) => p.child.pid === pid)!;
    await waitFor(`worker ${frozenId} stopped`, () => isStopped(pid), 5_000, 10);
    const stoppedAt = performance.now();
    const held = await heldEntries(topology, frozenId);
    // chained (validate → risk → ledger), the ledger's batch is pending in the chain's group (its first stage's)
    const group = chainOf(planChains(topology), marker)!.stages[0]!;
    const inStage = [...held].filter(([k]) => k.endsWith(` ${group}`)).reduce((n, [, ids]) => n + ids.length, 0);
    const total = [...held.values()].reduce((n, ids) => n + ids.length, 0);
    assert.ok(inStage > 0, `the frozen worker holds its ${marker} batch`);

    // the other worker takes everything over and settles it; only then is the frozen one continued
    await waitFor('every entry the frozen worker held settled by the other', async () => (await stillPending(held)) === 0, 60_000, 50);
    await waitFor(
      'the marked transaction in Postgres',
      async () => (await inst.pool.query('SELECT 1 FROM transactions WHERE id = $1', [marked])).rowCount === 1,
      60_000,
      50,
    );
    const reclaimedMs = performance.now() - stoppedAt;
    frozen.child.kill('SIGCONT');
    log.push(
      `${marker}: worker ${frozenId} froze holding ${total} entries (${inStage} in its ${marker} batch); the other settled all of them ${Math.round(reclaimedMs)} ms later; then SIGCONT`,
    );
  }
  await load;

  const { verdict, drained } = await drainAndJudge(ctx, w.accepted, {
    timeoutMs: 120_000,
    uniqueIn: ['transactions', 'validated', 'scored', 'settled', 'audited'],
  });
  const money = await moneyVerdict({ ...inst, partitions: 8 }, w.money);
  const all = combine(verdict, money);
  for (const line of log) t.diagnostic(line);
  t.diagnostic(formatVerdict(all, `${w.acceptedCount} accepted`));
  assert.ok(drained && all.ok, `${formatVerdict(all)}\n${fleet.tails()}`);
  const want = w.expectedCounts();
  assert.equal(verdict.counts.tableRows, want.rows);
  assert.equal(verdict.counts.deadLetterEntries, 0, 'nothing dead-lettered');
  assert.equal(w.refused, want.refused, 'every orphan refund refused at ingest');
  for (const p of Object.values(workers)) assert.equal(await p.kill('SIGTERM'), 0, fleet.tails());
  t.diagnostic(`rows ${want.rows}, refused at ingest ${want.refused}; ${Math.round((performance.now() - started) / 1000)} s`);
});
