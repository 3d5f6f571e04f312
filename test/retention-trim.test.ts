// Retention trims topic lane streams to max_len / max_age but never an entry a consumer group has
// not acknowledged: pending and unread entries stay, whatever the limits say. Each test has its own
// instance, so the trimmed counts are exact.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { waitFor } from './helpers/wait.ts';
import { merchantIds, sampleBody } from './helpers/transactions.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { LaneReader } from '../core/consumer/lane-reader.ts';
import { createRegistry } from '../core/metrics.ts';
import type { Registry } from '../core/metrics.ts';
import type { Topology } from '../core/topology/schema.ts';
import { retentionInterval, startRetention } from '../core/retention/retention.ts';
import type { RetentionHandle } from '../core/retention/retention.ts';
import { compareIds } from '../core/stream-id.ts';

const { topology } = writeTopology({
  'topics.transactions.retention': { max_age: '1h', max_len: 5 },
  'topics.validated.retention': { max_len: 5 },
});

let inst: TestInstance | undefined;
let retention: RetentionHandle | undefined;
afterEach(async () => {
  await retention?.stop();
  retention = undefined;
  await inst?.cleanup();
  inst = undefined;
});

interface Setup {
  inst: TestInstance;
  registry: Registry;
  logs: Record<string, unknown>[];
  retention: RetentionHandle;
}

