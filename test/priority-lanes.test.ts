// Priority lanes: a consumer drains higher lanes first, and the starvation guard (min_share) still
// moves a lower lane while higher ones are saturated. Events are queued before any worker starts;
// the order in which they reach Postgres (processed_at, one value per sink flush) is the evidence.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins } from './helpers/transactions.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import type { Topology } from '../core/topology/schema.ts';
import { EventAppender } from '../ingest/append/index.ts';
import type { TransactionBody } from '../ingest/validation.ts';
import { startWorker } from '../cli/start-worker.ts';

let inst: TestInstance;
before(async () => {
  inst = await createInstance('priority');
});
after(async () => {
  await inst?.cleanup();
});

async function queue(topology: Topology, counts: Record<TransactionBody['type'], number>): Promise<void> {
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(50);
  const bodies: TransactionBody[] = [];
  for (const [type, n] of Object.entries(counts) as [TransactionBody['type'], number][]) {
    for (let i = 0; i < n; i++) bodies.push({ type, merchant_id: merchants[i % 50]!, amount: 100 + i, currency: 'USD', reference: `r${i}` });
  }
  // the refunds and chargebacks name payins ingest must know (no ledger here: nothing settles them)
  await registerReferencedPayins(inst.redis, inst.keys, topology, bodies);
  for (let i = 0; i < bodies.length; i += 1_000) await Promise.all(bodies.slice(i, i + 1_000).map((b) => appender.append(b)));
}

async function drain(topology: Topology): Promise<void> {
  const worker = await startWorker({ env: inst.env, topology, registry: createRegistry(), logger: createLogger('silent') });
  try {
    await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 120_000, 100);
  } finally {
    await worker.stop();
  }
}

// payin → low, payout → normal, refund/chargeback → critical
const LANES = [
  { name: 'critical', types: ['chargeback', 'refund'], min_share: 0 },
  { name: 'high', types: [], min_share: 0 },
  { name: 'normal', types: ['payout'], min_share: 0 },
  { name: 'low', types: ['payin'], min_share: 0.05 },
];

test('500 critical events queued behind 20,000 others reach Postgres before 10% of the others', async (t) => {
  await inst.pool.query('TRUNCATE transactions');
  const { topology } = writeTopology({ priorities: LANES, 'sinks.postgres.batch_rows': 500 });
  await queue(topology, { payin: 10_000, payout: 10_000, refund: 250, chargeback: 250 });
  await drain(topology);
  const { rows } = await inst.pool.query<{ critical: string; others_before: string; total: string }>(`
    WITH last_critical AS (SELECT max(processed_at) AS at FROM transactions WHERE type IN ('refund', 'chargeback'))
    SELECT (SELECT count(*) FROM transactions WHERE type IN ('refund', 'chargeback')) AS critical,
           (SELECT count(*) FROM transactions, last_critical WHERE type IN ('payin', 'payout') AND processed_at <= last_critical.at) AS others_before,
           (SELECT count(*) FROM transactions) AS total`);
  const r = rows[0]!;
  assert.equal(Number(r.total), 20_500);
  assert.equal(Number(r.critical), 500);
  assert.ok(Number(r.others_before) < 2_000, `others that reached Postgres no later than the last critical one: ${r.others_before} (must be < 10% of 20,000)`);
  t.diagnostic(`others in Postgres by the time the last critical event was: ${r.others_before} of 20,000`);
});

test('under a critical flood the low lane still moves at its min_share', async (t) => {
  await inst.pool.query('TRUNCATE transactions');
  const { topology } = writeTopology({ priorities: LANES, 'stages.validate.batch': 500, 'sinks.postgres.batch_rows': 500 });
  await queue(topology, { payin: 2_000, payout: 0, refund: 10_000, chargeback: 10_000 });
  await drain(topology);
  const { rows } = await inst.pool.query<{ low_before: string }>(`
    WITH mark AS (SELECT processed_at AS at FROM transactions WHERE type IN ('refund', 'chargeback') ORDER BY processed_at OFFSET 9999 LIMIT 1)
    SELECT count(*) AS low_before FROM transactions, mark WHERE type = 'payin' AND processed_at <= mark.at`);
  const low = Number(rows[0]!.low_before);
  // 5% of each 500-entry read is 25 low events per 475 critical: about 526 by the 10,000th critical
  assert.ok(low >= 400, `the low lane kept moving: ${low} low events by the 10,000th critical (expected ≥ 400)`);
  assert.ok(low < 2_000, `the critical lane still came first: ${low} of 2,000 low events by then`);
  t.diagnostic(`low-lane events in Postgres by the 10,000th critical one: ${low} (min_share 0.05)`);
});
