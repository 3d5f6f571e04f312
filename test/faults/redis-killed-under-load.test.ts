// Redis killed with SIGKILL under load, and started again on the same port and dir. The scenario
// runs its own redis-server (AOF, `appendfsync always`: what a 202 promises survives a crash), the
// real `rill ingest` and `rill worker` processes pointed at it, and merchants posting the payments
// workload over HTTP with Idempotency-Keys, retrying each request on 503 as a client should.
// During the outage clients get 503 problem+json with Retry-After, never a 500; afterwards every
// transaction that got its 202 is in exactly one place, none twice, and money is conserved
// (the ledger's wallets in Redis came back from the AOF in step with the streams).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { waitFor } from '../helpers/wait.ts';
import { createApiKey } from '../../core/api-keys.ts';
import { combine, drainAndJudge, formatVerdict, waiting } from './support/consistency.ts';
import { moneyVerdict } from './support/money.ts';
import { OwnRedis } from './support/own-redis.ts';
import { PaymentsWorkload, paymentsTopology } from './support/payments.ts';
import type { Poster } from './support/payments.ts';
import { cleanupInstance, Fleet, freePort } from './support/processes.ts';

const MERCHANTS = 40;
const PER_MERCHANT = 150;
const RATE = 300;

let redis: OwnRedis;
let inst: TestInstance;
let fleet: Fleet;
let work: PaymentsWorkload | undefined;

before(async () => {
  redis = await OwnRedis.start();
  inst = await createInstance('f-rediskill', { REDIS_URL: redis.url });
  inst.redis.on('error', () => undefined); // refused while Redis is down; it reconnects
});
after(async () => {
  work?.stop();
  await fleet?.killAll();
  await cleanupInstance(inst);
  await redis?.destroy();
});

test('Redis kill -9 under load: 503s meanwhile, never a 500; every 202 exactly once, money conserved', async (t) => {
  const started = performance.now();
  const { path, topology } = paymentsTopology();
  const ctx = { ...inst, topology };
  const port = await freePort();
  fleet = new Fleet({ ...inst.vars, RILL_TOPOLOGY: path });
  const ingest = fleet.spawn('ingest', ['ingest'], { PORT: String(port) });
  const url = `http://127.0.0.1:${port}`;
  const worker = fleet.worker('w1');
  work = new PaymentsWorkload(MERCHANTS, PER_MERCHANT);
  const apiKeys = new Map<string, string>();
  for (const m of work.merchants) apiKeys.set(m, await createApiKey(inst.pool, { merchantId: m }));
  await waitFor('ingest ready', async () => (await fetch(`${url}/readyz`)).status === 200, 30_000, 50);

  // the client: each request with its Idempotency-Key, retried on 503 until it gets its 202
  const statuses = new Map<string, number>();
  const count = (s: string) => statuses.set(s, (statuses.get(s) ?? 0) + 1);
  const unexpected: string[] = [];
  let outage: 'before' | 'down' | 'after' = 'before';
  let shedWhileDown = 0;
  const post: Poster = async (body, key) => {
    for (;;) {
      let res: Response;
      try {
        res = await fetch(`${url}/v1/transactions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKeys.get(body.merchant_id)}`, 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify(body),
        });
      } catch (err) {
        count('network error');
        unexpected.push(`network error: ${String(err)}`);
        throw err;
      }
      count(String(res.status));
      if (res.status === 202) return ((await res.json()) as { id: string }).id;
      const text = await res.text();
      // a refund naming no payin of its merchant: refused for good (the workload's orphans)
      if (
        res.status === 422 &&
        /^application\/problem\+json/.test(res.headers.get('content-type') ?? '') &&
        JSON.parse(text).type === 'urn:problem-type:rill:unknown-payin'
      )
        return undefined;
      if (res.status !== 503 || !/^application\/problem\+json/.test(res.headers.get('content-type') ?? '') || !res.headers.get('retry-after')) {
        unexpected.push(`${res.status} ${res.headers.get('content-type')} retry-after=${res.headers.get('retry-after')}: ${text.slice(0, 300)}`);
        throw new Error(`unexpected answer ${res.status}: ${text.slice(0, 300)}`);
      }
      if (outage === 'down') shedWhileDown++;
      await delay(100); // the client's backoff (shorter than Retry-After, to keep the test quick)
    }
  };

  await work.seed(post);
  const seededAt = performance.now();
  await waitFor('the seeds drained', async () => (await waiting(ctx)) === 0, 60_000, 50).catch((err: Error) => {
    throw new Error(`${err.message}\n${fleet.tails(40)}`);
  });
  t.diagnostic(`seeds drained in ${Math.round(performance.now() - seededAt)} ms`);
  const load = work.run(post, { perSecond: RATE });

  // kill -9 a third of the way through the load; start it again once clients have seen 503s
  await waitFor('a third of the load accepted', () => work!.acceptedCount >= (MERCHANTS * PER_MERCHANT) / 3, 60_000, 10);
  const acceptedAtKill = work.acceptedCount;
  await redis.kill9();
  outage = 'down';
  const killedAt = performance.now();
  await waitFor('clients to see 503s', () => shedWhileDown >= 50, 30_000, 10);
  await redis.startAgain();
  outage = 'after';
  const downMs = performance.now() - killedAt;
  await load;
  const loadDoneAt = performance.now();

  const { verdict, drained } = await drainAndJudge(ctx, work.accepted, { timeoutMs: 120_000, uniqueIn: ['transactions', 'validated', 'scored', 'settled'] });
  t.diagnostic(`drained ${Math.round(performance.now() - loadDoneAt)} ms after the load`);
  const money = await moneyVerdict({ ...inst, partitions: 8 }, work.money);
  const all = combine(verdict, money);
  t.diagnostic(
    `Redis down for ${Math.round(downMs)} ms after ${acceptedAtKill} accepted; answers: ${JSON.stringify(Object.fromEntries(statuses))}; 503s while down: ${shedWhileDown}`,
  );
  t.diagnostic(formatVerdict(all, `${work.acceptedCount} accepted`));
  assert.deepEqual(unexpected, [], 'only 202, 503 (problem+json, Retry-After) and 422 unknown-payin for the orphans');
  assert.ok(shedWhileDown > 0, 'clients saw 503s during the outage');
  assert.ok(drained && all.ok, `${formatVerdict(all)}\n${fleet.tails()}`);
  const want = work.expectedCounts();
  assert.equal(verdict.counts.tableRows, want.rows);
  assert.equal(verdict.counts.deadLetterEntries, 0, 'nothing dead-lettered');
  assert.equal(work.refused, want.refused, 'every orphan refund refused at ingest (422)');
  assert.equal(statuses.get('422'), want.refused, 'one 422 per orphan');
  assert.equal(await worker.kill('SIGTERM'), 0, fleet.tails());
  assert.equal(await ingest.kill('SIGTERM'), 0, fleet.tails());
  t.diagnostic(`rows ${want.rows}, refused at ingest ${want.refused}; ${Math.round((performance.now() - started) / 1000)} s`);
});
