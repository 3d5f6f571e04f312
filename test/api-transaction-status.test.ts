// GET /v1/transactions/:id: a transaction's status as its merchant sees it, through its life:
// accepted (waiting in the ingest topic), processing (delivered to the first stage, or waiting for
// a retry), succeeded (in Postgres, with processed_at), failed (Postgres, with its failure_code:
// a merchant's mistake such as a currency not settled here), dead_lettered (with the stage and
// reason: here a test stage failing fatally). Merchant-scoped: another merchant's id, an unknown id and a malformed id all
// answer the same 404.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { outstanding } from './helpers/pipeline.ts';
import { flakyStage, writeTopology } from './helpers/topology-file.ts';
import { waitFor } from './helpers/wait.ts';
import { startWorker } from '../cli/start-worker.ts';
import type { Worker } from '../cli/start-worker.ts';
import { fieldsToMap } from '../core/entry.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { partitionOf } from '../core/partition.ts';
import type { Topology } from '../core/topology/schema.ts';
import { createApiKey } from '../core/api-keys.ts';
import { TRANSACTION_BY_ID_SQL, txIdTime } from '../ingest/routes/transaction-status.ts';
import type { TransactionView } from '../core/transaction-view.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { newTxId } from '../core/tx-id.ts';

const M = 'merchant_status';

