// The payments pipeline end to end (ingest → validate → risk → ledger → sink), 20,000 mixed
// transactions posted over 100 merchants: 1% fail risk (huge amounts, risk_declined), 1% overdraw
// (insufficient_funds), 1% refund more than is refundable (refund_exceeds_payin), 1% are orphan
// refunds (naming no payin: refused at ingest with 422, nothing appended). Then, for every merchant
// and currency: wallet balance = sum of its ledger entries = the balance expected from the
// accepted sequence; every accepted transaction is a row once with its final state and failure
// code; nothing is dead-lettered.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import type { RillProcess } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { assertMoney, assertPlaces } from './helpers/payments-verdict.ts';
import type { Expect, Posted } from './helpers/payments-verdict.ts';
import { SHIPPED_TOPOLOGY, writeTopology } from './helpers/topology-file.ts';
import { merchantIds } from './helpers/transactions.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { createApiKey } from '../core/api-keys.ts';
import type { TransactionBody } from '../ingest/validation.ts';

let inst: TestInstance;
let ingest: TestIngest;
let worker: RillProcess;
let topologyPath: string;

before(async () => {
  inst = await createInstance('money');
  const t = writeTopology(
    {
      'stages.risk.config.per_hour_amount': 5_000_000, // a 20,000,000 payin scores 100 on its own
      'stages.risk.config.features': false, // the velocity rules alone: only the huge payins fail risk
      'stages.ledger.retry': { attempts: 3, base: '20ms', factor: 2, max: '100ms', jitter: 'full' },
      'ingest.rate_limit': { per_second: 5_000, burst: 5_000 },
    },
    SHIPPED_TOPOLOGY,
  );
  topologyPath = t.path;
  ingest = await startTestIngest(inst, { topology: t.topology });
  worker = spawnRill(['worker', '--consumer', 'money'], { ...inst.vars, RILL_TOPOLOGY: topologyPath });
});
after(async () => {
  await worker?.kill('SIGTERM');
  await ingest?.server.close();
  await inst?.cleanup();
});

/** Deterministic amounts: a small LCG per merchant. */
function amounts(seed: number): () => number {
  let x = seed * 2654435761 + 1;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return 1_000 + (x % 4_000);
  };
}

test('20,000 mixed transactions: money is conserved, every one ends in exactly one place', async (t) => {
  const merchants = merchantIds(100);
  const keys = new Map<string, string>();
  for (const m of merchants) keys.set(m, await createApiKey(inst.pool, { merchantId: m }));
  const posted: Posted[] = [];
  const post = async (body: TransactionBody, expect: Expect): Promise<Posted> => {
    const res = await fetch(`${ingest.url}/v1/transactions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.get(body.merchant_id)}`, 'content-type': 'application/json' },
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
    const res = await fetch(`${ingest.url}/v1/transactions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.get(body.merchant_id)}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as { type: string; errors: { path: string }[] };
    assert.equal(res.status, 422, JSON.stringify(json));
    assert.equal(json.type, 'urn:problem-type:rill:unknown-payin');
    assert.deepEqual(
      json.errors.map((e) => e.path),
      ['/reference'],
    );
    refused++;
  };
  const currencyOf = (i: number) => (i % 2 ? 'EUR' : 'USD');

  // phase 1: payins (and two huge ones per merchant that risk rejects), each merchant in sequence
  const payinsOf = new Map<string, Posted[]>();
  await Promise.all(
    merchants.map(async (m, i) => {
      const next = amounts(i + 1);
      const list: Posted[] = [];
      for (let k = 0; k < 122; k++) {
        if (k === 40 || k === 80) {
          await post(
            { type: 'payin', merchant_id: m, amount: 20_000_000, currency: currencyOf(i) },
            { status: 'failed', code: 'risk_declined', reason: /^risk: velocity score/ },
          );
        } else {
          list.push(await post({ type: 'payin', merchant_id: m, amount: next(), currency: currencyOf(i), reference: `order-${k}` }, { status: 'succeeded' }));
        }
      }
      payinsOf.set(m, list);
    }),
  );
  await waitFor('phase 1 through the pipeline', async () => (await outstanding(inst.redis, inst.keys, ingest.topology)) === 0, 180_000, 200);

  // phase 2: payouts within the balance, refunds and chargebacks of distinct payins, and the
  // failures: overdrafts, refunds past what is refundable, orphans
  await Promise.all(
    merchants.map(async (m, i) => {
      const cur = currencyOf(i);
      const payins = payinsOf.get(m)!;
      for (let k = 0; k < 40; k++) await post({ type: 'payout', merchant_id: m, amount: 500 + k * 30, currency: cur }, { status: 'succeeded' });
      for (let k = 0; k < 20; k++) {
        const p = payins[k]!;
        await post({ type: 'refund', merchant_id: m, amount: Math.floor(p.body.amount / 2), currency: cur, reference: p.id }, { status: 'succeeded' });
      }
      for (let k = 20; k < 30; k++) {
        const p = payins[k]!;
        await post({ type: 'chargeback', merchant_id: m, amount: p.body.amount, currency: cur, reference: p.id }, { status: 'succeeded' });
      }
      for (let k = 20; k < 22; k++) {
        // these payins were fully charged back just before (same lane, same order): nothing left
        await post(
          { type: 'refund', merchant_id: m, amount: 1, currency: cur, reference: payins[k]!.id },
          { status: 'failed', code: 'refund_exceeds_payin', reason: /^ledger: refund of 1 exceeds the refundable 0/ },
        );
      }
      for (let k = 0; k < 2; k++)
        await post(
          { type: 'payout', merchant_id: m, amount: 1_000_000, currency: cur },
          { status: 'failed', code: 'insufficient_funds', reason: /^ledger: insufficient funds/ },
        );
      // orphans: an id no ingest made, and a payin of another merchant
      await refuse({ type: 'refund', merchant_id: m, amount: 100, currency: cur, reference: `tx_orphan_${m}_0` });
      await refuse({ type: 'refund', merchant_id: m, amount: 100, currency: cur, reference: payinsOf.get(merchants[(i + 1) % merchants.length]!)![0]!.id });
      const next = amounts(1_000 + i);
      for (let k = 0; k < 2; k++) await post({ type: 'payin', merchant_id: m, amount: next(), currency: cur }, { status: 'succeeded' });
    }),
  );
  assert.equal(posted.length + refused, 20_000);
  assert.equal(refused, 200, 'every orphan refused at ingest');
  assert.equal(posted.length, 19_800);
  await waitFor('phase 2 through the pipeline', async () => (await outstanding(inst.redis, inst.keys, ingest.topology)) === 0, 180_000, 200);

  // every accepted transaction in exactly one final place
  const places = await assertPlaces({ pool: inst.pool, redis: inst.redis, keys: inst.keys, partitions: 8, posted, quietStages: ['validate', 'risk'] });
  const { counts } = places;
  const expected = await assertMoney(inst.pool, posted);
  assert.deepEqual(counts, { succeeded: 19_200, failed: 600 });
  t.diagnostic(`succeeded ${counts.succeeded}, failed ${counts.failed}, refused at ingest ${refused}; ${expected.size} wallets`);
});
