// The API as a contract: the OpenAPI document is valid OpenAPI 3.1 (swagger-parser), every route
// of the app is in it, and real answers of every route (successes and problems) are documented
// statuses with bodies that validate against it. No worker runs: held reviews are put in the
// review queue as the risk stage does, and webhook deliveries are only queued.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import SwaggerParser from '@apidevtools/swagger-parser';
import { pino } from 'pino';
import type { TransactionEvent } from '../core/event.ts';
import { createRegistry } from '../core/metrics.ts';
import { partitionOf } from '../core/partition.ts';
import { newTxId } from '../core/tx-id.ts';
import { createIngestApp } from '../ingest/app.ts';
import { createApiKey, KeyStore } from '../core/api-keys.ts';
import { openApiDocument } from '../ingest/openapi/spec.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { holdForReview } from '../core/review-queue.ts';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { OpenApiContract } from './helpers/openapi-contract.ts';
import { SHIPPED_TOPOLOGY, writeTopology } from './helpers/topology-file.ts';

const M = 'merchant_contract';
const tx = (over: Record<string, unknown> = {}) => ({ type: 'payin', merchant_id: M, amount: 1999, currency: 'USD', ...over });

describe('OpenAPI contract', () => {
  let inst: TestInstance;
  let ingest: TestIngest;
  let limited: TestIngest;
  let shedding: TestIngest;
  const doc = openApiDocument();
  const contract = new OpenApiContract(doc);
  let merchantKey = '';
  let tapKey = '';
  let operatorKey = '';

  const auth = (key: string, more: Record<string, string> = {}) => ({ authorization: `Bearer ${key}`, ...more });
  const post = (base: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
    contract.fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(merchantKey), ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  /** A call to `ingest` with `key`; a JSON body when `body` is given. */
  const call = (method: string, path: string, key: string | undefined, body?: unknown, headers: Record<string, string> = {}) =>
    contract.fetch(`${ingest.url}${path}`, {
      method,
      headers: { ...(key ? auth(key) : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });

  before(async () => {
    inst = await createInstance('openapi-contract');
    ingest = await startTestIngest(inst);
    // a bucket of one event and a gate that sheds: 429 and 503 for real
    limited = await startTestIngest(inst, { topology: writeTopology({ 'ingest.rate_limit': { per_second: 0.001, burst: 1 } }, SHIPPED_TOPOLOGY).topology });
    shedding = await startTestIngest(inst, { load: { state: { shedding: true, reasons: ['test'] }, retryAfterSeconds: 2 } });
    merchantKey = await createApiKey(inst.pool, { merchantId: M });
    tapKey = await createApiKey(inst.pool, { scope: 'tap' });
    operatorKey = await createApiKey(inst.pool, { scope: 'operator' });
  });

  after(async () => {
    await Promise.all([ingest?.server.close(), limited?.server.close(), shedding?.server.close()]);
    await inst?.cleanup();
  });

  test('the document is valid OpenAPI 3.1', async () => {
    // validate() dereferences in place: give it a copy
    const api = await SwaggerParser.validate(structuredClone(doc) as never);
    assert.equal((api as { openapi: string }).openapi, '3.1.0');
  });

  test('GET /openapi.json serves the document, /docs the reference page and its assets', async () => {
    const served = await contract.fetch(`${ingest.url}/openapi.json`);
    assert.deepEqual(served.body, doc);
    const page = await contract.fetch(`${ingest.url}/docs`);
    assert.match(String(page.body), /swagger-ui-bundle\.js/);
    for (const [asset, type] of [
      ['swagger-ui-bundle.js', 'text/javascript'],
      ['swagger-ui.css', 'text/css'],
      ['init.js', 'text/javascript'],
    ]) {
      const res = await fetch(`${ingest.url}/docs/${asset}`);
      assert.equal(res.status, 200, asset);
      assert.match(res.headers.get('content-type') ?? '', new RegExp(type!));
      assert.ok((await res.arrayBuffer()).byteLength > 0);
    }
  });

  test('every route of the app is in the document', () => {
    const app = createIngestApp({
      env: inst.env,
      topology: ingest.topology,
      redis: inst.redis,
      pool: inst.pool,
      registry: createRegistry(),
      logger: pino({ level: 'silent' }),
      keyStore: new KeyStore(inst.pool),
    });
    const routes = app.routes
      .filter((r) => r.method !== 'ALL' && !r.path.startsWith('/docs/')) // middleware; the page's static assets
      .map((r) => ({ method: r.method.toLowerCase(), path: r.path.replace(/:(\w+)/g, '{$1}') }));
    assert.ok(routes.length >= 10);
    const missing = routes.filter(({ method, path }) => !doc.paths[path]?.[method]);
    assert.deepEqual(missing, [], 'routes without an OpenAPI operation: add them to OPERATIONS in ingest/openapi/spec.ts');
  });

  test('POST /v1/transactions: 202, replay, and each problem', async () => {
    const first = await post(ingest.url, '/v1/transactions', tx(), { 'idempotency-key': 'contract-1' });
    assert.equal(first.status, 202);
    const again = await post(ingest.url, '/v1/transactions', tx(), { 'idempotency-key': 'contract-1' });
    assert.deepEqual(again.body, first.body);
    assert.equal((await post(ingest.url, '/v1/transactions', tx({ amount: 5 }), { 'idempotency-key': 'contract-1' })).status, 409);
    const invalid = await post(ingest.url, '/v1/transactions', tx({ amount: -1, extra: 1 }));
    assert.equal(invalid.status, 400);
    assert.equal((invalid.body as { errors: unknown[] }).errors.length, 2);
    assert.equal((await post(ingest.url, '/v1/transactions', '{')).status, 400);
    assert.equal((await post(ingest.url, '/v1/transactions', tx(), { authorization: 'Bearer nope' })).status, 401);
    assert.equal((await post(ingest.url, '/v1/transactions', tx({ merchant_id: 'someone_else' }))).status, 403);
    assert.equal((await post(ingest.url, '/v1/transactions', tx(), { 'content-type': 'text/plain' })).status, 415);
    assert.equal((await post(ingest.url, '/v1/transactions', tx({ reference: 'x'.repeat(70_000) }))).status, 413);
    assert.equal((await post(limited.url, '/v1/transactions', tx())).status, 202);
    const over = await post(limited.url, '/v1/transactions', tx());
    assert.equal(over.status, 429);
    assert.equal((await post(shedding.url, '/v1/transactions', tx())).status, 503);
  });

  test('POST /v1/transactions/batch: 202 with per-line results, and each problem', async () => {
    const lines = [tx({ idempotency_key: 'b-1' }), tx({ amount: 0 }), tx({ merchant_id: 'other_merchant' })];
    const ok = await post(ingest.url, '/v1/transactions/batch', lines);
    assert.equal(ok.status, 202);
    assert.deepEqual(
      (ok.body as { results: { status: string }[] }).results.map((r) => r.status),
      ['accepted', 'rejected', 'rejected'],
    );
    const ndjson = await post(ingest.url, '/v1/transactions/batch', `${JSON.stringify(tx({ idempotency_key: 'b-1' }))}\n`, {
      'content-type': 'application/x-ndjson',
    });
    assert.equal((ndjson.body as { results: { status: string }[] }).results[0]!.status, 'duplicate');
    assert.equal((await post(ingest.url, '/v1/transactions/batch', [])).status, 400);
    assert.equal((await post(ingest.url, '/v1/transactions/batch', lines, { 'idempotency-key': 'k' })).status, 400);
    assert.equal((await post(ingest.url, '/v1/transactions/batch', lines, { authorization: 'Bearer nope' })).status, 401);
    assert.equal((await post(ingest.url, '/v1/transactions/batch', lines, { authorization: `Bearer ${tapKey}` })).status, 403);
    assert.equal((await post(ingest.url, '/v1/transactions/batch', lines, { 'content-type': 'text/csv' })).status, 415);
    assert.equal(
      (
        await post(
          ingest.url,
          '/v1/transactions/batch',
          Array.from({ length: 10_001 }, () => 1),
        )
      ).status,
      413,
    );
    assert.equal((await post(shedding.url, '/v1/transactions/batch', lines)).status, 503);
  });

  test('GET /v1/transactions/{id} and /v1/wallets', async () => {
    const { body } = await post(ingest.url, '/v1/transactions', tx());
    const id = (body as { id: string }).id;
    const found = await contract.fetch(`${ingest.url}/v1/transactions/${id}`, { headers: auth(merchantKey) });
    assert.equal(found.status, 200);
    assert.equal((found.body as { status: string }).status, 'accepted');
    assert.equal((await contract.fetch(`${ingest.url}/v1/transactions/tx_nope`, { headers: auth(merchantKey) })).status, 404);
    assert.equal((await contract.fetch(`${ingest.url}/v1/transactions/${id}`)).status, 401);
    assert.equal((await contract.fetch(`${ingest.url}/v1/transactions/${id}`, { headers: auth(tapKey) })).status, 403);
    assert.equal((await contract.fetch(`${ingest.url}/v1/wallets`, { headers: auth(merchantKey) })).status, 200);
    assert.equal((await contract.fetch(`${ingest.url}/v1/wallets`)).status, 401);
    assert.equal((await contract.fetch(`${ingest.url}/v1/wallets`, { headers: auth(tapKey) })).status, 403);
  });

  test('GET /v1/streams/{topic}/tail: an event stream, and each problem', async () => {
    const abort = new AbortController();
    const res = await fetch(`${ingest.url}/v1/streams/transactions/tail?from=earliest`, { headers: auth(tapKey), signal: abort.signal });
    contract.check('get', '/v1/streams/transactions/tail', res.status, res.headers.get('content-type') ?? '', '');
    assert.equal(res.status, 200);
    abort.abort();
    await res.body?.cancel().catch(() => {});
    const tail = (q: string, key?: string) => contract.fetch(`${ingest.url}/v1/streams/${q}`, { headers: key ? auth(key) : {} });
    assert.equal((await tail('transactions/tail?from=yesterday', tapKey)).status, 400);
    assert.equal((await tail('transactions/tail')).status, 401);
    assert.equal((await tail('transactions/tail', merchantKey)).status, 403);
    assert.equal((await tail('nope/tail', tapKey)).status, 404);
  });

  test('risk review routes: list, approve, decline, and each problem', async () => {
    const risk = ingest.topology.stages.risk;
    assert.ok(risk, 'the shipped topology has a risk stage (the review routes need it)');
    const partition = partitionOf(M, ingest.topology.topics[risk.input]!.partitions);
    const held = (amount: number): TransactionEvent => ({
      id: newTxId(),
      merchant_id: M,
      type: 'payin',
      amount,
      currency: 'USD',
      ingested_at: Date.now(),
      status: 'in_review',
      risk_score: 72,
      risk_reasons: ["amount_z: far above the merchant's usual amount"],
      risk_rules_version: 0,
    });
    const [a, b] = [held(90_000), held(91_000)];
    await holdForReview(
      inst.redis,
      inst.keys,
      [a, b].map((event) => ({ partition, event })),
    );

    const list = await call('GET', `/v1/reviews?merchant_id=${M}`, operatorKey);
    assert.equal(list.status, 200);
    assert.deepEqual(
      (list.body as { data: { id: string }[] }).data.map((e) => e.id),
      [a.id, b.id].sort(),
    ); // oldest id first
    assert.equal((await call('GET', '/v1/reviews', operatorKey)).status, 200);
    const view = (await call('GET', `/v1/transactions/${a.id}`, merchantKey)).body as { status: string; risk_reasons: string[] };
    assert.deepEqual([view.status, view.risk_reasons], ['in_review', a.risk_reasons]);

    assert.equal((await call('POST', `/v1/reviews/${a.id}/approve`, operatorKey, { note: 5 })).status, 400);
    assert.equal((await call('POST', `/v1/reviews/${a.id}/approve`, operatorKey, '{')).status, 400);
    const approved = await call('POST', `/v1/reviews/${a.id}/approve`, operatorKey);
    assert.equal(approved.status, 200);
    assert.deepEqual([(approved.body as { status: string }).status, (approved.body as { failure_code: unknown }).failure_code], ['accepted', null]);
    const declined = await call('POST', `/v1/reviews/${b.id}/decline`, operatorKey, { note: 'stolen card' });
    assert.equal(declined.status, 200);
    assert.equal((declined.body as { failure_code: string }).failure_code, 'risk_declined');
    assert.equal((await call('POST', `/v1/reviews/${a.id}/decline`, operatorKey)).status, 404); // decided once

    assert.equal((await call('GET', '/v1/reviews', undefined)).status, 401);
    assert.equal((await call('GET', '/v1/reviews', merchantKey)).status, 403);
    assert.equal((await call('POST', `/v1/reviews/${b.id}/approve`, undefined)).status, 401);
    assert.equal((await call('POST', `/v1/reviews/${b.id}/approve`, merchantKey)).status, 403);
  });

  test('webhook endpoint routes: create, read, change, rotate, test, deliveries, recover, redeliver, delete, and each problem', async () => {
    const base = '/v1/webhook_endpoints';
    const created = await call('POST', base, merchantKey, {
      url: 'https://hooks.example.com/rill',
      event_types: ['transaction.succeeded', 'webhook.test'],
      description: 'contract',
    });
    assert.equal(created.status, 201);
    const { id, secret } = created.body as { id: string; secret: string };
    assert.match(secret, /^whsec_/);
    const list = await call('GET', base, merchantKey);
    assert.deepEqual(
      (list.body as { data: { id: string }[] }).data.map((e) => e.id),
      [id],
    );
    assert.equal((await call('GET', `${base}/${id}`, merchantKey)).status, 200);
    const patched = await call('PATCH', `${base}/${id}`, merchantKey, { max_in_flight: 2, description: null });
    assert.equal(patched.status, 200);
    assert.equal((patched.body as { max_in_flight: number }).max_in_flight, 2);
    const rotated = await call('POST', `${base}/${id}/rotate_secret`, merchantKey);
    assert.equal(rotated.status, 200);
    assert.notEqual((rotated.body as { secret: string }).secret, secret);
    const sent = await call('POST', `${base}/${id}/test`, merchantKey);
    assert.equal(sent.status, 202);
    const eventId = (sent.body as { event_id: string }).event_id;
    const deliveries = await call('GET', `${base}/${id}/deliveries?limit=10`, merchantKey);
    assert.equal(deliveries.status, 200);
    assert.deepEqual(
      (deliveries.body as { data: { event_id: string; status: string }[] }).data.map((d) => [d.event_id, d.status]),
      [[eventId, 'pending']],
    );
    assert.equal((await call('POST', `${base}/${id}/recover`, merchantKey, { since: new Date(Date.now() - 60_000).toISOString() })).status, 202);
    assert.equal((await call('POST', `/v1/events/${eventId}/redeliver`, merchantKey, { endpoint_id: id })).status, 202);
    assert.equal((await call('POST', `/v1/events/${eventId}/redeliver`, merchantKey)).status, 202);

    assert.equal((await call('POST', base, merchantKey, { url: 'http://hooks.example.com/rill' })).status, 400); // https only
    assert.equal(((await call('POST', base, merchantKey, { url: 'https://hooks.example.com/x', extra: 1 })).body as { errors: unknown[] }).errors.length, 1);
    assert.equal((await call('POST', base, merchantKey, '{')).status, 400);
    assert.equal((await call('PATCH', `${base}/${id}`, merchantKey, { max_in_flight: 0 })).status, 400);
    assert.equal((await call('POST', `${base}/${id}/recover`, merchantKey, { since: 'yesterday' })).status, 400);
    assert.equal((await call('POST', `/v1/events/${eventId}/redeliver`, merchantKey, { endpoint_id: '' })).status, 400);
    assert.equal((await call('POST', base, merchantKey, { url: 'https://hooks.example.com/x' }, { 'content-type': 'text/plain' })).status, 415);
    assert.equal((await call('POST', base, merchantKey, { url: 'https://hooks.example.com/x', description: 'x'.repeat(20_000) })).status, 413);
    assert.equal((await call('GET', base, undefined)).status, 401);
    assert.equal((await call('GET', base, tapKey)).status, 403);
    assert.equal((await call('POST', `${base}/${id}/test`, operatorKey)).status, 403);
    assert.equal((await call('GET', `${base}/we_nope`, merchantKey)).status, 404);
    assert.equal((await call('GET', `${base}/we_nope/deliveries`, merchantKey)).status, 404);
    assert.equal((await call('POST', '/v1/events/evt_nope/redeliver', merchantKey)).status, 404);
    assert.equal((await call('POST', `/v1/events/${eventId}/redeliver`, merchantKey, { endpoint_id: 'we_nope' })).status, 404);

    assert.equal((await call('DELETE', `${base}/${id}`, merchantKey)).status, 204);
    assert.equal((await call('GET', `${base}/${id}`, merchantKey)).status, 404);
    assert.equal((await call('DELETE', `${base}/${id}`, merchantKey)).status, 404);
    assert.equal((await call('PATCH', `${base}/${id}`, merchantKey, { enabled: true })).status, 404);
    assert.equal((await call('POST', `${base}/${id}/rotate_secret`, merchantKey)).status, 404);
    assert.equal((await call('POST', `${base}/${id}/recover`, merchantKey, { since: '2020-01-01T00:00:00Z' })).status, 404);
  });

  test('operations routes', async () => {
    assert.equal((await contract.fetch(`${ingest.url}/healthz`)).status, 200);
    assert.equal((await contract.fetch(`${ingest.url}/readyz`)).status, 200);
    assert.equal((await contract.fetch(`${shedding.url}/readyz`)).status, 503);
    assert.equal((await contract.fetch(`${ingest.url}/metrics`)).status, 200);
  });
});
