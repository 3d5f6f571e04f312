// One event's trace, followed with an in-memory exporter: it starts at ingest and continues, span
// by span (each the child of the one before), through every stage and the sink.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { SHIPPED_TOPOLOGY } from './helpers/topology-file.ts';
import { installTestTracing, shutdownTracing } from '../core/tracing.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { loadTopology } from '../core/topology/load.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { createApiKey } from '../core/api-keys.ts';
import { startWorker } from '../cli/start-worker.ts';
import type { Worker } from '../cli/start-worker.ts';

const exporter = new InMemorySpanExporter();
let inst: TestInstance;
let ingest: TestIngest;
let worker: Worker;

before(async () => {
  installTestTracing(exporter);
  inst = await createInstance('trace');
  const topology = loadTopology(SHIPPED_TOPOLOGY);
  ingest = await startTestIngest(inst, { topology });
  worker = await startWorker({ env: inst.env, topology, registry: createRegistry(), logger: createLogger('silent') });
});
after(async () => {
  await worker?.stop();
  await ingest?.server.close();
  await inst?.cleanup();
  await shutdownTracing();
});

test('a trace runs from ingest through validate, risk, ledger and the sink', async (t) => {
  const key = await createApiKey(inst.pool, { merchantId: 'm_trace' });
  const res = await fetch(`${ingest.url}/v1/transactions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'payin', merchant_id: 'm_trace', amount: 1234, currency: 'USD' }),
  });
  assert.equal(res.status, 202);
  const { id } = (await res.json()) as { id: string };
  await waitFor('the row in Postgres', async () => (await inst.pool.query('SELECT 1 FROM transactions WHERE id = $1', [id])).rowCount === 1, 30_000);
  const spans = await waitFor(
    'the sink span',
    () => {
      const all = exporter.getFinishedSpans().filter((s) => s.attributes['rill.tx_id'] === id);
      return all.some((s) => s.name === 'sink postgres') ? all : undefined;
    },
    10_000,
  );

  const byName = new Map<string, ReadableSpan>(spans.map((s) => [s.name, s]));
  const chain = ['ingest', 'stage validate', 'stage risk', 'stage ledger', 'sink postgres'];
  // the webhook-events stage (reading the settled topic beside the sink) may add its span too
  assert.deepEqual([...byName.keys()].filter((n) => n !== 'stage webhook-events').sort(), [...chain].sort());
  const traceId = byName.get('ingest')!.spanContext().traceId;
  for (let i = 1; i < chain.length; i++) {
    const span = byName.get(chain[i]!)!;
    const parent = byName.get(chain[i - 1]!)!;
    assert.equal(span.spanContext().traceId, traceId, `${chain[i]} is in the ingest span's trace`);
    assert.equal(span.parentSpanContext?.spanId, parent.spanContext().spanId, `${chain[i]} is the child of ${chain[i - 1]}`);
  }
  assert.equal(byName.get('stage ledger')!.attributes['rill.outcome'], 'ok');
  t.diagnostic(`${chain.map((n) => `${n} ${byName.get(n)!.spanContext().spanId}`).join(' → ')} (trace ${traceId})`);
});
