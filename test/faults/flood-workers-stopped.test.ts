// A flood with no worker running (engine topology, low max_lag): twenty merchants post within
// their rate limit, one hot merchant far past it. The hot one gets 429s (problem+json,
// Retry-After) while the others are accepted, until the pipeline passes max_lag and ingest sheds
// everyone with 503s. Neither appends anything. Then two workers start: every transaction that got
// its 202 arrives exactly once, and once the lag is back under resume_lag ingest accepts again.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { writeTopology } from '../helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from '../helpers/transactions.ts';
import { waitFor } from '../helpers/wait.ts';
import { createApiKey } from '../../core/api-keys.ts';
import { scanPrefix, startTestIngest } from '../../ingest/testing.ts';
import type { TestIngest } from '../../ingest/testing.ts';
import type { TransactionBody } from '../../ingest/validation.ts';
import { drainAndJudge, formatVerdict } from './support/consistency.ts';
import type { Accepted } from './support/consistency.ts';
import { cleanupInstance, Fleet } from './support/processes.ts';

const MAX_LAG = 800;
const RESUME_LAG = 200;
const PER_SECOND = 20; // each merchant's rate limit (bucket of PER_SECOND tokens)
const CALM_GAP_MS = 125; // each of the twenty calm merchants waits this long between posts: at most 8/s
const HOT_CLIENTS = 10; // concurrent clients posting for the hot merchant, unpaced
const KEEP_FLOODING_MS = 500;

let inst: TestInstance;
let ingest: TestIngest;
let fleet: Fleet;

before(async () => {
  inst = await createInstance('f-flood');
});
after(async () => {
  await fleet?.killAll();
  await ingest?.server.close();
  await cleanupInstance(inst);
});

test('flooded with no worker: 429 for the hot merchant, then 503 for all; workers then deliver every 202 once', async (t) => {
  const started = performance.now();
  const { path, topology } = writeTopology({
    'ingest.backpressure.max_lag': MAX_LAG,
    'ingest.backpressure.resume_lag': RESUME_LAG,
    'ingest.backpressure.check_interval': '50ms',
    'ingest.backpressure.retry_after': '1s',
    'ingest.rate_limit': { per_second: PER_SECOND, burst: PER_SECOND },
  });
  ingest = await startTestIngest(inst, { topology });
  fleet = new Fleet({ ...inst.vars, RILL_TOPOLOGY: path });
  const calm = merchantIds(20);
  const hot = 'm_hot';
  const apiKeys = new Map<string, string>();
  for (const m of [...calm, hot]) apiKeys.set(m, await createApiKey(inst.pool, { merchantId: m }));

  const accepted: Accepted[] = [];
  const counts = new Map<string, number>();
  const unexpected: string[] = [];
  let i = 0;
  const post = async (body: TransactionBody): Promise<number> => {
    // a refund or chargeback of the mix names a payin ingest must know (the engine topology has no ledger)
    await registerReferencedPayins(inst.redis, inst.keys, topology, [body]);
    const res = await fetch(`${ingest.url}/v1/transactions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKeys.get(body.merchant_id)}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const who = body.merchant_id === hot ? 'hot' : 'calm';
    counts.set(`${who} ${res.status}`, (counts.get(`${who} ${res.status}`) ?? 0) + 1);
    const json = (await res.json()) as { id?: string; type?: string; status?: number };
    if (res.status === 202) accepted.push({ id: json.id!, amount: body.amount, expect: { place: 'row', status: 'succeeded' }, label: `${who} ${body.type}` });
    else if (
      (res.status !== 429 && res.status !== 503) ||
      !/^application\/problem\+json/.test(res.headers.get('content-type') ?? '') ||
      json.status !== res.status ||
      !res.headers.get('retry-after') ||
      (res.status === 429 && who === 'calm')
    ) {
      unexpected.push(`${who} ${res.status} retry-after=${res.headers.get('retry-after')}: ${JSON.stringify(json).slice(0, 200)}`);
    }
    return res.status;
  };

  // 1. the flood: until the hot merchant got 429s and everyone 503s, and half a second more
  let firstShedAt = 0;
  let acceptedAtFirstShed = 0;
  const flooding = () => (!firstShedAt || performance.now() - firstShedAt < KEEP_FLOODING_MS) && i < 50_000;
  const sawShed = (status: number) => {
    if (status === 503 && !firstShedAt) {
      firstShedAt = performance.now();
      acceptedAtFirstShed = accepted.length;
    }
  };
  await Promise.all([
    ...calm.map(async (m) => {
      while (flooding()) {
        sawShed(await post({ ...sampleBody(i++, calm), merchant_id: m }));
        await delay(CALM_GAP_MS);
      }
    }),
    ...Array.from({ length: HOT_CLIENTS }, async () => {
      while (flooding()) sawShed(await post({ ...sampleBody(i++, calm), merchant_id: hot }));
    }),
  ]);
  const c = (k: string) => counts.get(k) ?? 0;
  t.diagnostic(
    `flood: ${i} posts in ${Math.round(performance.now() - started)} ms, answers ${JSON.stringify(Object.fromEntries(counts))}; ${acceptedAtFirstShed} accepted before the first 503`,
  );
  assert.deepEqual(unexpected, [], 'only 202, 429 (the hot merchant) and 503, all problem+json with Retry-After');
  assert.ok(c('hot 429') > 0, 'the hot merchant went over its rate limit');
  assert.ok(c('calm 503') > 0 && c('hot 503') > 0, 'everyone was shed once the lag passed max_lag');
  assert.ok(accepted.length >= MAX_LAG, `shedding started only past max_lag (${accepted.length} accepted)`);
  assert.equal((await scanPrefix(inst.redis, inst.env.prefix)).entries, accepted.length, 'a 429 or a 503 appended nothing');

  // 2. workers: everything that got 202 arrives, once; then ingest accepts again
  fleet.worker('a');
  fleet.worker('b');
  await waitFor('ingest accepting again', async () => (await fetch(`${ingest.url}/readyz`)).status === 200, 60_000, 50);
  assert.equal(await post({ ...sampleBody(i++, calm), merchant_id: calm[0]! }), 202, 'accepting again under resume_lag');
  const { verdict, drained } = await drainAndJudge({ ...inst, topology }, accepted, { timeoutMs: 90_000, uniqueIn: ['transactions', 'validated'] });
  t.diagnostic(formatVerdict(verdict, `${accepted.length} accepted`));
  assert.ok(drained && verdict.ok, `${formatVerdict(verdict)}\n${fleet.tails()}`);
  // a worker the drain did not need may still be starting on a busy box: SIGTERM before its handler is in place kills it
  // (each publishes its heartbeat while it starts, core/observability/heartbeat.ts)
  await waitFor('every worker started', async () => (await inst.redis.hlen(inst.keys.global('workers'))) >= fleet.started.length, 60_000, 50);
  for (const s of fleet.started) assert.equal(await s.proc.kill('SIGTERM'), 0, fleet.tails());
  t.diagnostic(`${Math.round((performance.now() - started) / 1000)} s`);
});
