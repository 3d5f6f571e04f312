// The payments pipeline on a Redis Cluster of three masters (its own, started here): ingest in
// process and three worker processes, all with REDIS_URL listing the three nodes. A few thousand
// mixed transactions over 30 merchants; the partitions' keys are spread over the three masters;
// one worker is SIGKILLed mid-load and its partitions' leases move to the survivors. Then every
// accepted transaction is a row, none twice, with its status and failure code, nothing is
// dead-lettered (orphan refunds are refused at ingest), and money is conserved.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster, Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { startCluster } from './helpers/redis-cluster.ts';
import type { OwnCluster } from './helpers/redis-cluster.ts';
import { spawnRill } from './helpers/rill-process.ts';
import type { RillProcess } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { assertMoney, assertPlaces } from './helpers/payments-verdict.ts';
import type { Expect, Posted } from './helpers/payments-verdict.ts';
import { SHIPPED_TOPOLOGY, WITHOUT_WEBHOOKS, writeTopology } from './helpers/topology-file.ts';
import { merchantIds } from './helpers/transactions.ts';
import { entryArgs } from '../core/entry.ts';
import { scanPrefix, startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { createApiKey } from '../core/api-keys.ts';
import type { TransactionBody } from '../ingest/validation.ts';
import { isCluster, keySlot } from '../core/slot-pipeline.ts';
import type { Topology } from '../core/topology/schema.ts';
import { chainOf, planChains } from '../core/topology/chains.ts';
import { collectStreamStats } from '../core/observability/stream-stats.ts';
import { startRetention } from '../core/retention/retention.ts';
import { DeadLetters } from '../core/dead-letter/dead-letters.ts';
import { openTap } from '../core/tap/reader.ts';
import { createRegistry } from '../core/metrics.ts';
import { createLogger } from '../core/logger.ts';

const PARTITIONS = 8;
const ORDERED = ['validate', 'risk', 'ledger'];
/** Leases are held per task: chained (the default) validate → risk → ledger is one, leased as validate. */
let leased: string[] = ORDERED;
let cluster: OwnCluster | undefined;
let inst: TestInstance | undefined;
let ingest: TestIngest | undefined;
const workers: RillProcess[] = [];
/** Set by the first test: what the operator paths below should find. */
let done: { topology: Topology; rows: number; merchant: string; apiKey: string } | undefined;

before(async () => {
  cluster = await startCluster(3);
  inst = await createInstance('cluster', { REDIS_URL: cluster.url });
});
after(async () => {
  await Promise.all(workers.map((w) => w.kill('SIGKILL')));
  await ingest?.server.close();
  await inst?.cleanup();
  await cluster?.stop();
});

/** Who holds each partition's lease of a stage: member name → partitions. */
async function leaseOwners(redis: Redis, stage: string): Promise<Map<string, number[]>> {
  const owners = new Map<string, number[]>();
  for (let p = 0; p < PARTITIONS; p++) {
    const id = await redis.get(`mutex:${inst!.keys.lease(stage, p)}`);
    if (!id) continue;
    const member = id.slice(0, id.lastIndexOf(':'));
    owners.set(member, [...(owners.get(member) ?? []), p]);
  }
  return owners;
}

async function sharesOf(redis: Redis): Promise<string[]> {
  const all = await Promise.all(leased.map((s) => leaseOwners(redis, s)));
  return all.map((o) => JSON.stringify([...o.values()].map((ps) => ps.length).sort()));
}

/** Deterministic amounts: a small LCG per merchant. */
function amounts(seed: number): () => number {
  let x = seed * 2654435761 + 1;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return 1_000 + (x % 4_000);
  };
}

