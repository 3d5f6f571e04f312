// The alerts sink against a local HTTP receiver standing in for Slack and Telegram: every alert
// reaches every webhook once (retried with backoff through 503s and a 429 with Retry-After), the
// same alert inside the dedupe window is not sent again, a webhook refusing an alert for good
// (400) puts it into the sink's dead-letter stream (acknowledged), a webhook that never recovers
// holds an alert no longer than delivery_timeout, a stop cuts a delivery short and leaves the
// alert pending for the restart, and the sink's own checks raise one dead-letter-growth alert and
// one missing-heartbeat alert.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { deadLetters, outstanding } from './helpers/pipeline.ts';
import { SHIPPED_TOPOLOGY } from './helpers/topology-file.ts';
import { loadTopology } from '../core/topology/load.ts';
import type { Topology } from '../core/topology/schema.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import type { Registry } from '../core/metrics.ts';
import { connectRedis, defineScripts } from '../core/redis.ts';
import { CORE_SCRIPTS } from '../core/scripts.ts';
import { entryArgs } from '../core/entry.ts';
import { partitionOf } from '../core/partition.ts';
import { AlertsSink } from '../sinks/alerts/sink.ts';
import { AlertsSinkSchema } from '../sinks/alerts/config.ts';
import type { WalletLowAlert } from '../sinks/alerts/alert.ts';

// ---- a webhook receiver: scripted answers per path, every request recorded ----

interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Never answer (the client's timeout has to end it). */
  hang?: boolean;
}

interface Received {
  path: string;
  at: number;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  status: number;
}

class Receiver {
  readonly received: Received[] = [];
  private readonly scripts = new Map<string, Answer[]>();
  private readonly always = new Map<string, Answer>();
  private server!: Server;
  base = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        const answer = this.scripts.get(path)?.shift() ??
          this.always.get(path) ?? { status: 200, body: path.endsWith('/sendMessage') ? '{"ok":true,"result":{}}' : 'ok' };
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        } catch {
          // recorded as {}
        }
        this.received.push({ path, at: Date.now(), headers: req.headers, body, status: answer.hang ? 0 : answer.status });
        if (answer.hang) return;
        res.writeHead(answer.status, { 'content-type': answer.body?.startsWith('{') ? 'application/json' : 'text/plain', ...answer.headers });
        res.end(answer.body ?? '');
      });
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The next answers on `path`, in order; then `always` (or 200). */
  script(path: string, answers: Answer[], always?: Answer): void {
    this.scripts.set(path, [...answers]);
    if (always) this.always.set(path, always);
  }

  on(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  ok(path: string): Received[] {
    return this.on(path).filter((r) => r.status >= 200 && r.status < 300);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
  }
}

// ---- the sink under test ----

const SLACK_PATH = '/services/T000/B000/slacksecret';
const TG_TOKEN = '12345:tg-secret';

let topology: Topology;
let receiver: Receiver;
before(async () => {
  topology = loadTopology(SHIPPED_TOPOLOGY);
  receiver = new Receiver();
  await receiver.start();
});
after(async () => {
  await receiver?.close();
});

interface Running {
  inst: TestInstance;
  sink: AlertsSink;
  registry: Registry;
  redis: Redis;
  stop(): Promise<void>;
}

function sinkOn(
  inst: TestInstance,
  consumer: string,
  config: Record<string, unknown>,
  env: Record<string, string>,
): { sink: AlertsSink; registry: Registry; redis: Redis } {
  const redis = connectRedis(inst.env, { name: `test-${consumer}` }) as Redis;
  defineScripts(redis, CORE_SCRIPTS);
  const registry = createRegistry({ defaults: false });
  const sink = new AlertsSink({
    name: 'notify',
    config: AlertsSinkSchema.parse({ type: 'alerts', input: 'alerts', ...config }),
    topology,
    keys: inst.keys,
    redis,
    consumer,
    registry,
    logger: createLogger(process.env.LOG_LEVEL || 'silent'),
    env,
    blockMs: 100,
  });
  return { sink, registry, redis };
}

async function startSink(label: string, config: Record<string, unknown>, env: Record<string, string>): Promise<Running> {
  const inst = await createInstance(label);
  const { sink, registry, redis } = sinkOn(inst, 'test-0', config, env);
  await sink.start();
  return {
    inst,
    sink,
    registry,
    redis,
    async stop() {
      await sink.stop();
      redis.disconnect();
      await inst.cleanup();
    },
  };
}

