// Redis as the hot tier: `retention.hot` trims what every group acknowledged once it is older than
// the window (0s: at once, for intermediate topics), `max_bytes` caps a whole topic's memory by
// trimming the same share of every lane stream from its oldest end, and each topic is passed at its
// own pace. Nothing unacknowledged is ever trimmed. Each test has its own instance: exact counts.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { waitFor } from './helpers/wait.ts';
import { createRegistry } from '../core/metrics.ts';
import type { Registry } from '../core/metrics.ts';
import type { Topology } from '../core/topology/schema.ts';
import { startRetention } from '../core/retention/retention.ts';
import type { RetentionHandle } from '../core/retention/retention.ts';
import { byteCapLen, hotWindow } from '../core/retention/plan.ts';
import { parseTopology } from '../core/topology/load.ts';

let inst: TestInstance | undefined;
let retention: RetentionHandle | undefined;
afterEach(async () => {
  await retention?.stop();
  retention = undefined;
  await inst?.cleanup();
  inst = undefined;
});

function start(label: string, topology: Topology, o: { intervalMs?: number; slowestMs?: number; now?: () => number } = {}) {
  return createInstance(label).then((i) => {
    inst = i;
    const registry = createRegistry({ defaults: false });
    retention = startRetention({
      redis: i.redis,
      keys: i.keys,
      topology,
      registry,
      logger: pino({ level: 'silent' }),
      intervalMs: o.intervalMs ?? 3_600_000,
      ...o,
    });
    return { inst: i, registry, retention };
  });
}

/** Groups of every declared consumer on one stream (so retention may trim it), read up to `read` and acknowledged up to `ack`. */
async function consume(redis: Redis, stream: string, groups: readonly string[], read: number, ack: number): Promise<string[]> {
  const all = (await redis.xrange(stream, '-', '+')).map(([id]) => id);
  for (const g of groups) {
    await redis.xgroup('CREATE', stream, g, '0', 'MKSTREAM').catch(() => undefined);
    if (read) await redis.xreadgroup('GROUP', g, 'c1', 'COUNT', read, 'STREAMS', stream, '>');
    if (ack) await redis.xack(stream, g, ...all.slice(0, ack));
  }
  return all;
}

async function fill(redis: Redis, stream: string, n: number, bytes = 200): Promise<void> {
  const pipe = redis.pipeline();
  for (let i = 0; i < n; i++) pipe.xadd(stream, '*', 'tx', `tx_${i}`, 'ev', 'x'.repeat(bytes));
  await pipe.exec();
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return m.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
}

test('schema: hot and max_bytes parse (sizes in kb/mb/gb), max_age is the older name of hot, a bad size names its line', () => {
  const t = writeTopology({
    'topics.validated.retention': { hot: '0s', max_bytes: '64mb' },
    'topics.transactions.retention': { hot: '15m', max_age: '1m' },
  }).topology;
  assert.deepEqual(t.topics.validated!.retention, { hot: 0, max_bytes: 64 * 1024 ** 2 });
  assert.equal(hotWindow(t.topics.transactions!.retention!), 60_000, 'the shorter of hot and max_age');
  assert.throws(
    () =>
      parseTopology(
        'version: 1\ningest: { topic: t }\npriorities: [{ name: normal }]\ntopics:\n  t: { partitions: 1, retention: { max_bytes: 12 parsecs } }\n',
        'x.yaml',
      ),
    /x\.yaml:5:\d+.*max_bytes: expected a size like 512kb, 64mb, 2gb or whole bytes/s,
  );
});

test('hot 0s: every acknowledged entry goes at once; pending and unread ones stay', async () => {
  const { topology } = writeTopology({ 'topics.validated.retention': { hot: '0s' } });
  const { inst, retention } = await start('rethot0', topology);
  const stream = inst.keys.lane('validated', 3, 'normal');
  await fill(inst.redis, stream, 10);
  const all = await consume(inst.redis, stream, ['postgres'], 6, 4); // 0-3 acknowledged, 4-5 pending, 6-9 unread
  const r = await retention.runOnce();
  assert.equal(r.trimmed, 4);
  assert.deepEqual(
    (await inst.redis.xrange(stream, '-', '+')).map(([id]) => id),
    all.slice(4),
  );
  await inst.redis.xack(stream, 'postgres', ...all.slice(4, 6));
  assert.equal((await retention.runOnce()).trimmed, 2);
  assert.equal(await inst.redis.xlen(stream), 4, 'the unread ones stay');
});

