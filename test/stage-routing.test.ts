// A stage routes its results by an event field: refunds and chargebacks go to their own topic
// (and sink), everything else to the stage's output.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { startWorker } from '../cli/start-worker.ts';

let inst: TestInstance;
before(async () => {
  inst = await createInstance('routing');
});
after(async () => {
  await inst?.cleanup();
});

test('results are routed by type to their own topic', async () => {
  const { topology } = writeTopology({
    'topics.reversals': { partitions: 8 },
    'stages.validate.routes': { by: 'type', to: { refund: 'reversals', chargeback: 'reversals' } },
    'sinks.reversals': { type: 'postgres', input: 'reversals', batch_rows: 100, max_wait: '20ms' },
  });
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(10);
  const byType = new Map<string, number>();
  // the refunds and chargebacks name payins ingest must know
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    topology,
    Array.from({ length: 400 }, (_, i) => sampleBody(i, merchants)),
  );
  for (let i = 0; i < 400; i++) {
    const body = sampleBody(i, merchants);
    byType.set(body.type, (byType.get(body.type) ?? 0) + 1);
    await appender.append(body);
  }
  const worker = await startWorker({ env: inst.env, topology, registry: createRegistry(), logger: createLogger('silent') });
  try {
    await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);
  } finally {
    await worker.stop();
  }
  const length = async (topic: string) => {
    let n = 0;
    for (let p = 0; p < 8; p++) for (const lane of topology.priorities) n += await inst.redis.xlen(inst.keys.lane(topic, p, lane.name));
    return n;
  };
  assert.equal(await length('reversals'), byType.get('refund')! + byType.get('chargeback')!);
  assert.equal(await length('validated'), byType.get('payin')! + byType.get('payout')!);
  const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
  assert.equal(Number(rows[0]!.n), 400);
});