let seq = 0;
function walletLow(merchant: string, currency: string, balance = 4_000): WalletLowAlert {
  seq++;
  return { id: `alert_tx_${seq}`, type: 'wallet_low', merchant_id: merchant, currency, balance, threshold: 5_000, tx_id: `tx_${seq}`, at: Date.now() };
}

/** Append an alert event as the ledger does: its merchant's partition, the lowest lane. */
async function appendAlert(r: Running, alert: WalletLowAlert): Promise<{ stream: string; id: string }> {
  const stream = r.inst.keys.lane('alerts', partitionOf(alert.merchant_id, 8), 'low');
  const id = (await r.inst.redis.xadd(stream, '*', ...entryArgs({ txId: alert.id, event: JSON.stringify(alert) })))!;
  return { stream, id };
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
    .reduce((a, v) => a + v.value, 0);
}

const drained = (r: Running) => waitFor('the alerts group to be drained', async () => (await outstanding(r.inst.redis, r.inst.keys, topology)) === 0, 30_000);
const mentions = (rs: Received[], s: string) => rs.filter((r) => JSON.stringify(r.body).includes(s));
const gaps = (rs: Received[]) => rs.slice(1).map((r, i) => r.at - rs[i]!.at);

test('each alert reaches each webhook once, through 503s and a 429, and a duplicate inside the window is not sent', async () => {
  const slack = `${SLACK_PATH}/1`;
  const tg = `/bot${TG_TOKEN}-1/sendMessage`;
  receiver.script(slack, [{ status: 503 }, { status: 503 }, { status: 429, headers: { 'retry-after': '1' }, body: 'rate_limited' }]);
  receiver.script(tg, [{ status: 503, body: '{"ok":false,"error_code":503,"description":"Service Unavailable"}' }]);
  const config1 = {
    webhooks: [
      { name: 'ops-slack', kind: 'slack', url: '${TEST_SLACK_URL}' },
      { name: 'ops-telegram', kind: 'telegram', url: '${TEST_TG_BASE}/bot${TEST_TG_TOKEN}-1', chat_id: '${TEST_TG_CHAT}' },
    ],
    retry: { attempts: 6, base: '100ms', factor: 2, max: '2s', jitter: 'none' },
    request_timeout: '2s',
    delivery_timeout: '10s',
    visibility_timeout: '20s',
    dedupe_window: '10m',
  };
  const env1 = { TEST_SLACK_URL: receiver.base + slack, TEST_TG_BASE: receiver.base, TEST_TG_TOKEN: TG_TOKEN, TEST_TG_CHAT: '-1001234' };
  const r = await startSink('alertsdeliver', config1, env1);
  try {
    const first = walletLow('m_alert_a', 'EUR');
    await appendAlert(r, first);
    await waitFor('the first alert on both webhooks', () => receiver.ok(slack).length === 1 && receiver.ok(tg).length === 1, 20_000);

    // Slack: 503, 503, 429 (Retry-After: 1), 200; backoff 100 ms, 200 ms, then the 1 s Retry-After (over 400 ms)
    const s = receiver.on(slack);
    assert.deepEqual(
      s.map((x) => x.status),
      [503, 503, 429, 200],
    );
    const sg = gaps(s);
    assert.ok(sg[0]! >= 95 && sg[1]! >= 195 && sg[2]! >= 995, `slack gaps ${sg.join(', ')} ms`);
    assert.ok(sg[0]! < sg[1]!, `backoff grows: ${sg.join(', ')} ms`);
    const t = receiver.on(tg);
    assert.deepEqual(
      t.map((x) => x.status),
      [503, 200],
    );
    assert.ok(gaps(t)[0]! >= 95, `telegram gap ${gaps(t)[0]} ms`);

    // the shapes: Slack incoming-webhook JSON, Telegram sendMessage
    for (const x of [...s, ...t]) assert.match(String(x.headers['content-type']), /^application\/json/);
    const sb = s[3]!.body as { text: string; blocks: { type: string; text?: { text: string } }[] };
    assert.deepEqual(Object.keys(sb).sort(), ['blocks', 'text']);
    assert.match(sb.text, /Low wallet balance\*: Merchant m_alert_a: EUR wallet at 40\.00 EUR, under the 50\.00 EUR threshold/);
    assert.equal(sb.blocks[0]!.type, 'header');
    assert.equal(sb.blocks[0]!.text!.text, 'Low wallet balance');
    assert.ok(JSON.stringify(sb.blocks).includes(first.id));
    const tb = t[1]!.body as { chat_id: string; text: string; parse_mode: string };
    assert.equal(tb.chat_id, '-1001234');
    assert.equal(tb.parse_mode, 'HTML');
    assert.match(tb.text, /^<b>Low wallet balance<\/b>\nMerchant m_alert_a: EUR wallet at 40\.00 EUR/);
    assert.ok(tb.text.includes(`Transaction: <code>${first.tx_id}</code>`));

    // the same alert (same merchant and currency, a new event) inside the window: not sent again;
    // another merchant's alert is
    const dup = walletLow('m_alert_a', 'EUR', 3_000);
    const other = walletLow('m_alert_b', 'USD');
    await appendAlert(r, dup);
    await appendAlert(r, other);
    await waitFor("the second merchant's alert on both webhooks", () => receiver.ok(slack).length === 2 && receiver.ok(tg).length === 2, 20_000);
    await drained(r);
    assert.equal(mentions(receiver.on(slack), dup.id).length, 0);
    assert.equal(mentions(receiver.on(tg), '30.00 EUR').length, 0);
    assert.equal(mentions(receiver.ok(slack), 'm_alert_b').length, 1);
    assert.equal(mentions(receiver.ok(tg), 'm_alert_b').length, 1);
    assert.equal(receiver.on(slack).length, 5);
    assert.equal(receiver.on(tg).length, 3);
    for (const webhook of ['ops-slack', 'ops-telegram']) {
      assert.equal(await metric(r.registry, 'rill_alert_notifications_total', { webhook, outcome: 'delivered' }), 2, webhook);
      assert.equal(await metric(r.registry, 'rill_alert_notifications_total', { webhook, outcome: 'deduplicated' }), 1, webhook);
    }
    assert.equal(await metric(r.registry, 'rill_alert_webhook_requests_total', { webhook: 'ops-slack', result: 'retryable' }), 3);
    assert.equal((await deadLetters(r.inst.redis, r.inst.keys, 'notify', 8)).length, 0);

    // a second worker's sink (its own connection, same group) does not send it again either:
    // the dedupe marks are in Redis
    const second = sinkOn(r.inst, 'test-1', config1, env1);
    await second.sink.start();
    try {
      const again = [walletLow('m_alert_b', 'USD', 10), walletLow('m_alert_a', 'EUR', 5)];
      for (const a of again) await appendAlert(r, a);
      await drained(r);
      for (const a of again) assert.equal(mentions(receiver.received, a.id).length, 0);
      assert.equal(receiver.on(slack).length, 5);
      assert.equal(receiver.on(tg).length, 3);
    } finally {
      await second.sink.stop();
      second.redis.disconnect();
    }
  } finally {
    await r.stop();
  }
});

