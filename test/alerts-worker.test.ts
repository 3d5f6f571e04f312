// The alerts sink wired into a worker (topology.yaml `type: alerts` sink): the ledger's low-balance
// alert reaches a Slack webhook once; a missing ${VAR} stops the worker at start.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { SHIPPED_TOPOLOGY, writeTopology } from './helpers/topology-file.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { ConfigError } from '../core/errors.ts';
import { EventAppender } from '../ingest/append/index.ts';
import type { TransactionBody } from '../ingest/validation.ts';
import { startWorker } from '../cli/start-worker.ts';

let inst: TestInstance;
let server: Server;
const bodies: { text: string }[] = [];
before(async () => {
  inst = await createInstance('alertsworker');
  server = createServer((req, res) => {
    let b = '';
    req.on('data', (c: Buffer) => (b += c.toString()));
    req.on('end', () => {
      bodies.push(JSON.parse(b) as { text: string });
      res.end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
});
after(async () => {
  server.closeAllConnections();
  server.close();
  await inst?.cleanup();
});

const notify = { type: 'alerts', input: 'alerts', webhooks: [{ name: 'ops', kind: 'slack', url: '${RILL_TEST_SLACK_URL}/hook' }] };

test("a worker runs the alerts sink: the ledger's low-balance alert reaches Slack once", async () => {
  process.env.RILL_TEST_SLACK_URL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // velocity rules alone: the streaming features could hold this test's payout for review
  const { topology } = writeTopology(
    { 'stages.ledger.config.low_balance': { default: 5_000 }, 'stages.risk.config.features': false, 'sinks.notify': notify },
    SHIPPED_TOPOLOGY,
  );
  const worker = await startWorker({ env: inst.env, topology, registry: createRegistry(), logger: createLogger('silent') });
  try {
    assert.ok(worker.components.includes('notify'));
    const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
    const m = 'm_worker_alert';
    await appender.append({ type: 'payin', amount: 10_000, merchant_id: m, currency: 'USD' } as TransactionBody);
    // the payout rides a higher lane: let the payin settle first
    await waitFor('the payin to settle', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);
    await appender.append({ type: 'payout', amount: 6_000, merchant_id: m, currency: 'USD' } as TransactionBody);
    await waitFor('the Slack message', () => bodies.length >= 1, 60_000);
    assert.match(bodies[0]!.text, /Low wallet balance\*: Merchant m_worker_alert: USD wallet at 40\.00 USD, under the 50\.00 USD threshold/);
  } finally {
    await worker.stop();
  }
  assert.equal(bodies.length, 1);
});

test('an unset ${VAR} in a webhook URL stops the worker at start', async () => {
  delete process.env.RILL_TEST_SLACK_URL;
  const { topology } = writeTopology({ 'sinks.notify': notify }, SHIPPED_TOPOLOGY);
  await assert.rejects(
    startWorker({ env: inst.env, topology, registry: createRegistry(), logger: createLogger('silent') }),
    (err: Error) => err instanceof ConfigError && err.message === 'sinks.notify.webhooks.0 (ops).url: environment variable RILL_TEST_SLACK_URL is not set',
  );
});
