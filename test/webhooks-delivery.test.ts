// The webhooks sink on a test clock (no sleeps): events written to the webhook_events topic,
// endpoints in Postgres, a receiver verifying every delivery with standardwebhooks. A receiver
// down then up gets everything on the Svix schedule, in order; 500 then 200; after the last
// attempt the delivery is failed (kept, redeliverable) and the endpoint, failing past
// disable_after, disabled with an alert; a hanging endpoint holds only its own queue; an
// endpoint leased by a worker that died is delivered once its lease ends.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { SHIPPED_TOPOLOGY } from './helpers/topology-file.ts';
import { WebhookReceiver } from './helpers/webhook-receiver.ts';
import { entryArgs } from '../core/entry.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import type { Registry } from '../core/metrics.ts';
import { partitionOf } from '../core/partition.ts';
import { connectRedis } from '../core/redis.ts';
import { loadTopology } from '../core/topology/load.ts';
import { MerchantWebhooksSinkSchema } from '../core/topology/schema.ts';
import { EndpointStore } from '../core/webhooks/endpoints.ts';
import { WebhookEnqueuer } from '../core/webhooks/enqueue.ts';
import { QueueKeys } from '../core/webhooks/queue.ts';
import { claim, defineQueueScripts } from '../sinks/webhooks/delivery-rounds.ts';
import { secretKey } from '../core/webhooks/secrets.ts';
import { WebhooksSink } from '../sinks/webhooks/sink.ts';

const topology = loadTopology(SHIPPED_TOPOLOGY);
const PARTITIONS = topology.topics.webhook_events!.partitions;
const POLICY = { allowLoopback: true, allowPrivate: false };

interface Rig {
  inst: TestInstance;
  sink: WebhooksSink;
  store: EndpointStore;
  registry: Registry;
  clock: { now: number };
  redis: Redis[];
  receiver: WebhookReceiver;
  /** Append webhook events for a merchant to the topic; returns their ids. */
  events(merchant: string, n: number, tag: string): Promise<string[]>;
  endpoint(merchant: string, path: string, base?: string): Promise<{ id: string; secret: string }>;
  attempts(endpointId: string): Promise<
    {
      event_id: string;
      attempt: number;
      outcome: string;
      status_code: number | null;
      latency_ms: number;
      error: string | null;
      next_retry_at: Date | null;
      attempted_at: Date;
    }[]
  >;
  stop(): Promise<void>;
}

const rigs: Rig[] = [];
after(async () => {
  for (const r of rigs) await r.stop();
});

async function rig(label: string, config: Record<string, unknown> = {}, start = true): Promise<Rig> {
  const inst = await createInstance(label);
  const clock = { now: Date.UTC(2026, 0, 1) };
  const redis = [connectRedis(inst.env, { name: 'wh-dispatch' }) as Redis, connectRedis(inst.env, { name: 'wh-deliver' }) as Redis];
  const registry = createRegistry({ defaults: false });
  const store = new EndpointStore(inst.pool, secretKey(process.env));
  const receiver = new WebhookReceiver();
  await receiver.start();
  const sink = new WebhooksSink({
    name: 'webhooks',
    config: MerchantWebhooksSinkSchema.parse({ type: 'webhooks', input: 'webhook_events', alerts_topic: 'alerts', ...config }),
    topology,
    keys: inst.keys,
    redis: redis[0]!,
    deliveryRedis: redis[1]!,
    pool: inst.pool,
    consumer: 'test-0',
    registry,
    logger: createLogger(process.env.LOG_LEVEL || 'silent'),
    policy: POLICY,
    now: () => clock.now,
    random: () => 0.5,
    blockMs: 50,
    pollMs: 10,
  });
  let seq = 0;
  const r: Rig = {
    inst,
    sink,
    store,
    registry,
    clock,
    redis,
    receiver,
    async events(merchant, n, tag) {
      const ids: string[] = [];
      const key = inst.keys.lane('webhook_events', partitionOf(merchant, PARTITIONS), 'low');
      for (let i = 0; i < n; i++) {
        const id = `evt_${tag}_${seq++}`;
        ids.push(id);
        const ev = {
          id,
          type: 'transaction.succeeded',
          created_at: new Date().toISOString(),
          merchant_id: merchant,
          data: { id: `tx_${tag}_${i}`, merchant_id: merchant, seq: i },
        };
        await inst.redis.xadd(key, '*', ...entryArgs({ txId: id, event: JSON.stringify(ev) }));
      }
      return ids;
    },
    async endpoint(merchant, path, base = receiver.base) {
      const { row, secret } = await store.create(merchant, { url: base + path });
      receiver.expect(path, secret);
      return { id: row.id, secret };
    },
    async attempts(endpointId) {
      return (
        await inst.pool.query(
          'SELECT event_id, attempt, outcome, status_code, latency_ms, error, next_retry_at, attempted_at FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY attempted_at, event_id, attempt',
          [endpointId],
        )
      ).rows;
    },
    async stop() {
      await sink.stop();
      for (const c of redis) c.disconnect();
      await receiver.close();
      await inst.cleanup();
    },
  };
  rigs.push(r);
  if (start) await sink.start();
  return r;
}