test('a webhook answering 400 dead-letters the alert at once, with the error, and it is acknowledged', async () => {
  const slack = `${SLACK_PATH}/2`;
  const tg = `/bot${TG_TOKEN}-2/sendMessage`;
  receiver.script(tg, [], { status: 400, body: '{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}' });
  const r = await startSink(
    'alertsbad',
    {
      webhooks: [
        { name: 'ops-slack', kind: 'slack', url: receiver.base + slack },
        { name: 'ops-telegram', kind: 'telegram', url: `${receiver.base}/bot${TG_TOKEN}-2`, chat_id: 42 },
      ],
      retry: { attempts: 5, base: '50ms', jitter: 'none' },
    },
    {},
  );
  try {
    const alert = walletLow('m_alert_c', 'GBP');
    const { stream, id } = await appendAlert(r, alert);
    const [dl] = await waitFor(
      'the dead letter',
      async () => {
        const d = await deadLetters(r.inst.redis, r.inst.keys, 'notify', 8);
        return d.length ? d : undefined;
      },
      20_000,
    );
    assert.equal(dl!.get('error'), 'WebhookError');
    assert.match(
      dl!.get('message')!,
      /^webhook ops-telegram: HTTP 400 Bad Request: chat not found \(permanent, attempt 1\); delivered to or deduplicated at: ops-slack$/,
    );
    assert.ok(!dl!.get('message')!.includes(TG_TOKEN), 'no secret in the dead letter');
    assert.equal(dl!.get('stage'), 'notify');
    assert.equal(dl!.get('attempts'), '1');
    assert.equal(dl!.get('origin_stream'), stream);
    assert.equal(dl!.get('origin_id'), id);
    assert.equal(dl!.get('tx'), alert.id);
    assert.deepEqual(JSON.parse(dl!.get('ev')!), alert);
    // no retry for a 400; Slack got it once
    assert.equal(receiver.on(tg).length, 1);
    assert.equal((receiver.on(tg)[0]!.body as { chat_id: number }).chat_id, 42);
    assert.equal(receiver.ok(slack).length, 1);
    await drained(r); // acknowledged in the same settle as the dead letter
    assert.equal(await metric(r.registry, 'rill_alerts_dead_lettered_total', {}), 1);
    const index = await r.inst.redis.hget(r.inst.keys.deadLetterIndex(partitionOf('m_alert_c', 8)), alert.id);
    assert.equal(JSON.parse(index!).stage, 'notify');
  } finally {
    await r.stop();
  }
});