test('the payments pipeline on a 3-master Redis Cluster: exactly once, money conserved, a worker SIGKILLed', async (t) => {
  const { redis, keys, pool } = inst!;
  assert.ok(isCluster(redis), 'the instance talks to the cluster');
  const { path, topology } = writeTopology(
    {
      'stages.validate.lease_ttl': '2s',
      'stages.risk.lease_ttl': '2s',
      'stages.ledger.lease_ttl': '2s',
      'stages.risk.config.per_hour_amount': 5_000_000, // a 20,000,000 payin scores 100 on its own
      'stages.risk.config.features': false, // the velocity rules alone: only the huge payins fail risk
      'stages.ledger.retry': { attempts: 3, base: '20ms', factor: 2, max: '100ms', jitter: 'full' },
      'sinks.postgres.visibility_timeout': '2s',
      'ingest.rate_limit': { per_second: 5_000, burst: 5_000 },
      ...WITHOUT_WEBHOOKS, // merchant webhooks have tests of their own
    },
    SHIPPED_TOPOLOGY,
  );
  for (const topic of Object.values(topology.topics)) assert.equal(topic.partitions, PARTITIONS);
  leased = [...new Set(ORDERED.map((s) => chainOf(planChains(topology), s)!.stages[0]!))];
  ingest = await startTestIngest(inst!, { topology });
  const vars: Record<string, string> = { ...inst!.vars, RILL_TOPOLOGY: path };
  assert.equal(vars.REDIS_URL, cluster!.url);
  for (const name of ['c1', 'c2', 'c3']) workers.push(spawnRill(['worker', '--consumer', name], vars));
  await waitFor(
    'leases spread 2/3/3 over three workers in every ordered stage',
    async () => {
      for (const w of workers) if (w.child.exitCode !== null) throw new Error(`a worker exited: ${w.output().slice(-2_000)}`);
      return (await sharesOf(redis)).every((s) => s === '[2,3,3]');
    },
    30_000,
    100,
  );

  const merchants = merchantIds(30);
  const apiKeys = new Map<string, string>();
  for (const m of merchants) apiKeys.set(m, await createApiKey(pool, { merchantId: m }));
  const posted: Posted[] = [];
  const post = async (body: TransactionBody, expect: Expect): Promise<Posted> => {
    const res = await fetch(`${ingest!.url}/v1/transactions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKeys.get(body.merchant_id)}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as { id: string };
    assert.equal(res.status, 202, JSON.stringify(json));
    const p = { id: json.id, body, expect };
    posted.push(p);
    return p;
  };
  /** An orphan refund: refused at ingest (422 unknown-payin), nothing appended. */
  let refused = 0;
  const refuse = async (body: TransactionBody): Promise<void> => {
    const res = await fetch(`${ingest!.url}/v1/transactions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKeys.get(body.merchant_id)}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as { type: string };
    assert.equal(res.status, 422, JSON.stringify(json));
    assert.equal(json.type, 'urn:problem-type:rill:unknown-payin');
    refused++;
  };
  const currencyOf = (i: number) => (i % 2 ? 'EUR' : 'USD');
  const drained = (what: string) => waitFor(what, async () => (await outstanding(redis, keys, topology)) === 0, 60_000, 100);

  // phase 1: payins (one huge one per merchant that risk rejects); one worker SIGKILLed a third in
  const PAYINS = 60;
  const victim = workers[1]!;
  let killedAt = 0;
  const killing = waitFor('a third of phase 1 posted', () => posted.length >= (merchants.length * (PAYINS + 1)) / 3, 60_000, 5).then(async () => {
    assert.equal(await victim.kill('SIGKILL'), 'SIGKILL');
    killedAt = Date.now();
  });
  const payinsOf = new Map<string, Posted[]>();
  await Promise.all(
    merchants.map(async (m, i) => {
      const next = amounts(i + 1);
      const list: Posted[] = [];
      for (let k = 0; k <= PAYINS; k++) {
        if (k === 30)
          await post(
            { type: 'payin', merchant_id: m, amount: 20_000_000, currency: currencyOf(i) },
            { status: 'failed', code: 'risk_declined', reason: /^risk: velocity score/ },
          );
        else
          list.push(await post({ type: 'payin', merchant_id: m, amount: next(), currency: currencyOf(i), reference: `order-${k}` }, { status: 'succeeded' }));
      }
      payinsOf.set(m, list);
    }),
  );
  await killing;
  await waitFor(
    'the killed worker’s partitions moved to the survivors (4/4 in every ordered stage)',
    async () => (await sharesOf(redis)).every((s) => s === '[4,4]'),
    30_000,
    100,
  );
  const movedMs = Date.now() - killedAt;
  await drained('phase 1 through the pipeline');

  // phase 2: payouts within the balance, refunds and chargebacks of distinct payins, and the
  // failures: a refund past what is refundable, an overdraft; an orphan refund (refused at ingest)
  const phase2From = posted.length;
  const phase2At = Date.now();
  await Promise.all(
    merchants.map(async (m, i) => {
      const cur = currencyOf(i);
      const payins = payinsOf.get(m)!;
      for (let k = 0; k < 20; k++) await post({ type: 'payout', merchant_id: m, amount: 500 + k * 30, currency: cur }, { status: 'succeeded' });
      for (let k = 0; k < 8; k++) {
        const p = payins[k]!;
        await post({ type: 'refund', merchant_id: m, amount: Math.floor(p.body.amount / 2), currency: cur, reference: p.id }, { status: 'succeeded' });
      }
      for (let k = 8; k < 12; k++) {
        const p = payins[k]!;
        await post({ type: 'chargeback', merchant_id: m, amount: p.body.amount, currency: cur, reference: p.id }, { status: 'succeeded' });
      }
      // charged back in full just before (same lane, same order): nothing left to refund
      await post(
        { type: 'refund', merchant_id: m, amount: 1, currency: cur, reference: payins[8]!.id },
        { status: 'failed', code: 'refund_exceeds_payin', reason: /^ledger: refund of 1 exceeds the refundable 0/ },
      );
      await post(
        { type: 'payout', merchant_id: m, amount: 1_000_000, currency: cur },
        { status: 'failed', code: 'insufficient_funds', reason: /^ledger: insufficient funds/ },
      );
      await refuse({ type: 'refund', merchant_id: m, amount: 100, currency: cur, reference: `tx_orphan_${m}` });
      const next = amounts(1_000 + i);
      for (let k = 0; k < 2; k++) await post({ type: 'payin', merchant_id: m, amount: next(), currency: cur }, { status: 'succeeded' });
    }),
  );
  const postedMs = Date.now() - phase2At;
  await drained('phase 2 through the pipeline');
  const phase2Ms = Date.now() - phase2At;
  const phase2 = posted.length - phase2From;
  assert.equal(posted.length, merchants.length * (PAYINS + 1 + 20 + 8 + 4 + 2 + 2));
  assert.equal(refused, merchants.length, 'every orphan refused at ingest');

  // the partitions' keys really are spread over the three masters
  await assertSpread(redis as unknown as Cluster, topology);

  // every accepted transaction in exactly one final place
  const places = await assertPlaces({ pool: pool, redis: redis, keys: keys, partitions: PARTITIONS, posted, quietStages: ['validate', 'risk', 'postgres'] });
  const { counts } = places;
  const expected = await assertMoney(pool, posted);

  // the survivors still run: nothing in their output says a command crossed slots
  for (const w of workers) if (w !== victim) assert.doesNotMatch(w.output(), /CROSSSLOT|same slots allocation group|same slot/);
  assert.deepEqual(counts, { succeeded: merchants.length * (PAYINS + 20 + 8 + 4 + 2), failed: merchants.length * 3 });
  done = { topology, rows: places.rows, merchant: merchants[0]!, apiKey: apiKeys.get(merchants[0]!)! };
  t.diagnostic(`succeeded ${counts.succeeded}, failed ${counts.failed}, refused at ingest ${refused}; ${expected.size} wallets`);
  t.diagnostic(`leases of the killed worker moved within ${movedMs} ms (lease TTL 2 s)`);
  t.diagnostic(
    `phase 2: ${phase2} events posted in ${postedMs} ms, through the pipeline in ${phase2Ms} ms: ${Math.round((phase2 * 1000) / phase2Ms)} events/s end to end`,
  );
});

