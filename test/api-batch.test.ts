// POST /v1/transactions/batch: NDJSON or a JSON array, each event checked on its own (one bad line
// rejects that line only), every accepted event appended once, in one Redis round trip; per-line
// idempotency keys (duplicate / conflict), the key's merchant only, the rate limit per event, the
// envelope limits (10,000 events, 5 MiB, also chunked) and load shedding for the whole batch.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { fieldsToMap } from '../core/entry.ts';
import type { TransactionEvent } from '../core/event.ts';
import { partitionOf } from '../core/partition.ts';
import type { Topology } from '../core/topology/schema.ts';
import { createApiKey } from '../core/api-keys.ts';
import { scanPrefix, startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { TX_ID_PATTERN } from '../core/tx-id.ts';

const M = 'merchant_batch';
const OTHER = 'merchant_batch_other';
const RL = 'merchant_batch_rl';
const CHUNKS = 'merchant_batch_chunks';
const FAIL = 'merchant_batch_wrongtype';
const MiB = 1024 * 1024;
const NDJSON = 'application/x-ndjson';
const LANES = ['critical', 'high', 'normal', 'low'] as const;

interface LineError {
  type: string;
  status: number;
  path: string;
  message: string;
}
interface Result {
  index: number;
  id?: string;
  status: 'accepted' | 'duplicate' | 'rejected';
  errors?: LineError[];
}

/** A payin accepted by ingest for each merchant: refunds and chargebacks must name one (else 422). */
const payinOf = new Map<string, string>();
const event = (i: number, extra: Record<string, unknown> = {}): Record<string, unknown> => {
  const type = (['payin', 'payout', 'refund', 'chargeback'] as const)[i % 4];
  const merchant = typeof extra.merchant_id === 'string' ? extra.merchant_id : M;
  const refunding = type === 'refund' || type === 'chargeback';
  return {
    type,
    merchant_id: M,
    amount: 100 + i,
    currency: 'EUR',
    reference: refunding ? (payinOf.get(merchant) ?? `batch-${i}`) : `batch-${i}`,
    ...extra,
  };
};
const ndjson = (lines: unknown[]): string => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';

describe('POST /v1/transactions/batch', () => {
  let inst: TestInstance;
  let topology: Topology;
  let ingest: TestIngest;
  const apiKeys: Record<string, string> = {};

  const post = async (body: string | Buffer, contentType = NDJSON, key = apiKeys.main!, url = ingest.url) => {
    const res = await fetch(`${url}/v1/transactions/batch`, {
      method: 'POST',
      headers: { 'content-type': contentType, authorization: `Bearer ${key}` },
      body: typeof body === 'string' ? body : new Uint8Array(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: JSON.parse(text) as Record<string, unknown> };
  };
  const results = (r: { json: Record<string, unknown> }) => r.json.results as Result[];

  /** Every entry of the instance's streams, and the ingest-topic entries of M's partition by tx id. */
  const appended = async () => {
    const { entries } = await scanPrefix(inst.redis, inst.env.prefix);
    const partition = partitionOf(M, topology.topics.transactions!.partitions);
    const byTx = new Map<string, { lane: string; event: TransactionEvent }[]>();
    for (const lane of LANES) {
      for (const [, f] of await inst.redis.xrange(inst.keys.lane('transactions', partition, lane), '-', '+')) {
        const fields = fieldsToMap(f);
        const list = byTx.get(fields.get('tx')!) ?? [];
        list.push({ lane, event: JSON.parse(fields.get('ev')!) as TransactionEvent });
        byTx.set(fields.get('tx')!, list);
      }
    }
    return { entries, byTx };
  };

  const assertProblem = (r: { status: number; headers: Headers; json: Record<string, unknown> }, status: number, type: RegExp) => {
    assert.equal(r.status, status, JSON.stringify(r.json));
    assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(r.json.status, status);
    assert.match(String(r.json.type), type);
    assert.equal(typeof r.json.detail, 'string');
  };

  const acceptedCounter = async (lane: string): Promise<number> => {
    const m = ingest.registry.getSingleMetric('rill_events_accepted_total');
    const values = (await m?.get())?.values ?? [];
    return values.find((v) => v.labels.lane === lane && v.labels.topic === 'transactions')?.value ?? 0;
  };

  before(async () => {
    inst = await createInstance('api-batch');
    // a limit no batch here reaches (the rate-limit test below runs its own ingest)
    ({ topology } = writeTopology({ 'ingest.rate_limit.per_second': 1_000_000, 'ingest.rate_limit.burst': 1_000_000 }));
    ingest = await startTestIngest(inst, { topology });
    apiKeys.main = await createApiKey(inst.pool, { merchantId: M });
    apiKeys.other = await createApiKey(inst.pool, { merchantId: OTHER });
    apiKeys.tap = await createApiKey(inst.pool, { scope: 'tap' });
    // one payin per merchant, accepted by ingest, for the refunds and chargebacks below to name
    for (const merchant of [M, OTHER, RL, CHUNKS, FAIL]) {
      const key = merchant === M ? apiKeys.main : merchant === OTHER ? apiKeys.other : await createApiKey(inst.pool, { merchantId: merchant });
      const r = await post(
        ndjson([{ type: 'payin', merchant_id: merchant, amount: 1_000_000, currency: 'EUR', reference: `payin-of-${merchant}` }]),
        NDJSON,
        key,
      );
      assert.equal(results(r)[0]?.status, 'accepted', r.text);
      payinOf.set(merchant, results(r)[0]!.id!);
    }
  });

  after(async () => {
    await ingest?.server.close();
    await inst?.cleanup();
  });

  test('NDJSON: every event accepted, appended once to its lane, blank lines and CRLF ignored', async () => {
    const before = await appended();
    const counters = await Promise.all(LANES.map(acceptedCounter));
    const events = [0, 1, 2, 3].map((i) => event(i, i === 0 ? { metadata: { channel: 'web' }, occurred_at: '2024-05-01T12:00:00Z' } : {}));
    const body = `${JSON.stringify(events[0])}\r\n\n   \n${ndjson(events.slice(1))}\n\n`;
    const t0 = Date.now();
    const r = await post(body);
    assert.equal(r.status, 202, r.text);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(r.headers.get('retry-after'), null);
    const res = results(r);
    assert.deepEqual(
      res.map((x) => [x.index, x.status]),
      [
        [0, 'accepted'],
        [1, 'accepted'],
        [2, 'accepted'],
        [3, 'accepted'],
      ],
    );
    for (const x of res) assert.match(x.id!, TX_ID_PATTERN);
    assert.equal(new Set(res.map((x) => x.id)).size, 4);

    const after = await appended();
    assert.equal(after.entries, before.entries + 4);
    const lanes = ['normal', 'high', 'critical', 'critical'];
    res.forEach((x, i) => {
      const found = after.byTx.get(x.id!);
      assert.equal(found?.length, 1, `${x.id} appended once`);
      assert.equal(found![0]!.lane, lanes[i]);
      const ev = found![0]!.event;
      assert.ok(ev.ingested_at >= t0 && ev.ingested_at <= Date.now());
      assert.deepEqual(ev, { ...events[i], id: x.id, ingested_at: ev.ingested_at, status: 'accepted' });
    });
    // accepted events counted per lane, as for the single endpoint
    const now = await Promise.all(LANES.map(acceptedCounter));
    assert.deepEqual(
      now.map((n, i) => n - counters[i]!),
      [2, 1, 1, 0],
    );
  });

  test('JSON array: every event accepted and appended', async () => {
    const before = await appended();
    const r = await post(JSON.stringify([event(10), event(11), event(12)]), 'application/json; charset=utf-8');
    assert.equal(r.status, 202, r.text);
    const res = results(r);
    assert.deepEqual(
      res.map((x) => x.status),
      ['accepted', 'accepted', 'accepted'],
    );
    const after = await appended();
    assert.equal(after.entries, before.entries + 3);
    for (const x of res) assert.equal(after.byTx.get(x.id!)?.length, 1);
  });

  test('bad lines are rejected one by one; only the good ones are appended', async () => {
    const before = await appended();
    const enc = new TextEncoder();
    const parts: Uint8Array[] = [
      enc.encode(
        ndjson([
          event(20), //                                              0 ok
          '{"type": "payin", oops', //                               1 not JSON
          event(21, { amount: -5, colour: 'red' }), //               2 schema: two errors
          event(22, { merchant_id: OTHER }), //                      3 another merchant's event
          event(23, { idempotency_key: 'x'.repeat(256) }), //        4 bad idempotency key
          [1, 2], //                                                 5 not an object
          event(24, { currency: 'usd', type: 'refund' }), //         6 schema
          event(25, { idempotency_key: 'good-key-25' }), //          7 ok, with a key
        ]),
      ),
      new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x0a]), //  8 not UTF-8
      enc.encode(ndjson([event(26)])), //                          9 ok
    ];
    const r = await post(Buffer.concat(parts));
    assert.equal(r.status, 202, r.text);
    const res = results(r);
    assert.deepEqual(
      res.map((x) => x.status),
      ['accepted', 'rejected', 'rejected', 'rejected', 'rejected', 'rejected', 'rejected', 'accepted', 'rejected', 'accepted'],
    );
    assert.deepEqual(
      res.map((x) => x.index),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    for (const x of res) {
      if (x.status === 'accepted') {
        assert.match(x.id!, TX_ID_PATTERN);
        assert.equal(x.errors, undefined);
      } else {
        assert.equal(x.id, undefined);
        assert.ok(x.errors!.length > 0);
        for (const e of x.errors!) {
          assert.match(e.type, /^urn:problem-type:rill:/);
          assert.equal(typeof e.message, 'string');
          assert.match(e.path, /^(\/.*)?$/);
        }
      }
    }
    const errs = (i: number) => res[i]!.errors!.map((e) => [e.status, e.type.replace('urn:problem-type:rill:', ''), e.path]);
    assert.deepEqual(errs(1), [[400, 'malformed-json', '']]);
    assert.deepEqual(errs(2).sort(), [
      [400, 'validation-failed', '/amount'],
      [400, 'validation-failed', '/colour'],
    ]);
    assert.deepEqual(errs(3), [[403, 'forbidden', '/merchant_id']]);
    assert.deepEqual(errs(4), [[400, 'validation-failed', '/idempotency_key']]);
    assert.deepEqual(errs(5), [[400, 'validation-failed', '']]);
    assert.deepEqual(errs(6), [[400, 'validation-failed', '/currency']]);
    assert.deepEqual(errs(8), [[400, 'malformed-json', '']]);
    assert.match(res[2]!.errors!.find((e) => e.path === '/amount')!.message, /greater than 0/);
    assert.match(res[2]!.errors!.find((e) => e.path === '/colour')!.message, /not a known field/);

    const after = await appended();
    assert.equal(after.entries, before.entries + 3, 'exactly the three good lines');
    for (const i of [0, 7, 9]) assert.equal(after.byTx.get(res[i]!.id!)?.length, 1);
    // the key was taken out of the event before it was stored
    assert.equal('idempotency_key' in after.byTx.get(res[7]!.id!)![0]!.event, false);
  });

  test('a refund or chargeback naming no payin of its merchant accepted by ingest: that line rejected (422), nothing appended for it', async () => {
    const before = await appended();
    const r = await post(
      ndjson([
        event(80, { type: 'refund', reference: 'no-such-payin' }), //          0 unknown payin
        event(81, { type: 'chargeback', reference: payinOf.get(OTHER) }), //  1 another merchant's payin
        event(82, { type: 'refund' }), //                                      2 M's own payin: fine
        event(83, { type: 'chargeback' }), //                                  3 fine
      ]),
    );
    assert.equal(r.status, 202, r.text);
    const res = results(r);
    assert.deepEqual(
      res.map((x) => x.status),
      ['rejected', 'rejected', 'accepted', 'accepted'],
    );
    for (const x of res.slice(0, 2)) {
      assert.equal(x.id, undefined);
      assert.deepEqual(
        x.errors!.map((e) => [e.status, e.type.replace('urn:problem-type:rill:', ''), e.path]),
        [[422, 'unknown-payin', '/reference']],
      );
    }
    const after = await appended();
    assert.equal(after.entries, before.entries + 2, 'only the two naming a payin of M');
    for (const i of [2, 3]) assert.equal(after.byTx.get(res[i]!.id!)?.[0]?.event.reference, payinOf.get(M));
  });

  test("a batch of another merchant's events: each line rejected (403), nothing appended", async () => {
    const before = await appended();
    const r = await post(ndjson([event(30, { merchant_id: OTHER }), event(31, { merchant_id: OTHER })]));
    assert.equal(r.status, 202, r.text);
    for (const x of results(r)) {
      assert.equal(x.status, 'rejected');
      assert.deepEqual(
        x.errors!.map((e) => [e.status, e.path]),
        [[403, '/merchant_id']],
      );
    }
    assert.equal((await appended()).entries, before.entries);
    // and with that merchant's own key they go through
    const own = await post(ndjson([event(32, { merchant_id: OTHER })]), NDJSON, apiKeys.other);
    assert.deepEqual(
      results(own).map((x) => x.status),
      ['accepted'],
    );
    assert.equal((await appended()).entries, before.entries + 1);
  });

  test('idempotency keys: duplicates answer the first id, a changed event conflicts, nothing appended twice', async () => {
    const before = await appended();
    const a = event(40, { reference: 'idem-a' });
    const b = event(41, { reference: 'idem-b' });
    // the same event with its fields in another order is the same event
    const aReordered = Object.fromEntries(Object.entries(a).reverse());
    const first = await post(
      ndjson([
        { ...a, idempotency_key: 'k-a' },
        { ...b, idempotency_key: 'k-b' },
        { idempotency_key: 'k-a', ...aReordered },
        { ...a, amount: 999, idempotency_key: 'k-b' },
      ]),
    );
    assert.equal(first.status, 202, first.text);
    const r1 = results(first);
    assert.deepEqual(
      r1.map((x) => x.status),
      ['accepted', 'accepted', 'duplicate', 'rejected'],
    );
    assert.equal(r1[2]!.id, r1[0]!.id);
    assert.deepEqual(
      r1[3]!.errors!.map((e) => [e.status, e.type.replace('urn:problem-type:rill:', '')]),
      [[409, 'idempotency-conflict']],
    );
    assert.equal(r1[3]!.id, undefined);
    assert.equal((await appended()).entries, before.entries + 2);

    // a later batch: the same keys still answer the first ids (and are never appended again)
    const second = await post(
      JSON.stringify([
        { ...b, idempotency_key: 'k-b' },
        { ...a, idempotency_key: 'k-a' },
        { ...a, currency: 'GBP', idempotency_key: 'k-a' },
      ]),
      'application/json',
    );
    const r2 = results(second);
    assert.deepEqual(
      r2.map((x) => [x.status, x.id]),
      [
        ['duplicate', r1[1]!.id],
        ['duplicate', r1[0]!.id],
        ['rejected', undefined],
      ],
    );
    // one key space with the Idempotency-Key header of the single endpoint
    const single = await fetch(`${ingest.url}/v1/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKeys.main}`, 'idempotency-key': 'k-b' },
      body: JSON.stringify(b),
    });
    assert.equal(single.status, 202);
    assert.equal(single.headers.get('idempotent-replayed'), 'true');
    assert.equal(((await single.json()) as { id: string }).id, r1[1]!.id);

    const after = await appended();
    assert.equal(after.entries, before.entries + 2);
    assert.equal(after.byTx.get(r1[0]!.id!)?.length, 1);
    assert.equal(after.byTx.get(r1[1]!.id!)?.length, 1);
  });

  test('envelope errors: empty 400, not an array 400, bad JSON 400, Idempotency-Key header 400, wrong media type 415, no key 401, tap key 403', async () => {
    const before = await appended();
    assertProblem(await post(''), 400, /invalid-request/);
    assertProblem(await post('\n  \n\r\n'), 400, /invalid-request/);
    assertProblem(await post('[]', 'application/json'), 400, /invalid-request/);
    assertProblem(await post(JSON.stringify(event(50)), 'application/json'), 400, /invalid-request/);
    assertProblem(await post('[{"type": "payin",', 'application/json'), 400, /malformed-json/);
    const t = await post(ndjson([event(51)]), 'text/plain');
    assertProblem(t, 415, /unsupported-media-type/);
    assert.match(t.headers.get('accept-post') ?? '', /application\/x-ndjson/);
    assertProblem(await post(ndjson([event(51)]), `${NDJSON}; charset=latin1`), 415, /unsupported-media-type/);
    // the header would not make a retried batch safe: refused rather than ignored
    const withHeader = await fetch(`${ingest.url}/v1/transactions/batch`, {
      method: 'POST',
      headers: { 'content-type': NDJSON, authorization: `Bearer ${apiKeys.main}`, 'idempotency-key': 'batch-1' },
      body: ndjson([event(51)]),
    });
    assertProblem(
      { status: withHeader.status, headers: withHeader.headers, json: (await withHeader.json()) as Record<string, unknown> },
      400,
      /invalid-request/,
    );
    assertProblem(await post(ndjson([event(51)]), NDJSON, 'rk_nope'), 401, /unauthorized/);
    assertProblem(await post(ndjson([event(51)]), NDJSON, apiKeys.tap), 403, /forbidden/);
    assert.equal((await appended()).entries, before.entries);
  });

  test('10,001 events → 413, nothing appended (10,000 is fine: see the throughput test)', async () => {
    const before = await appended();
    const lines = Array.from({ length: 10_001 }, (_, i) => event(i));
    const nd = await post(ndjson(lines));
    assertProblem(nd, 413, /payload-too-large/);
    assert.match(String(nd.json.detail), /10000/);
    assertProblem(await post(JSON.stringify(lines), 'application/json'), 413, /payload-too-large/);
    assert.equal((await appended()).entries, before.entries);
  });

  test('more than 5 MiB → 413, with Content-Length and chunked', async () => {
    const before = await appended();
    // 2,000 valid events of ~3 KiB each: few lines, many bytes
    const padding = { note: 'p'.repeat(480), a: 'a'.repeat(480), b: 'b'.repeat(480), c: 'c'.repeat(480), d: 'd'.repeat(480), e: 'e'.repeat(480) };
    const big = ndjson(Array.from({ length: 2_000 }, (_, i) => event(i, { metadata: padding })));
    assert.ok(big.length > 5 * MiB && big.length < 7 * MiB);
    assertProblem(await post(big), 413, /payload-too-large/);

    const chunked = await postChunked(`${ingest.url}/v1/transactions/batch`, apiKeys.main!, Buffer.from(big));
    assert.equal(chunked.status, 413);
    assert.match(String(chunked.headers['content-type']), /^application\/problem\+json/);
    assert.match(chunked.text, /payload-too-large/);
    assert.equal((await appended()).entries, before.entries);

    // just under the limit is fine
    const fits = ndjson(Array.from({ length: 1_500 }, (_, i) => event(i, { metadata: padding })));
    assert.ok(fits.length < 5 * MiB);
    const ok = await postChunked(`${ingest.url}/v1/transactions/batch`, apiKeys.main!, Buffer.from(fits));
    assert.equal(ok.status, 202, ok.text.slice(0, 500));
    assert.equal((await appended()).entries, before.entries + 1_500);
  });

  test('throughput: a 10,000-event batch, every event appended once (diagnostic)', async (t) => {
    const before = await appended();
    const body = ndjson(Array.from({ length: 10_000 }, (_, i) => event(i, i % 4 < 2 ? { reference: `tp-${i}` } : {})));
    const runs: number[] = [];
    let ids: string[] = [];
    for (let run = 0; run < 3; run++) {
      const t0 = performance.now();
      const r = await post(body);
      runs.push(performance.now() - t0);
      assert.equal(r.status, 202);
      const res = results(r);
      assert.equal(res.length, 10_000);
      assert.ok(res.every((x) => x.status === 'accepted'));
      ids = ids.concat(res.map((x) => x.id!));
    }
    assert.equal(new Set(ids).size, 30_000);
    const after = await appended();
    assert.equal(after.entries, before.entries + 30_000);
    const best = Math.min(...runs);
    t.diagnostic(
      `10,000-event NDJSON batch (${(body.length / MiB).toFixed(2)} MiB): ${runs.map((ms) => ms.toFixed(0)).join(' / ')} ms → best ${Math.round(10_000 / (best / 1000))} events/s`,
    );
  });

  test('rate limit per event: the events past the bucket are rejected, Retry-After on the batch', async () => {
    const { topology: limited } = writeTopology({ 'ingest.rate_limit.per_second': 1, 'ingest.rate_limit.burst': 3 });
    const small = await startTestIngest(inst, { topology: limited });
    try {
      const key = await createApiKey(inst.pool, { merchantId: RL });
      const before = (await scanPrefix(inst.redis, inst.env.prefix)).entries;
      const lines = Array.from({ length: 5 }, (_, i) => event(60 + i, { merchant_id: RL, idempotency_key: `rl-${i}` }));
      const r = await post(ndjson(lines), NDJSON, key, small.url);
      assert.equal(r.status, 202, r.text);
      const res = results(r);
      assert.deepEqual(
        res.map((x) => x.status),
        ['accepted', 'accepted', 'accepted', 'rejected', 'rejected'],
      );
      for (const x of res.slice(3))
        assert.deepEqual(
          x.errors!.map((e) => [e.status, e.type.replace('urn:problem-type:rill:', '')]),
          [[429, 'rate-limited']],
        );
      assert.match(r.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
      assert.equal((await scanPrefix(inst.redis, inst.env.prefix)).entries, before + 3);
      // a limited event recorded nothing: its key is free; a replay of an accepted one is never limited
      const again = await post(ndjson([lines[0], lines[3]]), NDJSON, key, small.url);
      assert.deepEqual(
        results(again).map((x) => [x.status, x.errors?.[0]?.status]),
        [
          ['duplicate', undefined],
          ['rejected', 429],
        ],
      );
      assert.equal(results(again)[0]!.id, res[0]!.id);
    } finally {
      await small.server.close();
    }
  });

  test('the bucket holds across script chunks: exactly `burst` events of a 2,500-event batch are accepted', async () => {
    const { topology: limited } = writeTopology({ 'ingest.rate_limit.per_second': 1, 'ingest.rate_limit.burst': 1_500 });
    const small = await startTestIngest(inst, { topology: limited });
    try {
      const key = await createApiKey(inst.pool, { merchantId: CHUNKS });
      const before = (await scanPrefix(inst.redis, inst.env.prefix)).entries;
      const lines = Array.from({ length: 2_500 }, (_, i) => event(i, { merchant_id: CHUNKS, idempotency_key: i % 2 ? `ck-${i}` : undefined }));
      const r = await post(ndjson(lines), NDJSON, key, small.url);
      assert.equal(r.status, 202, r.text.slice(0, 500));
      const res = results(r);
      assert.equal(res.filter((x) => x.status === 'accepted').length, 1_500);
      assert.ok(
        res.slice(0, 1_500).every((x) => x.status === 'accepted'),
        'the first 1,500 in order',
      );
      assert.ok(
        res.slice(1_500).every((x) => x.errors?.[0]?.status === 429),
        'every later one limited',
      );
      assert.equal((await scanPrefix(inst.redis, inst.env.prefix)).entries, before + 1_500);
    } finally {
      await small.server.close();
    }
  });

  test('an event whose XADD Redis refuses is rejected alone (503 line), the others appended', async () => {
    const key = await createApiKey(inst.pool, { merchantId: FAIL });
    const partition = partitionOf(FAIL, topology.topics.transactions!.partitions);
    // the refund lane's stream is a string: XADD answers WRONGTYPE for refunds only
    const broken = inst.keys.lane('transactions', partition, 'critical');
    await inst.redis.set(broken, 'not a stream');
    try {
      const before = (await scanPrefix(inst.redis, inst.env.prefix)).entries;
      const lines = [event(0, { merchant_id: FAIL }), event(2, { merchant_id: FAIL, idempotency_key: 'wt-2' }), event(4, { merchant_id: FAIL })];
      const r = await post(ndjson(lines), NDJSON, key);
      assert.equal(r.status, 202, r.text);
      const res = results(r);
      assert.deepEqual(
        res.map((x) => [x.status, x.errors?.[0]?.status]),
        [
          ['accepted', undefined],
          ['rejected', 503],
          ['accepted', undefined],
        ],
      );
      assert.equal((await scanPrefix(inst.redis, inst.env.prefix)).entries, before + 2);
      // nothing was recorded for the refused event: its key is free once the lane works again
      await inst.redis.del(broken);
      const again = await post(ndjson([lines[1]]), NDJSON, key);
      assert.equal(results(again)[0]!.status, 'accepted');
    } finally {
      await inst.redis.del(broken);
    }
  });

  test('while shedding load the whole batch is refused (503, Retry-After), nothing appended', async () => {
    const shedding = await startTestIngest(inst, { topology, load: { state: { shedding: true, reasons: ['test'] }, retryAfterSeconds: 4 } });
    try {
      const before = (await scanPrefix(inst.redis, inst.env.prefix)).entries;
      const r = await post(ndjson([event(70), event(71)]), NDJSON, apiKeys.main, shedding.url);
      assertProblem(r, 503, /overloaded/);
      assert.equal(r.headers.get('retry-after'), '4');
      assert.equal((await scanPrefix(inst.redis, inst.env.prefix)).entries, before);
    } finally {
      await shedding.server.close();
    }
  });
});

/** POST a body in 64 KiB chunks with Transfer-Encoding: chunked and no Content-Length. */
function postChunked(
  url: string,
  key: string,
  body: Buffer,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers: { 'content-type': NDJSON, authorization: `Bearer ${key}`, 'transfer-encoding': 'chunked' },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    // the server may answer and drop the rest of the upload: that is the point, not a failure
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
    const CHUNK = 64 * 1024;
    let at = 0;
    const pump = (): void => {
      while (at < body.length) {
        const chunk = body.subarray(at, at + CHUNK);
        at += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}
