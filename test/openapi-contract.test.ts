// The API as a contract: the OpenAPI document is valid OpenAPI 3.1 (swagger-parser), every route
// of the app is in it, and real answers of every route (successes and problems) are documented
// statuses with bodies that validate against it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import SwaggerParser from '@apidevtools/swagger-parser';
import { pino } from 'pino';
import { createRegistry } from '../core/metrics.ts';
import { createIngestApp } from '../ingest/app.ts';
import { createApiKey, KeyStore } from '../ingest/auth/index.ts';
import { openApiDocument } from '../ingest/openapi/spec.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
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

  const auth = (key: string, more: Record<string, string> = {}) => ({ authorization: `Bearer ${key}`, ...more });
  const post = (base: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
    contract.fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(merchantKey), ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  before(async () => {
    inst = await createInstance('openapi-contract');
    ingest = await startTestIngest(inst);
    // a bucket of one event and a gate that sheds: 429 and 503 for real
    limited = await startTestIngest(inst, { topology: writeTopology({ 'ingest.rate_limit': { per_second: 0.001, burst: 1 } }, SHIPPED_TOPOLOGY).topology });
    shedding = await startTestIngest(inst, { load: { state: { shedding: true, reasons: ['test'] }, retryAfterSeconds: 2 } });
    merchantKey = await createApiKey(inst.pool, { merchantId: M });
    tapKey = await createApiKey(inst.pool, { scope: 'tap' });
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
    for (const [asset, type] of [['swagger-ui-bundle.js', 'text/javascript'], ['swagger-ui.css', 'text/css'], ['init.js', 'text/javascript']]) {
      const res = await fetch(`${ingest.url}/docs/${asset}`);
      assert.equal(res.status, 200, asset);
      assert.match(res.headers.get('content-type') ?? '', new RegExp(type!));
      assert.ok((await res.arrayBuffer()).byteLength > 0);
    }
  });

  test('every route of the app is in the document', () => {
    const app = createIngestApp({
      env: inst.env, topology: ingest.topology, redis: inst.redis, pool: inst.pool, registry: createRegistry(),
      logger: pino({ level: 'silent' }), keyStore: new KeyStore(inst.pool),
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
    assert.deepEqual((ok.body as { results: { status: string }[] }).results.map((r) => r.status), ['accepted', 'rejected', 'rejected']);
    const ndjson = await post(ingest.url, '/v1/transactions/batch', `${JSON.stringify(tx({ idempotency_key: 'b-1' }))}\n`, {
      'content-type': 'application/x-ndjson',
    });
    assert.equal((ndjson.body as { results: { status: string }[] }).results[0]!.status, 'duplicate');
    assert.equal((await post(ingest.url, '/v1/transactions/batch', [])).status, 400);
    assert.equal((await post(ingest.url, '/v1/transactions/batch', lines, { 'idempotency-key': 'k' })).status, 400);
    assert.equal((await post(ingest.url, '/v1/transactions/batch', lines, { authorization: 'Bearer nope' })).status, 401);
    assert.equal((await post(ingest.url, '/v1/transactions/batch', lines, { authorization: `Bearer ${tapKey}` })).status, 403);
    assert.equal((await post(ingest.url, '/v1/transactions/batch', lines, { 'content-type': 'text/csv' })).status, 415);
    assert.equal((await post(ingest.url, '/v1/transactions/batch', Array.from({ length: 10_001 }, () => 1))).status, 413);
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

  test('operations routes', async () => {
    assert.equal((await contract.fetch(`${ingest.url}/healthz`)).status, 200);
    assert.equal((await contract.fetch(`${ingest.url}/readyz`)).status, 200);
    assert.equal((await contract.fetch(`${shedding.url}/readyz`)).status, 503);
    assert.equal((await contract.fetch(`${ingest.url}/metrics`)).status, 200);
  });
});