/** Until the deliverer has recorded `k` failed attempts of the event (its next time set). */
async function retried(r: Rig, merchant: string, endpointId: string, eventId: string, k: number): Promise<void> {
  const key = new QueueKeys(r.inst.keys).delivery(partitionOf(merchant, PARTITIONS), endpointId, eventId);
  await waitFor(`attempt ${k} recorded`, async () => (await r.inst.redis.hget(key, 'attempts')) === String(k));
}

const evIds = (ds: { event: { id: string } }[]) => ds.map((d) => d.event.id);

test('receiver down, then up: every event delivered on the schedule, in order', async () => {
  const r = await rig('whdown');
  // a port with nothing listening (yet)
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as AddressInfo).port;
  probe.close();
  await once(probe, 'close');
  const ep = await r.endpoint('m_down', '/down', `http://127.0.0.1:${port}`);
  const ids = await r.events('m_down', 3, 'down');
  const t0 = r.clock.now;
  // attempt 1 at once, then 5 s, 5 min, 30 min later (jitter drawn at its middle: exact)
  const schedule = [5_000, 300_000, 1_800_000];
  for (let k = 1; k <= 3; k++) {
    await retried(r, 'm_down', ep.id, ids[0]!, k);
    const rows = await waitFor(`attempt ${k} logged`, async () => ((await r.attempts(ep.id)).length === k ? r.attempts(ep.id) : undefined));
    const last = rows[k - 1]!;
    assert.equal(last.event_id, ids[0], 'only the first event is tried while it fails (order)');
    assert.equal(last.outcome, 'retrying');
    assert.match(String(last.error), /ECONNREFUSED/);
    assert.equal(last.next_retry_at!.getTime() - last.attempted_at.getTime(), schedule[k - 1]);
    if (k < 3) r.clock.now += schedule[k - 1]!;
  }
  // the receiver comes up on that port; the clock reaches the fourth attempt
  const up = new WebhookReceiver();
  await up.start(port);
  up.expect('/down', ep.secret);
  try {
    r.clock.now += schedule[2]!;
    await waitFor('all three delivered', () => up.ok('/down').length === 3);
    assert.deepEqual(evIds(up.on('/down')), ids);
    assert.ok(up.on('/down').every((d) => d.verifiedBy.length === 1));
    assert.equal(r.clock.now - t0, 5_000 + 300_000 + 1_800_000);
    const rows = await waitFor('the log', async () => ((await r.attempts(ep.id)).length === 6 ? r.attempts(ep.id) : undefined));
    assert.deepEqual(
      rows.map((x) => [x.event_id, x.attempt, x.outcome]),
      [
        [ids[0], 1, 'retrying'],
        [ids[0], 2, 'retrying'],
        [ids[0], 3, 'retrying'],
        [ids[0], 4, 'delivered'],
        [ids[1], 1, 'delivered'],
        [ids[2], 1, 'delivered'],
      ],
    );
  } finally {
    await up.close();
  }
});