test('operator paths on the cluster: stream stats, retention, tap, dead-letter redrive, key scans', async (t) => {
  if (!done) return t.skip('the pipeline test did not finish');
  const { redis, keys, env } = inst!;
  const { topology } = done;
  // dead letters on every master: an entry validate cannot read (its body is not JSON) in each partition
  for (let p = 0; p < PARTITIONS; p++) {
    await redis.xadd(keys.lane(topology.ingest.topic, p, 'normal'), '*', ...entryArgs({ txId: `tx_unreadable_${p}`, event: 'not json' }));
  }
  const dead = PARTITIONS;
  const dlq = new DeadLetters(redis, keys, topology);
  await waitFor(
    'the unreadable entries dead-lettered',
    async () => (await outstanding(redis, keys, topology)) === 0 && (await dlq.list({ stage: 'validate', limit: 1_000 })).entries.length === dead,
    30_000,
    100,
  );

  const stats = await collectStreamStats(redis, keys, topology);
  const sink = stats.lanes
    .filter((l) => l.topic === 'settled')
    .flatMap((l) => l.groups)
    .filter((g) => g.group === 'postgres');
  assert.equal(
    sink.reduce((n, g) => n + g.pending + g.lag, 0),
    0,
    'the sink group is caught up',
  );
  assert.equal(
    stats.lanes.filter((l) => l.topic === 'settled').reduce((n, l) => n + l.length, 0),
    done.rows,
  );
  assert.equal(stats.deadLetters.validate, dead);
  assert.equal(stats.deadLetters.ledger, 0);

  const retention = startRetention({ redis, keys, topology, registry: createRegistry(), logger: createLogger('silent'), intervalMs: 3_600_000 });
  const trim = await retention.runOnce();
  await retention.stop();
  // transactions and settled keep their 15 minutes; the intermediate topics (hot 0s) hold nothing
  // once every group acknowledged (trimmed by this pass or the workers' own)
  assert.equal(
    trim.streams.filter((s) => s.topic === 'transactions' || s.topic === 'settled').reduce((n, s) => n + s.trimmed, 0),
    0,
    'nothing past its window yet',
  );
  assert.ok(trim.streams.length >= PARTITIONS * topology.priorities.length);
  const intermediate = (await collectStreamStats(redis, keys, topology)).lanes.filter((l) => l.topic === 'validated' || l.topic === 'scored');
  assert.ok(intermediate.length > 0);
  assert.equal(
    intermediate.reduce((n, l) => n + l.length, 0),
    0,
    'acknowledged intermediate entries trimmed',
  );

  // tap: history without follow, then a live event in follow mode (polled on a cluster)
  let history = 0;
  for await (const _ of await openTap({ redis, keys, topology, topic: 'settled', from: 'earliest' })) history++;
  assert.equal(history, done.rows);
  const abort = new AbortController();
  const live = await openTap({ redis, keys, topology, topic: 'transactions', from: 'now', follow: true, blockMs: 300, signal: abort.signal });
  const seen = (async () => {
    for await (const e of live) {
      abort.abort();
      return e;
    }
    return undefined;
  })();
  const res = await fetch(`${ingest!.url}/v1/transactions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${done.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'payin', merchant_id: done.merchant, amount: 1_234, currency: 'USD' }),
  });
  const { id } = (await res.json()) as { id: string };
  assert.equal((await seen)?.tx, id, 'the live event came through the tap');

  // dead letters: list across partitions, redrive all (they fail again, and come back)
  const listed = await dlq.list({ stage: 'validate', limit: 1_000 });
  assert.equal(listed.entries.length, dead);
  assert.equal(listed.total, dead);
  assert.equal(new Set(listed.entries.map((e) => e.partition)).size, PARTITIONS, 'one in every partition');
  const redriven = await dlq.redrive({ all: true, stage: 'validate' });
  assert.deepEqual(redriven, { redriven: dead, missing: [], failed: [] });
  await waitFor(
    'the redriven entries dead-lettered again and the live payin settled',
    async () => (await outstanding(redis, keys, topology)) === 0 && (await dlq.list({ stage: 'validate', limit: 1_000 })).entries.length === dead,
    30_000,
    100,
  );

  const scanned = await scanPrefix(redis, env.prefix);
  assert.ok(scanned.keys.some((k) => k.includes(':{0}:')) && scanned.keys.some((k) => k.includes(':{7}:')), 'SCAN reaches every master');
  t.diagnostic(`${scanned.keys.length} keys, ${scanned.entries} stream entries over the three masters`);
});

/** Each partition's keys share one slot; the partitions' slots live on all three masters. */
async function assertSpread(redis: Cluster, topology: Topology): Promise<void> {
  const admin = cluster!.node(cluster!.ports[0]!);
  const masters = cluster!.ports.map((p) => cluster!.node(p));
  const ids = await Promise.all(masters.map(async (m) => String(await m.cluster('MYID'))));
  const byMaster = new Map<string, number[]>();
  for (let p = 0; p < PARTITIONS; p++) {
    const partKeys = [
      ...Object.keys(topology.topics).flatMap((topic) => topology.priorities.map((l) => inst!.keys.lane(topic, p, l.name))),
      inst!.keys.delay('ledger', p),
      inst!.keys.deadLetter('ledger', p),
    ];
    const slots = new Set(await Promise.all(partKeys.map(async (k) => Number(await admin.cluster('KEYSLOT', k)))));
    assert.equal(slots.size, 1, `partition ${p}: one slot`);
    const slot = [...slots][0]!;
    assert.equal(keySlot(partKeys[0]!), slot, 'keySlot agrees with CLUSTER KEYSLOT');
    // the master that serves the slot holds the keys; the others hold none of them
    const held = await Promise.all(masters.map(async (m) => Number(await m.cluster('COUNTKEYSINSLOT', slot))));
    const owners = ids.filter((_, i) => held[i]! > 0);
    assert.equal(owners.length, 1, `partition ${p}: keys on exactly one master`);
    byMaster.set(owners[0]!, [...(byMaster.get(owners[0]!) ?? []), p]);
  }
  assert.equal(byMaster.size, 3, `partitions on every master: ${JSON.stringify([...byMaster.values()])}`);
  assert.equal(redis.nodes('master').length, 3);
}