test('a webhook that never recovers (a hang, then 503s) holds an alert at most delivery_timeout', async () => {
  const slack = `${SLACK_PATH}/3`;
  receiver.script(slack, [{ status: 0, hang: true }], { status: 503 });
  const r = await startSink(
    'alertsdown',
    {
      webhooks: [{ name: 'down', kind: 'slack', url: receiver.base + slack }],
      retry: { attempts: 100, base: '100ms', factor: 2, max: '300ms', jitter: 'none' },
      request_timeout: '300ms',
      delivery_timeout: '1500ms',
      visibility_timeout: '10s',
    },
    {},
  );
  try {
    const alert = walletLow('m_alert_d', 'USD');
    await appendAlert(r, alert);
    const [dl] = await waitFor(
      'the dead letter',
      async () => {
        const d = await deadLetters(r.inst.redis, r.inst.keys, 'notify', 8);
        return d.length ? d : undefined;
      },
      20_000,
    );
    const reqs = receiver.on(slack);
    // from the first request: attempts stop at delivery_timeout (1.5 s), the dead letter follows at once
    const took = Date.now() - reqs[0]!.at;
    assert.ok(took < 2_500, `dead-lettered ${took} ms after the first request`);
    assert.ok(reqs[reqs.length - 1]!.at - reqs[0]!.at <= 1_500, 'no attempt past the deadline');
    assert.match(
      dl!.get('message')!,
      /^webhook down: gave up after \d+ attempt\(s\)(, delivery_timeout reached|: the next one \(in \d+ ms\) would start past delivery_timeout); last: HTTP 503/,
    );
    assert.ok(reqs.length >= 3, `${reqs.length} requests`);
    // request_timeout 300 ms, then at least 95 ms of backoff; timestamps are taken at the receiver,
    // whose clock reading and the client's timers differ by a few ms (394 ms was seen in CI)
    assert.ok(gaps(reqs)[0]! >= 300 + 95 - 10, `the hung request timed out first: ${gaps(reqs)[0]} ms`);
    await drained(r);
  } finally {
    await r.stop();
  }
});

