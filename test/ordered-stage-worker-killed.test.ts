// `ordering: key` stages across three worker processes: partitions are leased out evenly (3/3/2
// of 8), one worker is SIGKILLed under load, its partitions move to the survivors within the lease
// TTL (4/4), and every merchant's events are applied exactly once, in the order they were accepted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import type { RillProcess } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { merchantIds } from './helpers/transactions.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { chainOf, planChains } from '../core/topology/chains.ts';

const SEQUENCE_CHECK = new URL('./fixtures/processors/sequence-check.ts', import.meta.url).pathname;
const MERCHANTS = 40;
const PER_MERCHANT = 150;
let inst: TestInstance;
const workers: RillProcess[] = [];

before(async () => {
  inst = await createInstance('ordered');
});
after(async () => {
  await Promise.all(workers.map((w) => w.kill('SIGKILL')));
  await inst?.cleanup();
});

/** Who holds each partition's lease of a stage: member name → partitions. */
async function leaseOwners(stage: string): Promise<Map<string, number[]>> {
  const owners = new Map<string, number[]>();
  for (let p = 0; p < 8; p++) {
    const id = await inst.redis.get(`mutex:${inst.keys.lease(stage, p)}`);
    if (!id) continue;
    const member = id.slice(0, id.lastIndexOf(':'));
    owners.set(member, [...(owners.get(member) ?? []), p]);
  }
  return owners;
}

const shares = (owners: Map<string, number[]>) => [...owners.values()].map((ps) => ps.length).sort();

test('three workers, one SIGKILLed: nothing lost, nothing twice, per-merchant order kept', async (t) => {
  const { path, topology } = writeTopology({
    'topics.checked': { partitions: 8 },
    'stages.validate.ordering': 'key',
    'stages.validate.lease_ttl': '2s',
    'stages.validate.batch': 100,
    'stages.apply': {
      input: 'validated',
      processor: SEQUENCE_CHECK,
      output: 'checked',
      ordering: 'key',
      batch: 100,
      lease_ttl: '2s',
      visibility_timeout: '2s',
      dead_letter: {},
    },
    'sinks.postgres.input': 'checked',
    'sinks.postgres.visibility_timeout': '2s',
  });
  const vars = { ...inst.vars, RILL_TOPOLOGY: path };
  // leases are held per task: chained (the default) validate → apply is one task, leased as validate
  const tasks = [...new Set(['validate', 'apply'].map((s) => chainOf(planChains(topology), s)!.stages[0]!))];
  const spread = async () => (await Promise.all(tasks.map(leaseOwners))).map((o) => JSON.stringify(shares(o)));
  for (const name of ['w1', 'w2', 'w3']) workers.push(spawnRill(['worker', '--consumer', name], vars));
  await waitFor(
    'leases spread 2/3/3 over three workers',
    async () => {
      return (await spread()).every((s) => s === '[2,3,3]');
    },
    30_000,
    100,
  );

  // each merchant posts its events one after another; merchants post concurrently
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(MERCHANTS);
  let accepted = 0;
  const posting = Promise.all(
    merchants.map(async (m) => {
      for (let seq = 1; seq <= PER_MERCHANT; seq++) {
        await appender.append({ type: 'payin', merchant_id: m, amount: seq, currency: 'USD', metadata: { seq: String(seq) } });
        accepted++;
      }
    }),
  );
  await waitFor('a third of the events in', () => accepted >= (MERCHANTS * PER_MERCHANT) / 3, 60_000, 5);
  const victim = workers[1]!;
  assert.equal(await victim.kill('SIGKILL'), 'SIGKILL');
  const killedAt = Date.now();
  await posting;

  await waitFor(
    'the dead worker’s partitions moved to the survivors (4/4)',
    async () => {
      return (await spread()).every((s) => s === '[4,4]');
    },
    30_000,
    100,
  );
  const movedMs = Date.now() - killedAt;
  await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 120_000, 100);

  const violations = await inst.redis.lrange(inst.keys.global('seq-violations'), 0, -1);
  assert.deepEqual(violations, [], 'every merchant’s events applied in acceptance order');
  for (const m of merchants) assert.equal(await inst.redis.get(inst.keys.global('seq', m)), String(PER_MERCHANT), `${m} applied every event`);
  const { rows } = await inst.pool.query<{ n: string; d: string; merchants: string }>(
    'SELECT count(*) AS n, count(DISTINCT id) AS d, count(DISTINCT merchant_id) AS merchants FROM transactions',
  );
  assert.equal(Number(rows[0]!.n), MERCHANTS * PER_MERCHANT);
  assert.equal(Number(rows[0]!.d), MERCHANTS * PER_MERCHANT);
  assert.equal(Number(rows[0]!.merchants), MERCHANTS);
  const { rows: perMerchant } = await inst.pool.query<{ sum: string }>('SELECT DISTINCT sum(amount)::text AS sum FROM transactions GROUP BY merchant_id');
  assert.deepEqual(
    perMerchant.map((r) => Number(r.sum)),
    [(PER_MERCHANT * (PER_MERCHANT + 1)) / 2],
    'each merchant: 1 + 2 + … + N',
  );
  t.diagnostic(`partitions of the killed worker moved within ${movedMs} ms (lease TTL 2 s)`);
});