test('hot window: acknowledged entries older than it go, newer ones stay', async () => {
  const { topology } = writeTopology({ 'topics.validated.retention': { hot: '10s' } });
  let clock = Date.now();
  const { inst, retention } = await start('rethotw', topology, { now: () => clock });
  const stream = inst.keys.lane('validated', 1, 'high');
  await fill(inst.redis, stream, 5);
  clock = Date.now() + 10_001; // the first five are over 10 s old now (they may share this millisecond)
  await inst.redis.xadd(stream, `${clock}-0`, 'tx', 'new', 'ev', '{}');
  const all = await consume(inst.redis, stream, ['postgres'], 6, 6);
  assert.equal((await retention.runOnce()).trimmed, 5);
  assert.deepEqual(
    (await inst.redis.xrange(stream, '-', '+')).map(([id]) => id),
    all.slice(5),
  );
});

test('max_bytes: the whole topic is held to its cap, the same share of every lane stream from its oldest end; an unacknowledged entry holds its stream', async () => {
  const { topology } = writeTopology({ 'topics.validated.retention': { max_bytes: '48kb' } });
  const { inst, retention } = await start('retbytes', topology);
  const streams = [inst.keys.lane('validated', 0, 'normal'), inst.keys.lane('validated', 5, 'normal'), inst.keys.lane('validated', 7, 'low')];
  const sizes = [300, 200, 100];
  const ids: string[][] = [];
  for (const [i, s] of streams.entries()) {
    await fill(inst.redis, s, sizes[i]!);
    // every entry acknowledged but the first of the last stream (pending)
    ids.push(await consume(inst.redis, s, ['postgres'], sizes[i]!, i === 2 ? 0 : sizes[i]!));
    if (i === 2) await inst.redis.xack(s, 'postgres', ...ids[2]!.slice(1));
  }
  const bytes = await Promise.all(streams.map(async (s) => Number(await inst.redis.call('MEMORY', 'USAGE', s))));
  const total = bytes.reduce((a, b) => a + b, 0);
  const cap = 48 * 1024;
  assert.ok(total > 2 * cap, `the topic (${total} bytes) is well over its cap`);
  const keep = sizes.map((n) => byteCapLen(n, total, cap)!);

  const r = await retention.runOnce();
  for (const [i, s] of streams.entries()) {
    const left = (await inst.redis.xrange(s, '-', '+')).map(([id]) => id);
    if (i === 2) assert.deepEqual(left, ids[2], 'the pending first entry holds the whole stream');
    else assert.deepEqual(left, ids[i]!.slice(sizes[i]! - keep[i]!), `stream ${i} keeps its newest ${keep[i]}`);
  }
  assert.equal(r.trimmed, sizes[0]! - keep[0]! + sizes[1]! - keep[1]!);
  const after = await Promise.all(streams.slice(0, 2).map(async (s) => Number(await inst.redis.call('MEMORY', 'USAGE', s))));
  assert.ok(after[0]! + after[1]! < bytes[0]! + bytes[1]!, 'less memory held');
  // once the pending entry is acknowledged, that stream gives up its share too
  await inst.redis.xack(streams[2]!, 'postgres', ids[2]![0]!);
  assert.ok((await retention.runOnce()).streams.find((s) => s.stream === streams[2])!.trimmed > 0);
});

test('each topic at its own pace: a 0s topic every second, a 1h topic only every slowestMs', async () => {
  const { topology } = writeTopology({ 'topics.validated.retention': { hot: '0s' }, 'topics.transactions.retention': { hot: '1h' } });
  const { inst, registry, retention } = await start('retpace', topology, { intervalMs: 100, slowestMs: 3_600_000 });
  const fast = inst.keys.lane('validated', 2, 'normal');
  const slow = inst.keys.lane('transactions', 2, 'normal');
  await fill(inst.redis, fast, 1);
  await consume(inst.redis, fast, ['postgres'], 1, 1);
  await waitFor('the first pass', async () => (await metric(registry, 'rill_retention_trimmed_total', { topic: 'validated', lane: 'normal' })) === 1, 10_000);
  // an acknowledged transactions entry 2 h old: past its window, but its next pass is an hour away
  await inst.redis.xadd(slow, `${Date.now() - 7_200_000}-0`, 'tx', 'old', 'ev', '{}');
  await consume(inst.redis, slow, ['validate'], 1, 1);
  for (const n of [2, 3]) {
    await fill(inst.redis, fast, 1);
    const [id] = (await inst.redis.xrange(fast, '-', '+')).map(([i]) => i);
    await inst.redis.xreadgroup('GROUP', 'postgres', 'c1', 'COUNT', 1, 'STREAMS', fast, '>');
    await inst.redis.xack(fast, 'postgres', id!);
    await waitFor(
      `validated pass ${n}`,
      async () => (await metric(registry, 'rill_retention_trimmed_total', { topic: 'validated', lane: 'normal' })) === n,
      10_000,
    );
  }
  assert.equal(await inst.redis.xlen(slow), 1, 'transactions not passed again yet');
  assert.equal((await retention.runOnce()).trimmed, 1, 'a full pass takes it');
  assert.equal(await inst.redis.xlen(slow), 0);
});