async function setup(label: string, intervalMs = 3_600_000): Promise<Setup> {
  inst = await createInstance(label);
  const registry = createRegistry({ defaults: false });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write: (chunk: Buffer, _enc, done) => {
      logs.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  retention = startRetention({ redis: inst.redis, keys: inst.keys, topology, registry, logger: pino({ level: 'warn' }, sink), intervalMs });
  return { inst, registry, logs, retention };
}

/** The consumer groups a worker creates for a stage or sink: every partition, every lane. */
async function ensureGroups(inst: TestInstance, t: Topology, topic: string, group: string): Promise<void> {
  const partitions = t.topics[topic]!.partitions;
  await new LaneReader({
    redis: inst.redis,
    keys: inst.keys,
    topic,
    group,
    consumer: 'setup',
    visibilityTimeoutMs: 30_000,
    partitions: Array.from({ length: partitions }, (_, i) => i),
    lanes: t.priorities,
  }).ensureGroups();
}

async function readAs(redis: Redis, stream: string, group: string, count: number): Promise<string[]> {
  const reply = (await redis.xreadgroup('GROUP', group, 'c1', 'COUNT', count, 'STREAMS', stream, '>')) as [string, [string, string[]][]][] | null;
  return (reply?.[0]?.[1] ?? []).map(([id]) => id);
}

async function ids(redis: Redis, stream: string): Promise<string[]> {
  return (await redis.xrange(stream, '-', '+')).map(([id]) => id);
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  const found = m.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  return found?.value ?? 0;
}

test('max_len: only entries every group acknowledged are trimmed; pending and unread ones stay', async () => {
  const { inst, registry, logs, retention } = await setup('retlen');
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchant = merchantIds(50).find((m) => appender.route(m, 'payin').partition === 0)!;
  const stream = appender.route(merchant, 'payin').stream;
  await ensureGroups(inst, topology, 'transactions', 'validate');
  await inst.redis.xgroup('CREATE', stream, 'audit', '0');
  const all: string[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await appender.append({ ...sampleBody(0, [merchant]), reference: `r${i}` });
    assert.equal(r.kind, 'accepted');
    if (r.kind === 'accepted') all.push(r.entryId);
  }

  // validate: 0-9 acknowledged, 10-11 pending, 12-19 unread; audit: 0-7 acknowledged, 8-19 pending
  assert.deepEqual(await readAs(inst.redis, stream, 'validate', 12), all.slice(0, 12));
  await inst.redis.xack(stream, 'validate', ...all.slice(0, 10));
  assert.deepEqual(await readAs(inst.redis, stream, 'audit', 20), all);
  await inst.redis.xack(stream, 'audit', ...all.slice(0, 8));

  const first = await retention.runOnce();
  assert.equal(first.trimmed, 8, 'audit still needs 8 on');
  assert.deepEqual(await ids(inst.redis, stream), all.slice(8));
  const mine = first.streams.find((s) => s.stream === stream)!;
  assert.ok(compareIds(mine.cut!, all[7]!) > 0 && compareIds(mine.cut!, all[8]!) <= 0, `cut ${mine.cut} just after ${all[7]}`);

  // audit catches up: validate's pending 10 now holds the line, whatever max_len says
  await inst.redis.xack(stream, 'audit', ...all.slice(8));
  const [a, b] = await Promise.all([retention.runOnce(), retention.runOnce()]); // concurrent passes are safe
  assert.equal(a.trimmed + b.trimmed, 2);
  assert.deepEqual(await ids(inst.redis, stream), all.slice(10), 'pending 10-11 and unread 12-19 all still there');
  assert.equal((await retention.runOnce()).trimmed, 0);
  assert.equal(await metric(registry, 'rill_retention_trimmed_total', { topic: 'transactions', lane: 'normal' }), 10);

  // validate is 10 behind with max_len 5: warned
  assert.equal(await metric(registry, 'rill_retention_lag_warning', { topic: 'transactions', group: 'validate' }), 1);
  assert.equal(await metric(registry, 'rill_retention_lag_warning', { topic: 'transactions', group: 'audit' }), 0);
  const warnLogs = logs.filter((l) => l.group === 'validate');
  assert.equal(warnLogs.length, 1, 'logged once, not on every pass');
  assert.equal(warnLogs[0]!.backlog, 10);

  // validate finishes: trimmed down to max_len, the warning clears
  await readAs(inst.redis, stream, 'validate', 100);
  await inst.redis.xack(stream, 'validate', ...all.slice(10));
  const last = await retention.runOnce();
  assert.equal(last.trimmed, 5);
  assert.deepEqual(await ids(inst.redis, stream), all.slice(15));
  assert.equal(await metric(registry, 'rill_retention_trimmed_total', { topic: 'transactions', lane: 'normal' }), 15);
  assert.equal(await metric(registry, 'rill_retention_lag_warning', { topic: 'transactions', group: 'validate' }), 0);
});

test('max_age: only acknowledged entries older than max_age are trimmed', async () => {
  const { inst, registry, retention } = await setup('retage');
  await ensureGroups(inst, topology, 'transactions', 'validate');
  const stream = inst.keys.lane('transactions', 1, 'low');
  const now = Date.now();
  const at = (msAgo: number, seq = 0) => `${now - msAgo}-${seq}`;
  const entries = [at(3 * 3_600_000), at(2 * 3_600_000), at(2 * 3_600_000, 1), at(90 * 60_000), at(5 * 60_000)];
  for (const id of entries) await inst.redis.xadd(stream, id, 'tx', `tx_${id}`, 'ev', '{}');

  // 0-1 acknowledged, 2 pending (2 h old), 3-4 unread
  assert.deepEqual(await readAs(inst.redis, stream, 'validate', 3), entries.slice(0, 3));
  await inst.redis.xack(stream, 'validate', ...entries.slice(0, 2));
  const first = await retention.runOnce();
  assert.equal(first.trimmed, 2);
  assert.deepEqual(await ids(inst.redis, stream), entries.slice(2), 'the old pending entry and the old unread one stay');
  // its oldest unacknowledged entry is 2 h old, past 80% of max_age
  assert.equal(await metric(registry, 'rill_retention_lag_warning', { topic: 'transactions', group: 'validate' }), 1);
  const w = first.warnings.find((x) => x.stream === stream)!;
  assert.ok(w.oldestAgeMs! >= 2 * 3_600_000, `oldest age ${w.oldestAgeMs}`);

  // acknowledged now, but 3 (90 min old, unread) stays until the group acks it; 4 is young
  await inst.redis.xack(stream, 'validate', entries[2]!);
  assert.equal((await retention.runOnce()).trimmed, 1);
  assert.deepEqual(await ids(inst.redis, stream), entries.slice(3));
  await readAs(inst.redis, stream, 'validate', 10);
  await inst.redis.xack(stream, 'validate', ...entries.slice(3));
  assert.equal((await retention.runOnce()).trimmed, 1);
  assert.deepEqual(await ids(inst.redis, stream), entries.slice(4), 'young entries are kept');
  assert.equal(await metric(registry, 'rill_retention_trimmed_total', { topic: 'transactions', lane: 'low' }), 4);
  assert.equal(await metric(registry, 'rill_retention_lag_warning', { topic: 'transactions', group: 'validate' }), 0);
});

test('nothing is trimmed without groups, or while a declared consumer has no group yet', async () => {
  const { inst, retention } = await setup('retnogroup');
  const stream = inst.keys.lane('validated', 2, 'normal');
  const other = inst.keys.lane('validated', 3, 'normal');
  for (let i = 0; i < 10; i++) {
    await inst.redis.xadd(stream, '*', 'tx', `a${i}`, 'ev', '{}');
    await inst.redis.xadd(other, '*', 'tx', `b${i}`, 'ev', '{}');
  }
  // another reader, finished with everything, but the postgres sink's group does not exist yet
  await inst.redis.xgroup('CREATE', other, 'tap', '$');
  const r = await retention.runOnce();
  assert.equal(r.trimmed, 0);
  assert.equal(await inst.redis.xlen(stream), 10);
  assert.equal(await inst.redis.xlen(other), 10);
  assert.equal(r.streams.find((s) => s.stream === stream)!.skipped, 'no-groups');
  assert.equal(r.streams.find((s) => s.stream === other)!.skipped, 'missing-group');
  // the sink's group appears at $ (done with all of it): now max_len applies
  await inst.redis.xgroup('CREATE', other, 'postgres', '$');
  assert.equal((await retention.runOnce()).trimmed, 5);
  assert.equal(await inst.redis.xlen(other), 5);
  assert.equal(await inst.redis.xlen(stream), 10);
});

test('the timer runs passes by itself; a failing pass is logged, not thrown; stop waits', async () => {
  const { inst, registry, logs } = await setup('rettimer', 50);
  const stream = inst.keys.lane('transactions', 4, 'high');
  await ensureGroups(inst, topology, 'transactions', 'validate');
  for (let i = 0; i < 8; i++) await inst.redis.xadd(stream, '*', 'tx', `t${i}`, 'ev', '{}');
  await readAs(inst.redis, stream, 'validate', 8);
  await inst.redis.xack(stream, 'validate', ...(await ids(inst.redis, stream)));
  // the counter moves when the pass returns, after its XTRIM: wait for the counter, then check the stream
  await waitFor('a timed pass', async () => (await metric(registry, 'rill_retention_trimmed_total', { topic: 'transactions', lane: 'high' })) === 3, 10_000);
  assert.equal(await inst.redis.xlen(stream), 5);

  // a lane key of the wrong type breaks the pass: logged, and the timer goes on
  const broken = inst.keys.lane('transactions', 5, 'high');
  await inst.redis.set(broken, 'not a stream');
  await waitFor('the failure logged', () => logs.some((l) => l.msg === 'retention pass failed; trying again next interval'), 10_000);
  await inst.redis.del(broken);
  await retention!.stop();
});

test('passes run every 30 s, or every tenth of the shortest max_age when that is shorter', () => {
  const days = writeTopology({ 'topics.transactions.retention.max_age': '7d', 'topics.validated.retention.max_age': '1d' }).topology;
  assert.equal(retentionInterval(days, 30_000), 30_000);
  const minute = writeTopology({ 'topics.validated.retention.max_age': '1m' }).topology;
  assert.equal(retentionInterval(minute, 30_000), 6_000);
  const seconds = writeTopology({ 'topics.validated.retention.max_age': '2s' }).topology;
  assert.equal(retentionInterval(seconds, 30_000), 1_000);
});
