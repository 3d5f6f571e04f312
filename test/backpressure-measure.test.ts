// What the load shedder measures, against real Redis: entries waiting in the pipeline (lag +
// pending of each stage's and sink's group, the whole stream for one whose group does not exist
// yet, retries in delay sets) and Redis memory against maxmemory or the configured budget.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { loadTopology } from '../core/topology/load.ts';
import { loadSampler, memoryShareOf, pipelineKeys } from '../ingest/backpressure/measure.ts';
import { TOPOLOGY_FILE } from '../ingest/testing.ts';

let inst: TestInstance;
const topology = loadTopology(TOPOLOGY_FILE);

before(async () => {
  inst = await createInstance('bp-measure');
});
after(async () => {
  await inst?.cleanup();
});

async function add(stream: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await inst.redis.xadd(stream, '*', 'tx', `t${i}`);
}

test("waiting entries: lag + pending of the pipeline's groups, never-read streams whole, delayed retries", async () => {
  const keys = pipelineKeys(topology, inst.keys);
  const inputs = new Set([...Object.values(topology.stages), ...Object.values(topology.sinks)].map((c) => c.input));
  const read = Object.keys(topology.topics).filter((t) => inputs.has(t));
  assert.ok(read.length < Object.keys(topology.topics).length, 'the shipped topology has a topic nothing reads');
  assert.equal(keys.streams.length, read.length * 8 * 4, 'every read topic, partition and lane');
  assert.equal(keys.delaySets.length, Object.keys(topology.stages).length * 8);
  assert.deepEqual(keys.streams.find((x) => x.key === inst.keys.lane('validated', 3, 'low'))?.readers, ['risk']);
  const sample = loadSampler(inst.redis, keys, undefined);
  assert.equal((await sample()).waiting, 0, 'nothing yet (no key exists)');

  const s1 = inst.keys.lane('transactions', 1, 'normal');
  const s2 = inst.keys.lane('transactions', 2, 'critical');
  const s3 = inst.keys.lane('validated', 5, 'high');
  await add(s1, 10);
  await add(s2, 10);
  await add(s3, 5);
  assert.equal((await sample()).waiting, 25, 'no groups yet: XLEN per stream');

  // the reader's group exists: 4 delivered (pending), 6 still lag; then 3 acknowledged
  await inst.redis.xgroup('CREATE', s1, 'validate', '0');
  const got = (await inst.redis.xreadgroup('GROUP', 'validate', 'c1', 'COUNT', 4, 'STREAMS', s1, '>')) as [string, [string, string[]][]][];
  assert.equal(got[0]![1].length, 4);
  assert.equal((await sample()).waiting, 25);
  await inst.redis.xack(s1, 'validate', ...got[0]![1].slice(0, 3).map(([id]) => id));
  assert.equal((await sample()).waiting, 22);

  // groups outside the topology do not count, whatever their lag; the missing reader still does
  await inst.redis.xgroup('CREATE', s1, 'debugging', '0');
  await inst.redis.xgroup('CREATE', s2, 'debugging', '0');
  assert.equal((await sample()).waiting, 22);
  // nor does a topic no stage or sink reads
  const unread = Object.keys(topology.topics).find((t) => !inputs.has(t))!;
  await add(inst.keys.lane(unread, 0, 'low'), 7);
  assert.equal((await sample()).waiting, 22);

  // retries waiting in a stage's delay set are on their way too
  await inst.redis.zadd(inst.keys.delay('risk', 6), 1, 'a', 2, 'b', 3, 'c');
  assert.equal((await sample()).waiting, 25);
});

test('memory share: maxmemory, else the budget, else half the system memory, else unknown', async () => {
  assert.equal(memoryShareOf('# Memory\r\nused_memory:500\r\nmaxmemory:1000\r\n', 4000), 0.5);
  assert.equal(memoryShareOf('# Memory\r\nused_memory:500\r\nmaxmemory:0\r\n', 4000), 0.125);
  assert.equal(memoryShareOf('# Memory\r\nused_memory:500\r\nmaxmemory:0\r\n', undefined), undefined);
  // no maxmemory and no budget: half of the machine's memory, never unbounded
  assert.equal(memoryShareOf('# Memory\r\nused_memory:500\r\ntotal_system_memory:8000\r\nmaxmemory:0\r\n', undefined), 0.125);

  const info = await inst.redis.info('memory');
  const used = Number(/^used_memory:(\d+)/m.exec(info)![1]);
  const max = Number(/^maxmemory:(\d+)/m.exec(info)![1]);
  const none = { streams: [], delaySets: [] };
  const share = (await loadSampler(inst.redis, none, used * 4)()).memoryShare;
  assert.ok(share !== undefined && share > 0 && share < 1, `share ${share}`);
  if (max === 0) {
    assert.ok(Math.abs(share - 0.25) < 0.1, `against the budget: ${share}`);
    // no budget: against half of what Redis reports as the system's memory
    const system = Number(/^total_system_memory:(\d+)/m.exec(info)![1]);
    const fallback = (await loadSampler(inst.redis, none, undefined)()).memoryShare;
    assert.ok(fallback !== undefined && Math.abs(fallback - used / (system / 2)) < 0.01, `against half the system memory: ${fallback}`);
  }
});
