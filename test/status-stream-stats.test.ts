// Stream statistics (core/observability/stream-stats.ts) on hand-made streams: lengths, lag and
// pending per group summed over partitions, acked progress, dead letters and delay sets, the
// upper-bound lag where Redis cannot tell (after XDEL), and the gauges the collector keeps.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { ENGINE_TOPOLOGY } from './helpers/topology-file.ts';
import { createRegistry } from '../core/metrics.ts';
import { loadTopology } from '../core/topology/load.ts';
import { collectStreamStats, startStreamStats } from '../core/observability/stream-stats.ts';
import type { StreamStats } from '../core/observability/stream-stats.ts';

let inst: TestInstance;
const topology = loadTopology(ENGINE_TOPOLOGY); // transactions → validate → validated → postgres, 8 partitions

before(async () => {
  inst = await createInstance('streamstats');
  const k = inst.keys;
  // transactions/normal: 10 entries in partition 0, 5 in partition 3
  const add = async (key: string, n: number) => {
    for (let i = 0; i < n; i++) await inst.redis.xadd(key, '*', 'tx', `t${i}`);
  };
  await add(k.lane('transactions', 0, 'normal'), 10);
  await add(k.lane('transactions', 3, 'normal'), 5);
  await add(k.lane('transactions', 3, 'critical'), 2);
  // validate: reads 4 in partition 0 and acks 1; reads 5 in partition 3 and acks all
  await inst.redis.xgroup('CREATE', k.lane('transactions', 0, 'normal'), 'validate', '0');
  await inst.redis.xgroup('CREATE', k.lane('transactions', 3, 'normal'), 'validate', '0');
  await inst.redis.xgroup('CREATE', k.lane('transactions', 3, 'critical'), 'validate', '0');
  const read = async (key: string, n: number) =>
    ((await inst.redis.xreadgroup('GROUP', 'validate', 'c1', 'COUNT', n, 'STREAMS', key, '>')) as [string, [string, string[]][]][])[0]![1].map(([id]) => id);
  const ids0 = await read(k.lane('transactions', 0, 'normal'), 4);
  await inst.redis.xack(k.lane('transactions', 0, 'normal'), 'validate', ids0[0]!);
  const ids3 = await read(k.lane('transactions', 3, 'normal'), 5);
  await inst.redis.xack(k.lane('transactions', 3, 'normal'), 'validate', ...ids3);
  // a second group that nobody declared (a debugging reader): reported too
  await inst.redis.xgroup('CREATE', k.lane('transactions', 0, 'normal'), 'debug', '$');
  // dead letters and retries waiting
  await add(k.deadLetter('validate', 1), 3);
  await add(k.deadLetter('validate', 6), 1);
  await add(k.deadLetter('postgres', 2), 2);
  await inst.redis.zadd(k.delay('validate', 5), Date.now() + 60_000, 'a', Date.now() + 60_000, 'b');
});
after(async () => {
  await inst?.cleanup();
});

function lane(s: StreamStats, topic: string, name: string) {
  const l = s.lanes.find((x) => x.topic === topic && x.lane === name);
  assert.ok(l, `${topic}/${name}`);
  return l;
}

