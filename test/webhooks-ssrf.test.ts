// SSRF: merchant webhook URLs are refused at registration when they are not https (http only to
// loopback with RILL_WEBHOOKS_ALLOW_HTTP) or name a private, link-local or metadata address; at
// connect time the address actually dialled is checked again (a literal, or what a name resolves
// to); a redirect is a failed attempt, never followed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { WebhookReceiver } from './helpers/webhook-receiver.ts';
import { createApiKey } from '../core/api-keys.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { EndpointClients } from '../sinks/webhooks/http.ts';
import { checkEndpointUrl, refusedAddress } from '../core/webhooks/url-guard.ts';

const STRICT = { allowLoopback: false, allowPrivate: false };
const DEV = { allowLoopback: true, allowPrivate: false };

let inst: TestInstance;
let ingest: TestIngest;
let key = '';
let receiver: WebhookReceiver;
const flag = process.env.RILL_WEBHOOKS_ALLOW_HTTP;

before(async () => {
  delete process.env.RILL_WEBHOOKS_ALLOW_HTTP; // production rules for the API
  inst = await createInstance('whssrf');
  ingest = await startTestIngest(inst);
  key = await createApiKey(inst.pool, { merchantId: 'm_ssrf' });
  receiver = new WebhookReceiver();
  await receiver.start();
});
after(async () => {
  await receiver?.close();
  await ingest?.server.close();
  await inst?.cleanup();
  if (flag !== undefined) process.env.RILL_WEBHOOKS_ALLOW_HTTP = flag;
});

test('registration refuses private, link-local, metadata and loopback targets, and plain http', async () => {
  const refused = [
    'https://10.0.0.1/hook',
    'https://10.255.1.2:8443/x',
    'https://169.254.169.254/latest/meta-data',
    'https://192.168.1.10/',
    'https://172.16.0.5/',
    'https://[::1]/hook',
    'http://[::1]:8080/hook',
    'https://[fe80::1]/',
    'https://[::ffff:10.0.0.1]/',
    'https://localhost/hook',
    'http://127.0.0.1:9/hook',
    'http://example.com/hook',
    'ftp://example.com/',
    'https://user:pw@example.com/',
  ];
  for (const url of refused) {
    const res = await fetch(`${ingest.url}/v1/webhook_endpoints`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url }),
    });
    assert.equal(res.status, 400, url);
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
    const body = (await res.json()) as { errors: { path: string }[] };
    assert.equal(body.errors[0]!.path, '/url', url);
  }
  const { rows } = await inst.pool.query('SELECT count(*)::int AS n FROM webhook_endpoints');
  assert.equal(rows[0].n, 0);
  // with the dev flag: http to loopback only, and never metadata or private ranges
  assert.equal(checkEndpointUrl('http://127.0.0.1:8080/hook', DEV), undefined);
  assert.equal(checkEndpointUrl('http://[::1]:8080/hook', DEV), undefined);
  assert.match(String(checkEndpointUrl('http://10.0.0.1/hook', DEV)), /loopback/);
  assert.match(String(checkEndpointUrl('https://169.254.169.254/', { allowLoopback: true, allowPrivate: true })), /metadata/);
  assert.equal(checkEndpointUrl('https://hooks.example.com/rill', STRICT), undefined);
  assert.match(String(refusedAddress('::ffff:169.254.169.254', DEV)), /metadata/);
});

test('connect time: the dialled address is checked (literal and resolved); redirects are not followed', async () => {
  const strict = new EndpointClients({ connectTimeoutMs: 2_000, requestTimeoutMs: 2_000, maxConnections: 1, policy: STRICT });
  const dev = new EndpointClients({ connectTimeoutMs: 2_000, requestTimeoutMs: 2_000, maxConnections: 1, policy: DEV });
  try {
    const port = new URL(receiver.base).port;
    const literal = await strict.post('we_1', `${receiver.base}/x`, {}, '{}');
    assert.equal(literal.ok, false);
    assert.match(String(literal.error), /refused: 127\.0\.0\.1 is a loopback address/);
    const resolved = await strict.post('we_2', `http://localhost:${port}/x`, {}, '{}');
    assert.equal(resolved.ok, false);
    assert.match(String(resolved.error), /refused: localhost resolves to .* loopback/);
    const v6 = await strict.post('we_3', `http://[::1]:${port}/x`, {}, '{}');
    assert.match(String(v6.error), /refused: ::1 is a loopback address/);
    const meta = await dev.post('we_4', 'http://169.254.169.254/latest/meta-data', {}, '{}');
    assert.match(String(meta.error), /metadata/);
    assert.equal(receiver.received.length, 0, 'no refused request reached anything');
    // a redirect to the metadata address: one request, answered 302, a failed attempt
    receiver.script('/redirect', [], { status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data' } });
    const redirected = await dev.post('we_5', `${receiver.base}/redirect`, {}, '{}');
    assert.equal(redirected.ok, false);
    assert.equal(redirected.status, 302);
    assert.match(String(redirected.error), /redirects are not followed/);
    assert.equal(receiver.received.length, 1);
  } finally {
    await strict.close();
    await dev.close();
  }
});