describe('GET /v1/transactions/:id', () => {
  let inst: TestInstance;
  let topology: Topology;
  let ingest: TestIngest;
  let worker: Worker | undefined;
  let partitions: number;
  /** A merchant sharing M's partition (so its lookups scan the very same streams), and one that does not. */
  let neighbour: string;
  let stranger: string;
  const apiKeys: Record<string, string> = {};
  const ids = { payin: '', payout: '', zar: '', fatal: '' };

  const get = async (id: string, key = apiKeys.main!) => {
    const res = await fetch(`${ingest.url}/v1/transactions/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${key}` } });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: JSON.parse(text) as TransactionView & Record<string, unknown> };
  };
  const post = async (body: Record<string, unknown>) => {
    const res = await fetch(`${ingest.url}/v1/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKeys.main}` },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 202);
    return ((await res.json()) as { id: string }).id;
  };
  const lane = (l: string) => inst.keys.lane('transactions', partitionOf(M, partitions), l);

  /** Everything a 404 says, so two of them can be compared: they must not tell causes apart. */
  const notFound = async (id: string, key?: string) => {
    const r = await get(id, key);
    assert.equal(r.status, 404, `${id}: ${r.text}`);
    assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
    return r.text;
  };

  const PAYIN = {
    type: 'payin',
    merchant_id: M,
    amount: 1999,
    currency: 'EUR',
    reference: 'order-1',
    occurred_at: '2024-05-01T12:00:00.250+02:00',
    metadata: { channel: 'web' },
  };
  const PAYOUT = { type: 'payout', merchant_id: M, amount: 5000, currency: 'USD', reference: 'po-1' };
  const ZAR = { type: 'payin', merchant_id: M, amount: 700, currency: 'ZAR', reference: 'zar-1' };
  const FATAL = { type: 'payin', merchant_id: M, amount: 800, currency: 'EUR', reference: 'fatal-1', metadata: { fail: 'fatal' } };

  before(async () => {
    inst = await createInstance('api-status');
    // the engine topology with a test stage between validate and the sink: validate → flaky → sink
    ({ topology } = writeTopology(flakyStage()));
    partitions = topology.topics.transactions!.partitions;
    ingest = await startTestIngest(inst, { topology });
    const mine = partitionOf(M, partitions);
    const candidates = Array.from({ length: 200 }, (_, i) => `merchant_n${i}`);
    neighbour = candidates.find((m) => partitionOf(m, partitions) === mine)!;
    stranger = candidates.find((m) => partitionOf(m, partitions) !== mine)!;
    apiKeys.main = await createApiKey(inst.pool, { merchantId: M });
    apiKeys.neighbour = await createApiKey(inst.pool, { merchantId: neighbour });
    apiKeys.stranger = await createApiKey(inst.pool, { merchantId: stranger });
    apiKeys.tap = await createApiKey(inst.pool, { scope: 'tap' });
  });

  after(async () => {
    await worker?.stop();
    await ingest?.server.close();
    await inst?.cleanup();
  });

  test('accepted: in the ingest topic, no worker has seen it yet', async () => {
    const t0 = Date.now();
    ids.payin = await post(PAYIN);
    const r = await get(ids.payin);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const ingestedAt = txIdTime(ids.payin)!;
    assert.ok(ingestedAt >= t0 && ingestedAt <= Date.now());
    assert.deepEqual(r.json, {
      id: ids.payin,
      merchant_id: M,
      type: 'payin',
      amount: 1999,
      currency: 'EUR',
      reference: 'order-1',
      metadata: { channel: 'web' },
      status: 'accepted',
      failure_code: null,
      failure_reason: null,
      risk_score: null,
      risk_reasons: null,
      occurred_at: '2024-05-01T10:00:00.250Z',
      ingested_at: new Date(ingestedAt).toISOString(),
      processed_at: null,
    });
  });

  test("processing: delivered to the first stage's group (and back to accepted when it is not)", async () => {
    ids.payout = await post(PAYOUT);
    assert.equal((await get(ids.payout)).json.status, 'accepted');
    // the validate group has been handed everything in the high lane so far
    await inst.redis.xgroup('CREATE', lane('high'), 'validate', '$', 'MKSTREAM');
    assert.equal((await get(ids.payout)).json.status, 'processing');
    // the payin is in another lane, which that group has not read
    assert.equal((await get(ids.payin)).json.status, 'accepted');
    // rewound (as a replay would): not delivered any more; the worker below starts from here
    await inst.redis.xgroup('SETID', lane('high'), 'validate', '0');
    assert.equal((await get(ids.payout)).json.status, 'accepted');
  });

  test("processing: a retry waiting in a stage's delay set", async () => {
    const id = await post({ ...PAYOUT, reference: 'retry-1' });
    const [[entryId, raw]] = (await inst.redis.xrange(lane('high'), '-', '+')).filter(([, f]) => fieldsToMap(f).get('tx') === id) as [[string, string[]]];
    const fields = fieldsToMap(raw);
    // as the stage parks a retry: the entry acknowledged (here: removed), the event in the delay set
    await inst.redis.xdel(lane('high'), entryId);
    const delay = inst.keys.delay('validate', partitionOf(M, partitions));
    const member = JSON.stringify({ l: 2, f: ['tx', id, 'ev', fields.get('ev'), 'at', '1', 'ff', String(Date.now())], u: `${lane('high')}/${entryId}` });
    await inst.redis.zadd(delay, Date.now() + 3_600_000, member);
    const r = await get(id);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'processing');
    assert.equal(r.json.reference, 'retry-1');
    assert.equal(r.json.amount, 5000);
    // gone from everywhere (the delay set emptied again before the worker runs): 404
    await inst.redis.zrem(delay, member);
    await notFound(id);
  });

  test("another merchant's key, unknown and malformed ids: the same 404", async () => {
    const unknown = newTxId();
    const bodies = new Set<string>([
      await notFound(ids.payin, apiKeys.neighbour), // same partition: found in the stream, not theirs
      await notFound(ids.payin, apiKeys.stranger),
      await notFound(unknown),
      await notFound(newTxId(txIdTime(ids.payin)!)), // same millisecond, another id
      await notFound('tx_123'),
      await notFound(ids.payin.toLowerCase()),
      await notFound('not-an-id'),
      await notFound(`${ids.payin}0`),
      await notFound('tx_ZZZZZZZZZZZZZZZZZZZZZZZZZZ'), // past the 48-bit ULID time
      await notFound(newTxId(Date.now() + 3_600_000)), // minted in the future
    ]);
    assert.equal(bodies.size, 1, [...bodies].join('\n'));
    const p = JSON.parse([...bodies][0]!) as Record<string, unknown>;
    assert.equal(p.status, 404);
    assert.match(String(p.type), /not-found/);
    // auth comes first: no key 401, a tap key 403
    assert.equal((await fetch(`${ingest.url}/v1/transactions/${ids.payin}`)).status, 401);
    assert.equal((await get(ids.payin, apiKeys.tap)).status, 403);
  });

  test('after the worker: succeeded with processed_at (from Postgres), ZAR failed with its code and reason, a fatal error dead_lettered with its stage and reason', async () => {
    ids.zar = await post(ZAR);
    ids.fatal = await post(FATAL);
    assert.equal((await get(ids.zar)).json.status, 'accepted');
    assert.equal((await get(ids.fatal)).json.status, 'accepted');
    worker = await startWorker({ env: inst.env, topology, registry: createRegistry(), logger: createLogger('silent') });
    await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);
    for (const id of [ids.payin, ids.payout, ids.zar, ids.fatal]) {
      await waitFor(`${id} to be settled`, async () => !['accepted', 'processing'].includes((await get(id)).json.status), 30_000);
    }

    const payin = await get(ids.payin);
    assert.equal(payin.status, 200, payin.text);
    assert.equal(payin.json.status, 'succeeded');
    assert.equal(payin.json.failure_reason, null);
    assert.ok(payin.json.processed_at && Date.parse(payin.json.processed_at) >= txIdTime(ids.payin)!);
    const { status: _s, processed_at: _p, ...rest } = payin.json;
    assert.deepEqual(rest, {
      id: ids.payin,
      merchant_id: M,
      type: 'payin',
      amount: 1999,
      currency: 'EUR',
      reference: 'order-1',
      metadata: { channel: 'web' },
      failure_code: null,
      failure_reason: null,
      risk_score: null,
      risk_reasons: null,
      occurred_at: '2024-05-01T10:00:00.250Z',
      ingested_at: new Date(txIdTime(ids.payin)!).toISOString(),
    });
    assert.equal((await get(ids.payout)).json.status, 'succeeded');

    const zar = await get(ids.zar);
    assert.equal(zar.status, 200, zar.text);
    // a merchant's mistake: a row, failed with its stable code (not a dead letter)
    assert.equal(zar.json.status, 'failed');
    assert.equal(zar.json.failure_code, 'currency_not_allowed');
    assert.match(zar.json.failure_reason ?? '', /^validate: .*currency ZAR is not accepted/);
    assert.ok(zar.json.processed_at && Date.parse(zar.json.processed_at) >= txIdTime(ids.zar)!);
    assert.equal(zar.json.currency, 'ZAR');
    assert.equal(zar.json.amount, 700);
    assert.equal(zar.json.reference, 'zar-1');

    const fatal = await get(ids.fatal);
    assert.equal(fatal.status, 200, fatal.text);
    assert.equal(fatal.json.status, 'dead_lettered');
    assert.equal(fatal.json.failure_code, null);
    assert.match(fatal.json.failure_reason ?? '', /^flaky: told to fail fatally/);
    assert.ok(fatal.json.processed_at && Date.parse(fatal.json.processed_at) >= txIdTime(ids.fatal)!);
    assert.equal(fatal.json.currency, 'EUR');
    assert.equal(fatal.json.amount, 800);
    assert.equal(fatal.json.reference, 'fatal-1');
    // the dead-letter index is per partition, shared with the neighbour: still not theirs
    await notFound(ids.fatal, apiKeys.neighbour);
    await notFound(ids.zar, apiKeys.neighbour);
    await notFound(ids.payin, apiKeys.neighbour);
  });

  test("failed (the pipeline's verdict, from Postgres) with its reason", async () => {
    const now = Date.now();
    const id = newTxId(now);
    await inst.pool.query(
      `INSERT INTO transactions (id, merchant_id, type, amount, currency, status, reference, risk_score, metadata, occurred_at, ingested_at, processed_at, stream_id, attempts, failure_reason, failure_code)
       VALUES ($1, $2, 'payout', 123456, 'GBP', 'failed', NULL, 42, NULL, NULL, $3, $4, '1-0', 1, 'ledger: insufficient funds', 'insufficient_funds')`,
      [id, M, new Date(now).toISOString(), new Date(now + 50).toISOString()],
    );
    const r = await get(id);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, {
      id,
      merchant_id: M,
      type: 'payout',
      amount: 123456,
      currency: 'GBP',
      reference: null,
      metadata: null,
      status: 'failed',
      failure_code: 'insufficient_funds',
      failure_reason: 'ledger: insufficient funds',
      risk_score: 42,
      risk_reasons: null,
      occurred_at: null,
      ingested_at: new Date(now).toISOString(),
      processed_at: new Date(now + 50).toISOString(),
    });
    await notFound(id, apiKeys.neighbour);
  });

  test("the Postgres lookup reads one partition (ingested_at bound by the id's time)", async (t) => {
    const { rows } = await inst.pool.query<{ relkind: string }>("SELECT relkind FROM pg_class WHERE oid = 'transactions'::regclass");
    if (rows[0]?.relkind !== 'p') {
      t.skip('transactions is not partitioned in this schema (002_payments.sql not applied)');
      return;
    }
    const ms = txIdTime(ids.payin)!;
    const plan = await inst.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${TRANSACTION_BY_ID_SQL}`, [
      ids.payin,
      M,
      new Date(ms).toISOString(),
      new Date(ms + 1).toISOString(),
    ]);
    const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
    const scanned = new Set(text.match(/transactions_p\d{8}_h\d+/g) ?? []);
    assert.equal(scanned.size, 1, text);
  });
});