test('sums over partitions: length, lag, pending, acked; dead letters and delay sets', async () => {
  const s = await collectStreamStats(inst.redis, inst.keys, topology);
  assert.equal(s.lanes.length, 2 * 4, 'every topic × lane, also the empty ones');
  const normal = lane(s, 'transactions', 'normal');
  assert.equal(normal.length, 15);
  assert.equal(normal.entriesAdded, null, 'only with entriesAdded: true');
  assert.deepEqual(normal.groups, [
    { group: 'debug', lag: 0, lagExact: true, pending: 0, acked: null }, // created at $: entries-read unknown
    { group: 'validate', lag: 6, lagExact: true, pending: 3, acked: 6 }, // 6 + 0 unread; 3 + 0 pending; (4−3) + (5−0) acked
  ]);
  const critical = lane(s, 'transactions', 'critical');
  assert.equal(critical.length, 2);
  assert.deepEqual(
    critical.groups,
    [{ group: 'validate', lag: 2, lagExact: true, pending: 0, acked: null }],
    'never read: entries-read unknown without entries-added',
  );
  assert.deepEqual(lane(s, 'validated', 'low'), { topic: 'validated', lane: 'low', length: 0, entriesAdded: null, groups: [] });
  assert.deepEqual(s.deadLetters, { validate: 4, postgres: 2 });
  assert.deepEqual(s.delaySets, { validate: 2 });
  assert.ok(Math.abs(s.at - Date.now()) < 5_000);

  const withAdded = await collectStreamStats(inst.redis, inst.keys, topology, { entriesAdded: true });
  assert.equal(lane(withAdded, 'transactions', 'normal').entriesAdded, 15);
  assert.equal(lane(withAdded, 'transactions', 'normal').length, 15);
  assert.deepEqual(lane(withAdded, 'transactions', 'critical').groups[0]!.acked, 0, 'entries-added − lag: nothing read yet');
  assert.equal(lane(withAdded, 'validated', 'normal').entriesAdded, 0);
});

test('after XDEL inside the unread range Redis cannot tell the lag: an upper bound, marked inexact', async () => {
  const key = inst.keys.lane('transactions', 0, 'normal');
  const unread = (await inst.redis.xrange(key, '-', '+')).slice(5).map(([id]) => id); // 6 unread entries
  await inst.redis.xdel(key, unread[2]!); // really 5 unread now
  const s = await collectStreamStats(inst.redis, inst.keys, topology, { entriesAdded: true });
  const v = lane(s, 'transactions', 'normal').groups.find((g) => g.group === 'validate')!;
  assert.equal(v.lagExact, false);
  assert.ok(v.lag >= 5 && v.lag <= lane(s, 'transactions', 'normal').length, `5 ≤ ${v.lag} ≤ length`);
  const plain = await collectStreamStats(inst.redis, inst.keys, topology);
  const p = lane(plain, 'transactions', 'normal').groups.find((g) => g.group === 'validate')!;
  assert.equal(p.lagExact, false);
  assert.ok(p.lag >= 5 && p.lag <= 14, `without entries-added: at most the length (${p.lag})`);
});

test('the collector keeps the gauges current on its timer', async () => {
  const registry = createRegistry({ defaults: false });
  const c = startStreamStats({ redis: inst.redis, keys: inst.keys, topology, registry, logger: pino({ level: 'silent' }), intervalMs: 50 });
  try {
    const value = async (name: string, labels: Record<string, string>) => {
      const v = (await registry.getSingleMetric(name)?.get())?.values ?? [];
      return v.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val))?.value;
    };
    await waitFor('the first sample', async () => (await value('rill_stream_length', { topic: 'transactions', lane: 'normal' })) !== undefined);
    assert.equal(await value('rill_stream_length', { topic: 'transactions', lane: 'normal' }), 14);
    assert.equal(await value('rill_stream_length', { topic: 'validated', lane: 'low' }), 0);
    assert.equal(await value('rill_group_pending', { topic: 'transactions', lane: 'normal', group: 'validate' }), 3);
    assert.ok((await value('rill_group_lag', { topic: 'transactions', lane: 'normal', group: 'validate' }))! >= 5);
    assert.equal(await value('rill_dead_letters', { stage: 'validate' }), 4);
    assert.equal(await value('rill_dead_letters', { stage: 'postgres' }), 2);
    assert.equal(await value('rill_delay_set_size', { stage: 'validate' }), 2);
    assert.equal(await value('rill_live_workers', { component: 'validate' }), 0);

    await inst.redis.xadd(inst.keys.deadLetter('validate', 7), '*', 'tx', 'late');
    await waitFor('the next sample', async () => (await value('rill_dead_letters', { stage: 'validate' })) === 5);
  } finally {
    await c.stop();
  }
});