test('500 then 200: retried after 5 s, then the rest in order', async () => {
  const r = await rig('wh500');
  const ep = await r.endpoint('m_flaky', '/flaky');
  r.receiver.script('/flaky', [{ status: 500 }]);
  const ids = await r.events('m_flaky', 2, 'flaky');
  await retried(r, 'm_flaky', ep.id, ids[0]!, 1);
  r.clock.now += 5_000;
  await waitFor('both delivered', () => r.receiver.ok('/flaky').length === 2);
  assert.deepEqual(
    r.receiver.on('/flaky').map((d) => [d.event.id, d.status]),
    [
      [ids[0], 500],
      [ids[0], 200],
      [ids[1], 200],
    ],
  );
  assert.ok(r.receiver.on('/flaky').every((d) => d.verifiedBy.length === 1));
  const metric = await r.registry.getSingleMetricAsString('rill_webhook_deliveries_total');
  assert.match(metric, /outcome="retrying"\} 1/);
  assert.match(metric, /outcome="delivered"\} 2/);
});

test('after the last attempt: failed, kept and redeliverable; the endpoint disabled with an alert', async () => {
  const r = await rig('whfail', { schedule: [0, '1s', '1s'], disable_after: '1500ms' });
  const ep = await r.endpoint('m_fail', '/fail');
  r.receiver.script('/fail', [], { status: 503 });
  const [id] = await r.events('m_fail', 1, 'fail');
  await retried(r, 'm_fail', ep.id, id!, 1);
  r.clock.now += 1_000;
  await retried(r, 'm_fail', ep.id, id!, 2);
  r.clock.now += 1_000;
  await waitFor('attempt 3', () => r.receiver.on('/fail').length === 3);
  const rows = await waitFor('the log', async () => ((await r.attempts(ep.id)).length === 3 ? r.attempts(ep.id) : undefined));
  assert.deepEqual(
    rows.map((x) => [x.attempt, x.outcome, x.status_code]),
    [
      [1, 'retrying', 503],
      [2, 'retrying', 503],
      [3, 'failed', 503],
    ],
  );
  // disabled (failing 2 s > 1.5 s), one alert for the merchant on the alerts topic
  const row = await waitFor('disabled', async () => {
    const e = await r.store.get('m_fail', ep.id);
    return e && !e.enabled ? e : undefined;
  });
  assert.match(String(row.disabled_reason), /failing since/);
  const p = partitionOf('m_fail', PARTITIONS);
  const alerts = (await r.inst.redis.xrange(r.inst.keys.lane('alerts', p, 'low'), '-', '+')) as [string, string[]][];
  assert.deepEqual(
    alerts.map(([, f]) => JSON.parse(f[f.indexOf('ev') + 1]!) as { type: string; endpoint_id: string }).map((a) => [a.type, a.endpoint_id]),
    [['webhook_endpoint.disabled', ep.id]],
  );
  assert.match(await r.registry.getSingleMetricAsString('rill_webhook_endpoints_disabled'), /rill_webhook_endpoints_disabled 1/);
  // nothing left waiting in Redis; the event is kept in Postgres and can be sent again
  const qk = new QueueKeys(r.inst.keys);
  assert.equal(await r.inst.redis.llen(qk.queue(p, ep.id)), 0);
  await r.store.update('m_fail', ep.id, { enabled: true });
  r.receiver.script('/fail', [], { status: 204 });
  const enq = new WebhookEnqueuer(r.inst.redis, r.inst.pool, r.inst.keys, PARTITIONS, () => r.clock.now);
  const event = await enq.event('m_fail', id!);
  assert.ok(event);
  assert.equal(await enq.toEndpoint((await r.store.get('m_fail', ep.id))!, [event]), 1);
  await waitFor('the redelivery', () => r.receiver.ok('/fail').length === 1);
  assert.equal(r.receiver.ok('/fail')[0]!.event.id, id);
});