test('a stop cuts a hung delivery short; the alert stays pending and is delivered after the restart', async () => {
  const slack = `${SLACK_PATH}/5`;
  receiver.script(slack, [{ status: 0, hang: true }]);
  const config = {
    webhooks: [{ name: 'ops-slack', kind: 'slack', url: receiver.base + slack }],
    request_timeout: '10s',
    delivery_timeout: '20s',
    visibility_timeout: '30s',
  };
  const r = await startSink('alertsstop', config, {});
  let restarted: ReturnType<typeof sinkOn> | undefined;
  try {
    const alert = walletLow('m_alert_e', 'EUR');
    const { stream, id } = await appendAlert(r, alert);
    await waitFor('the hung request', () => receiver.on(slack).length === 1, 20_000);
    const t0 = Date.now();
    await r.sink.stop();
    assert.ok(Date.now() - t0 < 3_000, `stopped in ${Date.now() - t0} ms`);
    const pending = (await r.inst.redis.xpending(stream, 'notify', '-', '+', 10)) as [string, string, number, number][];
    assert.deepEqual(
      pending.map((p) => [p[0], p[1]]),
      [[id, 'test-0']],
    );
    assert.equal((await deadLetters(r.inst.redis, r.inst.keys, 'notify', 8)).length, 0);
    assert.equal(await r.inst.redis.exists(r.inst.keys.global('alerts', 'notify', 'dedupe', 'ops-slack', 'wallet_low:m_alert_e:EUR')), 0, 'claim released');

    // the same consumer again: its own pending alert first
    restarted = sinkOn(r.inst, 'test-0', config, {});
    await restarted.sink.start();
    await waitFor('the alert after the restart', () => receiver.ok(slack).length === 1, 20_000);
    await drained(r);
    assert.equal(receiver.on(slack).length, 2);
    assert.equal(mentions(receiver.ok(slack), alert.id).length, 1);
  } finally {
    await restarted?.sink.stop();
    restarted?.redis.disconnect();
    await r.stop();
  }
});

test('dead-letter growth past the threshold and a missing worker heartbeat alert once each', async () => {
  const slack = `${SLACK_PATH}/4`;
  const r = await startSink(
    'alertschecks',
    {
      webhooks: [{ name: 'ops-slack', kind: 'slack', url: receiver.base + slack }],
      dead_letters: { threshold: 3 },
      heartbeat: { missing_after: '30s' },
      check_interval: '150ms',
      retry: { attempts: 3, base: '50ms' },
    },
    {},
  );
  const checks = () => metric(r.registry, 'rill_alert_checks_total', {});
  const passes = async (n: number) => {
    const from = await checks();
    await waitFor(`${n} more check passes`, async () => (await checks()) >= from + n, 20_000);
  };
  const dlq = async (stage: string, n: number) => {
    for (let i = 0; i < n; i++)
      await r.inst.redis.xadd(r.inst.keys.deadLetter(stage, i % 8), '*', 'tx', `tx_dl_${stage}_${i}`, 'ev', '{}', 'error', 'Error', 'message', 'test');
  };
  try {
    // nothing to report yet, and no workers-seen key at all: passes run, nothing is sent
    await passes(2);
    assert.equal(await r.inst.redis.exists(r.inst.keys.global('workers-seen')), 0);
    assert.equal(receiver.on(slack).length, 0);

    const now = Date.now();
    await r.inst.redis.zadd(r.inst.keys.global('workers-seen'), now - 90_000, 'host-a-dead', now, 'host-b-live');
    await dlq('validate', 2);
    await passes(2);
    await dlq('validate', 1); // 3 since the start: at the threshold
    await dlq('risk', 2); // under it
    await waitFor('both alerts', () => receiver.ok(slack).length >= 2, 20_000);
    await passes(4);
    await drained(r);

    const got = receiver.on(slack);
    assert.equal(got.length, 2, got.map((g) => JSON.stringify(g.body)).join('\n'));
    const dl = mentions(got, 'Dead letters piling up');
    assert.equal(dl.length, 1);
    assert.match((dl[0]!.body as { text: string }).text, /Stage validate has 3 dead letters \(3 new since the last alert; threshold 3\)/);
    const hb = mentions(got, 'Worker heartbeat missing');
    assert.equal(hb.length, 1);
    assert.match((hb[0]!.body as { text: string }).text, /Worker host-a-dead has not sent a heartbeat for 9\ds/);
    assert.equal(mentions(got, 'host-b-live').length, 0);
    assert.equal(await metric(r.registry, 'rill_alerts_raised_total', { type: 'dead_letters' }), 1);
    assert.equal(await metric(r.registry, 'rill_alerts_raised_total', { type: 'worker_missing' }), 1);

    // growth under the threshold since the last alert: nothing new
    await dlq('validate', 2);
    await passes(3);
    await drained(r);
    assert.equal(receiver.on(slack).length, 2);
    assert.equal(await metric(r.registry, 'rill_alerts_raised_total', { type: 'dead_letters' }), 1);
  } finally {
    await r.stop();
  }
});
