// `rill replay` over a real pipeline (the engine topology: validate → postgres sink): a worker
// consumes N events and stops; a dry run says N and changes nothing; a replay from a time between
// two batches counts only the later one; the real replay says N, and a new worker processes all N
// again in validate while the sink still holds exactly N rows (effects are idempotent by tx id).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { outstanding } from './helpers/pipeline.ts';
import { ENGINE_TOPOLOGY } from './helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { waitFor } from './helpers/wait.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import type { Registry } from '../core/metrics.ts';
import { loadTopology } from '../core/topology/load.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { startWorker } from '../cli/start-worker.ts';
import type { Worker } from '../cli/start-worker.ts';
import { replayCommand } from '../cli/commands/replay.ts';
import { runCaptured } from './helpers/cli.ts';
import type { CommandRun } from './helpers/cli.ts';

const topology = loadTopology(ENGINE_TOPOLOGY);
const N1 = 24;
const N2 = 16;
const N = N1 + N2;

let inst: TestInstance;
let worker: Worker | undefined;

before(async () => {
  inst = await createInstance('replay-cli');
});
after(async () => {
  await worker?.stop();
  await inst?.cleanup();
});

function replay(...argv: string[]): Promise<CommandRun> {
  return runCaptured(replayCommand, argv, { env: { ...process.env, ...inst.vars, RILL_TOPOLOGY: ENGINE_TOPOLOGY } });
}

async function runWorker(registry: Registry): Promise<void> {
  worker = await startWorker({ env: { ...inst.env, topologyPath: ENGINE_TOPOLOGY }, topology, registry, logger: createLogger('silent'), leaderJobs: false });
}

async function stageOk(registry: Registry): Promise<number> {
  const m = await registry.getSingleMetric('rill_stage_events_total')?.get();
  return (m?.values ?? []).filter((v) => v.labels.stage === 'validate' && v.labels.outcome === 'ok').reduce((n, v) => n + v.value, 0);
}

async function rows(ids: readonly string[]): Promise<{ distinct: number; total: number }> {
  const { rows: r } = await inst.pool.query<{ distinct: string; total: string }>(
    'SELECT count(DISTINCT id) AS distinct, count(*) AS total FROM transactions WHERE id = ANY($1)',
    [ids],
  );
  return { distinct: Number(r[0]!.distinct), total: Number(r[0]!.total) };
}

/** The validate group's last-delivered id and entries-read on every lane stream. */
async function groupState(): Promise<string[]> {
  const out: string[] = [];
  for (let p = 0; p < topology.topics.transactions!.partitions; p++) {
    for (const lane of topology.priorities) {
      const key = inst.keys.lane('transactions', p, lane.name);
      if (!(await inst.redis.exists(key))) continue;
      for (const g of (await inst.redis.xinfo('GROUPS', key)) as unknown[][]) {
        const m = new Map<string, unknown>();
        for (let i = 0; i + 1 < g.length; i += 2) m.set(String(g[i]), g[i + 1]);
        if (m.get('name') === 'validate') out.push(`${key} ${String(m.get('last-delivered-id'))} ${String(m.get('entries-read'))} ${String(m.get('lag'))}`);
      }
    }
  }
  return out;
}

const drained = () => waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);

test('rill replay: dry run, replay from a time and from earliest, idempotent effects', async () => {
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(10);
  const ids: string[] = [];
  // the refunds and chargebacks of the mix name payins ingest must know
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    topology,
    Array.from({ length: N }, (_, i) => sampleBody(i, merchants)),
  );
  for (let i = 0; i < N1; i++) ids.push((await appender.append(sampleBody(i, merchants))).id);
  await delay(5);
  const between = Date.now();
  await delay(5);
  for (let i = N1; i < N; i++) ids.push((await appender.append(sampleBody(i, merchants))).id);

  // a worker consumes all N, then stops
  const first = createRegistry({ defaults: false });
  await runWorker(first);
  await drained();
  await waitFor('N rows', async () => (await rows(ids)).total === N, 30_000);
  assert.equal(await stageOk(first), N);
  await worker!.stop();
  worker = undefined;

  // refusals: one line, exit 1
  const notAGroup = await replay('--group', 'nope', '--from', 'earliest');
  assert.equal(notAGroup.code, 1);
  assert.match(notAGroup.stderr, /^rill replay: "nope" is not a stage or sink of the topology/);
  assert.equal(notAGroup.stderr.trim().split('\n').length, 1);
  const wrongTopic = await replay('--group', 'validate', '--from', 'earliest', '--topic', 'validated');
  assert.equal(wrongTopic.code, 1);
  assert.match(wrongTopic.stderr, /^rill replay: stage validate reads topic "transactions", not "validated"\n$/);
  assert.match((await replay('--group', 'validate')).stderr, /^rill replay: missing --from/);
  assert.match((await replay('--group', 'validate', '--from', 'now')).stderr, /^rill replay: --from now would replay nothing/);
  assert.match((await replay('--group', 'validate', '--from', 'soon')).stderr, /^rill replay: --from "soon": expected/);

  // dry runs: say how many, change nothing
  const before = await groupState();
  assert.ok(before.length > 0);
  const dry = await replay('--group', 'validate', '--from', 'earliest', '--dry-run');
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`\\b${N} entries would be delivered again\\b`));
  assert.match(dry.stdout, /dry run: nothing changed/);
  assert.match(dry.stdout, /pending .* unaffected/);
  assert.match(dry.stdout, /idempotent by transaction id/);
  const fromTime = await replay('--group', 'validate', '--from', String(between), '--topic', 'transactions', '--dry-run');
  assert.equal(fromTime.code, 0, fromTime.stderr);
  assert.match(fromTime.stdout, new RegExp(`\\b${N2} entries would be delivered again\\b`));
  const sink = await replay('--group', 'postgres', '--from', 'earliest', '--dry-run');
  assert.match(sink.stdout, /sink postgres on topic validated/);
  assert.match(sink.stdout, new RegExp(`\\b${N} entries would be delivered again\\b`));
  assert.deepEqual(await groupState(), before, 'a dry run changes nothing');
  assert.equal(await outstanding(inst.redis, inst.keys, topology), 0);

  // the real replay
  const real = await replay('--group', 'validate', '--from', 'earliest');
  assert.equal(real.code, 0, real.stderr);
  assert.match(real.stdout, new RegExp(`\\b${N} entries will be delivered again\\b`));
  assert.match(real.stdout, /pending .* unaffected/);
  assert.notDeepEqual(await groupState(), before);
  assert.equal(await outstanding(inst.redis, inst.keys, topology), N, 'Redis lag counts the replayed entries');

  // a new worker: validate processes all N again; the sink still has exactly N rows
  const second = createRegistry({ defaults: false });
  await runWorker(second);
  await waitFor('validate to process the replay', async () => (await stageOk(second)) >= N, 60_000);
  await drained();
  assert.equal(await stageOk(second), N);
  assert.deepEqual(await rows(ids), { distinct: N, total: N });
  const { rows: all } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
  assert.equal(Number(all[0]!.n), N);

  // once caught up, a replay from the future has nothing to deliver again
  const none = await replay('--group', 'validate', '--from', String(Date.now() + 60_000), '--dry-run');
  assert.match(none.stdout, /\b0 entries would be delivered again\b/);
});
