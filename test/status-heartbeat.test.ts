// Worker heartbeats (core/observability/heartbeat.ts): what a worker publishes and how often, the
// counters it carries from its registry, live vs dead for readers, clean removal on stop, dead
// entries forgotten, and a Redis outage logged once and never thrown.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { counter, createRegistry, histogram } from '../core/metrics.ts';
import { connectRedis } from '../core/redis.ts';
import { readWorkers, startHeartbeat } from '../core/observability/heartbeat.ts';
import type { WorkerRecord } from '../core/observability/heartbeat.ts';

let inst: TestInstance;
before(async () => {
  inst = await createInstance('heartbeat');
});
after(async () => {
  await inst?.cleanup();
});

const silent = pino({ level: 'silent' });

async function record(id: string): Promise<WorkerRecord | undefined> {
  const json = await inst.redis.hget(inst.keys.global('workers'), id);
  return json ? (JSON.parse(json) as WorkerRecord) : undefined;
}

test('publishes id, host, pid, components and the registry counters; a second beat carries the previous one', async () => {
  const registry = createRegistry({ defaults: false });
  const events = counter(registry, 'rill_stage_events_total', 'x', ['stage', 'outcome']);
  const rows = counter(registry, 'rill_sink_rows_total', 'x', ['sink']);
  const flush = histogram(registry, 'rill_sink_flush_duration_seconds', 'x', ['sink'], [0.1, 1]);
  events.inc({ stage: 'validate', outcome: 'ok' }, 7);
  events.inc({ stage: 'validate', outcome: 'retry' }, 2);
  events.inc({ stage: 'validate', outcome: 'dead_letter' }, 1);
  rows.inc({ sink: 'postgres' }, 40);
  flush.observe({ sink: 'postgres' }, 0.05);

  const before = Date.now();
  const hb = startHeartbeat({
    redis: inst.redis,
    keys: inst.keys,
    id: 'w-1',
    host: 'host-a',
    components: ['validate', 'postgres'],
    registry,
    logger: silent,
    intervalMs: 100,
  });
  try {
    const first = await waitFor('the first heartbeat', () => record('w-1'));
    assert.equal(first.id, 'w-1');
    assert.equal(first.host, 'host-a');
    assert.equal(first.pid, process.pid);
    assert.deepEqual(first.components, ['validate', 'postgres']);
    assert.equal(first.interval_ms, 100);
    assert.ok(first.started_at >= before && first.seen_at >= first.started_at);
    assert.deepEqual(first.stats.stages, { validate: { ok: 7, retry: 2, dead_letter: 1 } });
    assert.equal(first.stats.sinks.postgres?.rows, 40);
    assert.equal(first.stats.sinks.postgres?.flushes, 1);
    assert.ok(first.stats.sinks.postgres?.last_flush_at && first.stats.sinks.postgres.last_flush_at >= before);
    const score = Number(await inst.redis.zscore(inst.keys.global('workers-seen'), 'w-1'));
    assert.ok(score >= first.seen_at);

    events.inc({ stage: 'validate', outcome: 'ok' }, 5);
    const later = await waitFor('a heartbeat with the new count', async () => {
      const r = await record('w-1');
      return r && r.stats.stages.validate!.ok === 12 && r.prev ? r : undefined;
    });
    assert.ok(later.prev!.seen_at < later.seen_at);
    assert.ok(later.seen_at - later.prev!.seen_at < 1_000, 'about one interval apart');
    assert.equal(later.stats.sinks.postgres?.last_flush_at, first.stats.sinks.postgres?.last_flush_at, 'no new flush, same time');

    const stamp = (await registry.getSingleMetric('rill_worker_heartbeat_timestamp_seconds')!.get()).values.find((v) => v.labels.worker === 'w-1');
    assert.ok(stamp && Math.abs(stamp.value * 1000 - Date.now()) < 2_000, 'the heartbeat gauge is current');

    const [w] = (await readWorkers(inst.redis, inst.keys)).filter((x) => x.id === 'w-1');
    assert.equal(w?.live, true);
  } finally {
    await hb.stop();
  }
  assert.equal(await record('w-1'), undefined, 'stop removes the record');
  assert.equal(await inst.redis.zscore(inst.keys.global('workers-seen'), 'w-1'), null, 'and the score');
  const stamp = (await registry.getSingleMetric('rill_worker_heartbeat_timestamp_seconds')!.get()).values;
  assert.deepEqual(stamp, [], 'and its gauge series');
});

test('readers: live within 3 intervals, dead after; long-dead workers are forgotten by a live one', async () => {
  const now = Date.now();
  const put = async (id: string, seenAt: number, interval = 5_000) => {
    const r = {
      id,
      host: 'h',
      pid: 1,
      components: ['validate'],
      started_at: seenAt - 1,
      seen_at: seenAt,
      interval_ms: interval,
      stats: { stages: {}, sinks: {} },
    };
    await inst.redis.hset(inst.keys.global('workers'), id, JSON.stringify(r));
    await inst.redis.zadd(inst.keys.global('workers-seen'), seenAt, id);
  };
  await put('fresh', now - 14_000); // 2.8 intervals
  await put('stale', now - 16_000); // 3.2 intervals
  await put('slow-beat', now - 50_000, 20_000); // its own interval counts
  await put('ancient', now - 2 * 3_600_000);
  const byId = new Map((await readWorkers(inst.redis, inst.keys, now)).map((w) => [w.id, w]));
  assert.equal(byId.get('fresh')?.live, true);
  assert.equal(byId.get('stale')?.live, false);
  assert.equal(byId.get('slow-beat')?.live, true);
  assert.equal(byId.get('ancient')?.live, false);

  const registry = createRegistry({ defaults: false });
  const hb = startHeartbeat({ redis: inst.redis, keys: inst.keys, id: 'janitor', host: 'h', components: [], registry, logger: silent, intervalMs: 50 });
  try {
    await waitFor('the ancient entry to be forgotten', async () => !(await inst.redis.hexists(inst.keys.global('workers'), 'ancient')));
    assert.equal(await inst.redis.zscore(inst.keys.global('workers-seen'), 'ancient'), null);
    assert.ok(await record('stale'), 'a recently dead worker stays visible (as dead)');
  } finally {
    await hb.stop();
  }
  for (const id of ['fresh', 'stale', 'slow-beat']) {
    await inst.redis.hdel(inst.keys.global('workers'), id);
    await inst.redis.zrem(inst.keys.global('workers-seen'), id);
  }
});

test('Redis unreachable: logged once (not per beat), never thrown; stop() does not hang', async () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const dead = connectRedis(
    { redisUrl: 'redis://127.0.0.1:1', redisCluster: false },
    { lazyConnect: true, offlineQueue: false, retriesPerRequest: 0 },
  ) as Redis;
  dead.on('error', () => undefined);
  const hb = startHeartbeat({
    redis: dead,
    keys: inst.keys,
    id: 'unlucky',
    host: 'h',
    components: [],
    registry: createRegistry({ defaults: false }),
    logger,
    intervalMs: 20,
  });
  try {
    await new Promise((r) => setTimeout(r, 300)); // ~15 failed beats
    const warnings = lines.filter((l) => l.msg === 'heartbeat failed; will retry every interval');
    assert.equal(warnings.length, 1, JSON.stringify(lines));
    assert.equal(warnings[0]!.worker, 'unlucky');
  } finally {
    const t = Date.now();
    await hb.stop();
    assert.ok(Date.now() - t < 3_000, 'stop is bounded');
    dead.disconnect();
  }
});
