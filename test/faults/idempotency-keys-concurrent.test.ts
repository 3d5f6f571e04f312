// 100 Idempotency-Keys × 50 concurrent posts each, spread over two ingest servers sharing one
// Redis: every key's 50 answers are the same 202 body (one first answer, 49 replays), exactly 100
// entries are appended, and a worker turns them into exactly 100 rows. A client that gets a 503
// (a dependency slower than ingest's timeout, e.g. on a starved machine) retries with the same
// key, as clients must; its final answer is the one compared.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { ENGINE_TOPOLOGY } from '../helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from '../helpers/transactions.ts';
import { createApiKey } from '../../core/api-keys.ts';
import { scanPrefix, startTestIngest } from '../../ingest/testing.ts';
import type { TestIngest } from '../../ingest/testing.ts';
import { loadTopology } from '../../core/topology/load.ts';
import { drainAndJudge, formatVerdict } from './support/consistency.ts';
import type { Accepted } from './support/consistency.ts';
import { cleanupInstance, Fleet } from './support/processes.ts';

const KEYS = 100;
const COPIES = 50;
const WAVE = 10; // keys in flight at once: 10 × 50 = 500 concurrent requests

let inst: TestInstance;
const servers: TestIngest[] = [];
let fleet: Fleet;

before(async () => {
  inst = await createInstance('f-idem');
  fleet = new Fleet({ ...inst.vars, RILL_TOPOLOGY: ENGINE_TOPOLOGY });
  for (let i = 0; i < 2; i++) servers.push(await startTestIngest(inst, { topology: ENGINE_TOPOLOGY }));
});
after(async () => {
  await fleet?.killAll();
  await Promise.all(servers.map((s) => s.server.close()));
  await cleanupInstance(inst);
});

interface Answer {
  status: number;
  body: string;
  replayed: boolean;
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('100 keys × 50 concurrent posts: identical answers, 100 entries, 100 rows', async (t) => {
  const started = performance.now();
  const merchants = merchantIds(10);
  const apiKeys = new Map<string, string>();
  for (const m of merchants) apiKeys.set(m, await createApiKey(inst.pool, { merchantId: m }));
  const topology = loadTopology(ENGINE_TOPOLOGY);
  // the refunds and chargebacks of the mix name payins ingest must know (the engine topology has no ledger)
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    topology,
    Array.from({ length: KEYS }, (_, k) => sampleBody(k, merchants)),
  );

  const answers = new Map<number, Answer[]>();
  let retried = 0;
  for (let wave = 0; wave < KEYS; wave += WAVE) {
    await Promise.all(
      Array.from({ length: Math.min(WAVE, KEYS - wave) }, (_, j) => wave + j).flatMap((k) => {
        const body = JSON.stringify(sampleBody(k, merchants));
        const merchant = merchants[k % merchants.length]!;
        return Array.from({ length: COPIES }, async (_, c) => {
          for (;;) {
            const res = await fetch(`${servers[c % 2]!.url}/v1/transactions`, {
              method: 'POST',
              headers: {
                authorization: `Bearer ${apiKeys.get(merchant)}`,
                'content-type': 'application/json',
                'idempotency-key': `order-${k}`,
              },
              body,
            });
            const answer = { status: res.status, body: await res.text(), replayed: res.headers.get('idempotent-replayed') === 'true' };
            if (res.status === 503 && res.headers.get('retry-after')) {
              retried++;
              await delay(200);
              continue;
            }
            answers.set(k, [...(answers.get(k) ?? []), answer]);
            return;
          }
        });
      }),
    );
  }

  const accepted: Accepted[] = [];
  const bad: string[] = [];
  for (let k = 0; k < KEYS; k++) {
    const list = answers.get(k)!;
    assert.equal(list.length, COPIES);
    const bodies = new Set(list.map((a) => `${a.status} ${a.body}`));
    const firsts = list.filter((a) => !a.replayed).length;
    if (bodies.size !== 1 || list[0]!.status !== 202 || firsts !== 1) {
      bad.push(`order-${k}: ${bodies.size} different answers (${[...bodies].slice(0, 3).join(' | ')}), ${firsts} not marked as replays`);
      continue;
    }
    const { id } = JSON.parse(list[0]!.body) as { id: string };
    accepted.push({ id, amount: sampleBody(k, merchants).amount, label: `order-${k}` });
  }
  assert.deepEqual(bad, [], `every key's 50 answers identical, one of them the first:\n${bad.join('\n')}`);
  assert.equal(new Set(accepted.map((a) => a.id)).size, KEYS, 'one id per key');
  const appended = (await scanPrefix(inst.redis, inst.env.prefix)).entries;
  assert.equal(appended, KEYS, `exactly ${KEYS} entries appended for ${KEYS * COPIES} posts`);
  const postedMs = performance.now() - started;

  fleet.worker('w1');
  const { verdict, drained } = await drainAndJudge({ ...inst, topology }, accepted, { timeoutMs: 60_000 });
  t.diagnostic(formatVerdict(verdict));
  assert.ok(drained && verdict.ok, `${formatVerdict(verdict)}\n${fleet.tails()}`);
  assert.equal(verdict.counts.tableRows, KEYS);
  t.diagnostic(
    `${KEYS * COPIES} posts (${retried} retried after a 503) in ${Math.round(postedMs)} ms → ${appended} entries → ${verdict.counts.tableRows} rows`,
  );
});
