// The Prometheus text exposition of a worker (stages, sink, heartbeat, stream gauges) and of an
// ingest, after traffic, passes `promtool check metrics`: it parses, and Rill's own metrics pass
// the linter (names, units, _total only on counters, help text).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { ENGINE_TOPOLOGY } from './helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { entryArgs } from '../core/entry.ts';
import { partitionOf } from '../core/partition.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { loadTopology } from '../core/topology/load.ts';
import { startWorkerObservability } from '../core/observability/worker-observability.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { createApiKey } from '../core/api-keys.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { startWorker } from '../cli/start-worker.ts';
import type { Worker } from '../cli/start-worker.ts';

/**
 * Lint findings on prom-client's default Node.js metrics, not on Rill's: prom-client names these
 * gauges *_total, a suffix Prometheus reserves for counters. Nothing else may be reported.
 */
const PROM_CLIENT_DEFAULTS = new Set(['rill_nodejs_active_handles_total', 'rill_nodejs_active_requests_total', 'rill_nodejs_active_resources_total']);

function checkMetrics(text: string): { code: number; problems: string[]; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    assert.fail('promtool not found on PATH: install Debian\'s "prometheus" package (apt-get install -y prometheus), which provides /usr/bin/promtool');
  }
  if (r.error) throw r.error;
  const output = `${r.stdout}${r.stderr}`;
  return {
    code: r.status ?? 1,
    problems: output
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean),
    output,
  };
}

/** Exit 0, or exit 3 (lint findings) with only the known prom-client default-metric findings. Exit 1 = unparsable. */
function assertPasses(text: string, what: string): void {
  const r = checkMetrics(text);
  if (r.code === 0) return;
  assert.equal(r.code, 3, `${what}: promtool check metrics failed to parse the exposition:\n${r.output}`);
  const ours = r.problems.filter((p) => !PROM_CLIENT_DEFAULTS.has(p.split(' ')[0]!));
  assert.deepEqual(ours, [], `${what}: lint findings on Rill's metrics`);
}

let inst: TestInstance;
let worker: Worker | undefined;
let observability: { stop(): Promise<void> } | undefined;
let ingest: TestIngest | undefined;
before(async () => {
  inst = await createInstance('metricsexpo');
});
after(async () => {
  await ingest?.server.close();
  await observability?.stop();
  await worker?.stop();
  await inst?.cleanup();
});

test('promtool check metrics accepts the worker and ingest expositions after traffic', async () => {
  const topology = loadTopology(ENGINE_TOPOLOGY);
  const registry = createRegistry();
  const logger = createLogger('silent');
  worker = await startWorker({ env: inst.env, topology, registry, logger });
  observability = startWorkerObservability({
    redis: inst.redis,
    keys: inst.keys,
    topology,
    id: `expo-${process.pid}`,
    host: 'test',
    components: worker.components,
    registry,
    logger,
    heartbeatMs: 200,
    streamStatsMs: 200,
  });
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(8);
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    topology,
    Array.from({ length: 100 }, (_, i) => sampleBody(i, merchants)),
  );
  for (let i = 0; i < 100; i++) await appender.append(sampleBody(i, merchants));
  await appender.append({ type: 'payin', merchant_id: 'm_x', amount: 100, currency: 'ZAR' }); // failed: currency_not_allowed
  // a dead letter: an entry validate cannot read (its body is not JSON)
  await inst.redis.xadd(
    inst.keys.lane(topology.ingest.topic, partitionOf('m_x', 8), 'normal'),
    '*',
    ...entryArgs({ txId: 'tx_unreadable', event: 'not json' }),
  );

  ingest = await startTestIngest(inst, { topology });
  const key = await createApiKey(inst.pool, { merchantId: 'm_http' });
  const post = (body: unknown) =>
    fetch(`${ingest!.url}/v1/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
    });
  const payin = await post({ type: 'payin', merchant_id: 'm_http', amount: 10, currency: 'USD' });
  assert.equal(payin.status, 202);
  const payinId = ((await payin.json()) as { id: string }).id;
  assert.equal((await post({ type: 'refund', merchant_id: 'm_http', amount: 10, currency: 'USD', reference: payinId })).status, 202);
  assert.equal((await post({ type: 'refund', merchant_id: 'm_http', amount: 10, currency: 'USD', reference: 'r-1' })).status, 422);
  assert.equal((await post({ type: 'nope' })).status, 400);
  assert.equal((await fetch(`${ingest.url}/metrics`)).status, 200);

  await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);
  let dead = 0;
  for (let p = 0; p < 8; p++) dead += await inst.redis.xlen(inst.keys.deadLetter('validate', p));
  assert.equal(dead, 1, 'the unreadable entry was dead-lettered (the ZAR payin was not)');
  await waitFor('the gauges to see the dead letters', async () =>
    new RegExp(`^rill_dead_letters\\{stage="validate"\\} ${dead}$`, 'm').test(await registry.metrics()),
  );

  const workerText = await registry.metrics();
  for (const family of [
    'rill_stage_events_total',
    'rill_stage_batch_duration_seconds_bucket',
    'rill_sink_rows_total',
    'rill_transactions_failed_total',
    'rill_end_to_end_latency_seconds_bucket',
    'rill_worker_heartbeat_timestamp_seconds',
    'rill_group_lag',
    'rill_live_workers',
  ]) {
    assert.match(workerText, new RegExp(`^${family}\\{`, 'm'), `the worker exposes ${family} samples`);
  }
  assert.match(workerText, /^rill_transactions_failed_total\{code="currency_not_allowed"\} 1$/m, 'the ZAR payin counted failed by its code');
  const ingestText = await ingest.registry.metrics();
  for (const family of ['rill_ingest_requests_total', 'rill_ingest_request_duration_seconds_bucket', 'rill_events_accepted_total']) {
    assert.match(ingestText, new RegExp(`^${family}\\{`, 'm'), `ingest exposes ${family} samples`);
  }
  assertPasses(workerText, 'worker');
  assertPasses(ingestText, 'ingest');
  // the generated reference (npm run docs) lists every metric a process really registers
  const reference = readFileSync(new URL('../docs/metrics.md', import.meta.url), 'utf8');
  const families = [...`${workerText}\n${ingestText}`.matchAll(/^# TYPE (rill_\w+) /gm)].map((m) => m[1]!);
  const undocumented = families.filter((f) => !/^rill_(process|nodejs)_/.test(f) && !reference.includes(`| \`${f}\` |`));
  assert.deepEqual(undocumented, [], 'metrics missing from docs/metrics.md (npm run docs)');
});

test('a broken exposition is caught (the check is real)', () => {
  const r = checkMetrics('# TYPE rill_x counter\nrill_x{a="1" 1\n');
  assert.notEqual(r.code, 0);
  const lint = checkMetrics('# HELP rill_y_total y\n# TYPE rill_y_total gauge\nrill_y_total 1\n');
  assert.equal(lint.code, 3);
  assert.match(lint.output, /non-counter metrics should not have "_total" suffix/);
});
