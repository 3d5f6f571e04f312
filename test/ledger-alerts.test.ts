// Low-balance alerts: the debit that takes a wallet under its threshold emits one alert event to
// the alerts topic (and counts it in rill_alerts_emitted_total); further debits while it stays low
// emit none; after a credit lifts it back, the next dip alerts again.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { SHIPPED_TOPOLOGY, writeTopology } from './helpers/topology-file.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { partitionOf } from '../core/partition.ts';
import { EventAppender } from '../ingest/append/index.ts';
import type { TransactionBody } from '../ingest/validation.ts';
import { startWorker } from '../cli/start-worker.ts';

let inst: TestInstance;
before(async () => {
  inst = await createInstance('alerts');
});
after(async () => {
  await inst?.cleanup();
});

test('one alert per dip under the low-balance threshold', async () => {
  // velocity rules alone: the streaming features would hold this test's quick payouts for review
  const { topology } = writeTopology(
    { 'stages.ledger.config.low_balance': { default: 1_000, EUR: 5_000 }, 'stages.risk.config.features': false },
    SHIPPED_TOPOLOGY,
  );
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const registry = createRegistry();
  const worker = await startWorker({ env: inst.env, topology, registry, logger: createLogger('silent') });
  const m = 'm_alerts';
  const run = async (bodies: Omit<TransactionBody, 'merchant_id' | 'currency'>[]) => {
    for (const b of bodies) await appender.append({ ...b, merchant_id: m, currency: 'EUR' } as TransactionBody);
    await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);
  };
  const alerts = async () => {
    const entries = (await inst.redis.xrange(inst.keys.lane('alerts', partitionOf(m, 8), 'low'), '-', '+')) as [string, string[]][];
    return entries.map(([, f]) => JSON.parse(f[f.indexOf('ev') + 1]!) as { type: string; balance: number; threshold: number; merchant_id: string });
  };
  try {
    await run([{ type: 'payin', amount: 10_000 }]);
    await run([
      { type: 'payout', amount: 3_000 },
      { type: 'payout', amount: 3_000 },
    ]); // 4,000 < 5,000: first dip
    await run([
      { type: 'payout', amount: 1_000 },
      { type: 'payout', amount: 1_000 },
    ]); // still low: no new alert
    let got = await alerts();
    assert.equal(got.length, 1);
    assert.deepEqual(
      { ...got[0], at: undefined, id: undefined, tx_id: undefined },
      {
        type: 'wallet_low',
        merchant_id: m,
        currency: 'EUR',
        balance: 4_000,
        threshold: 5_000,
        at: undefined,
        id: undefined,
        tx_id: undefined,
      },
    );
    await run([{ type: 'payin', amount: 20_000 }]); // back to 22,000: re-armed
    await run([{ type: 'payout', amount: 19_000 }]); // 3,000: second dip
    got = await alerts();
    assert.equal(got.length, 2);
    assert.equal(got[1]!.balance, 3_000);
    const metric = await registry.getSingleMetricAsString('rill_alerts_emitted_total');
    assert.match(metric, /rill_alerts_emitted_total\{type="wallet_low"\} 2/);
  } finally {
    await worker.stop();
  }
});