test('a hanging endpoint holds only its own queue: the healthy merchant gets everything meanwhile', async () => {
  const r = await rig('whhang', { request_timeout: '60s' });
  const hang = await r.endpoint('m_hang', '/hang');
  const fast = await r.endpoint('m_fast', '/fast');
  r.receiver.script('/hang', [], { status: 200, hang: true });
  const hangIds = await r.events('m_hang', 5, 'hang');
  const fastIds = await r.events('m_fast', 20, 'fast');
  await waitFor("the healthy merchant's 20", () => r.receiver.ok('/fast').length === 20);
  assert.equal(r.receiver.on('/hang').length, 1, 'one in flight on the hanging endpoint, the rest wait behind it');
  assert.deepEqual(evIds(r.receiver.on('/fast')), fastIds);
  // the hang ends: its queue goes on, in order
  r.receiver.script('/hang', [], { status: 200 });
  r.receiver.release();
  await waitFor("the hanging merchant's 5", () => r.receiver.on('/hang').length === 5);
  assert.deepEqual(evIds(r.receiver.on('/hang')), hangIds);
  const fastLog = await waitFor('fast log', async () => ((await r.attempts(fast.id)).length === 20 ? r.attempts(fast.id) : undefined));
  const hangLog = await waitFor('hang log', async () => ((await r.attempts(hang.id)).length === 5 ? r.attempts(hang.id) : undefined));
  // compared, not asserted as time: every healthy attempt was quicker than the hung one
  assert.ok(Math.max(...fastLog.map((x) => x.latency_ms)) < hangLog[0]!.latency_ms);
});

test('an endpoint leased by a worker that died is delivered once the lease ends', async () => {
  const r = await rig('whcrash', {}, false);
  const ep = await r.endpoint('m_crash', '/crash');
  const ids = await r.events('m_crash', 3, 'crash');
  // a dispatcher runs alone first (the queue fills), then a "dead" worker leases the endpoint
  await r.sink.dispatcher.reader.ensureGroups();
  const entries = await r.sink.dispatcher.reader.read(100, 50);
  assert.equal(await r.sink.dispatcher.handle(entries), 3);
  const qk = new QueueKeys(r.inst.keys);
  defineQueueScripts(r.inst.redis);
  const p = partitionOf('m_crash', PARTITIONS);
  const leaseUntil = r.clock.now + 25_000;
  assert.deepEqual(await claim(r.inst.redis, qk, p, r.clock.now, 10, leaseUntil, 'dead-worker:1'), [ep.id]);
  await r.sink.start();
  await waitFor('the lease to be seen', async () => (await r.inst.redis.zscore(qk.due(p), ep.id)) === String(leaseUntil));
  assert.equal(r.receiver.on('/crash').length, 0, 'nothing while another worker holds the lease');
  r.clock.now = leaseUntil;
  await waitFor('delivered after the lease', () => r.receiver.ok('/crash').length === 3);
  assert.deepEqual(evIds(r.receiver.on('/crash')), ids);
});

test('max_in_flight opts an endpoint into parallel attempts: that many at once, no more', async () => {
  // rounds take the endpoint's first max_in_flight waiting deliveries: queue five, then start
  const r = await rig('whpar', { request_timeout: '60s' }, false);
  const { row, secret } = await r.store.create('m_par', { url: `${r.receiver.base}/par`, max_in_flight: 3 });
  r.receiver.expect('/par', secret);
  r.receiver.script('/par', [], { status: 200, hang: true });
  const ids = await r.events('m_par', 5, 'par');
  await r.sink.start();
  await waitFor('three in flight', () => r.receiver.on('/par').length === 3);
  assert.deepEqual(evIds(r.receiver.on('/par')).sort(), ids.slice(0, 3).sort());
  r.receiver.script('/par', [], { status: 200 });
  r.receiver.release();
  await waitFor('all five', () => r.receiver.ok('/par').length === 2 && r.receiver.on('/par').length === 5);
  assert.deepEqual(new Set(evIds(r.receiver.on('/par'))), new Set(ids));
  assert.ok(r.receiver.on('/par').every((d) => d.verifiedBy.length === 1));
  const log = await waitFor('the log', async () => ((await r.attempts(row.id)).length === 5 ? r.attempts(row.id) : undefined));
  assert.ok(log.every((x) => x.outcome === 'delivered'));
});
