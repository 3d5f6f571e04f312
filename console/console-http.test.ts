// The console over plain HTTP, at scale: 10,000 dead letters over 64 partitions paged server-side,
// the partitions table of a 64-partition topic, selection actions through the form field and the
// htmx header, bad input as problem+json, security headers, logout and key revocation.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DeadLetters } from '../core/dead-letter/dead-letters.ts';
import { partitionOf } from '../core/partition.ts';
import { newTxId } from '../core/tx-id.ts';
import { createLogger } from '../core/logger.ts';
import { createApiKey, KeyStore, revokeApiKey } from '../core/api-keys.ts';
import { createInstance } from '../test/helpers/instance.ts';
import type { TestInstance } from '../test/helpers/instance.ts';
import { SHIPPED_TOPOLOGY, writeTopology } from '../test/helpers/topology-file.ts';
import { loadTopology } from '../core/topology/load.ts';
import { startConsole } from './server.ts';
import type { ConsoleServer } from './server.ts';

const P = 64;
const N = 10_000;
const { topology } = writeTopology(
  // every topic of the shipped file (they share one partition count)
  Object.fromEntries(Object.keys(loadTopology(SHIPPED_TOPOLOGY).topics).map((t) => [`topics.${t}.partitions`, P])),
  SHIPPED_TOPOLOGY,
);

describe('console over HTTP: 10,000 dead letters, 64 partitions', () => {
  let inst: TestInstance;
  let server: ConsoleServer;
  let operatorKey = '';
  let cookie = '';
  let csrf = '';

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(server.url + path, { headers: { cookie, accept: 'text/html', ...headers }, redirect: 'manual' });
    return { status: res.status, headers: res.headers, text: await res.text() };
  };
  const post = async (path: string, form: Record<string, string | string[]>, headers: Record<string, string> = {}) => {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(form)) for (const x of [v].flat()) body.append(k, x);
    const res = await fetch(server.url + path, { method: 'POST', body, headers: { cookie, ...headers }, redirect: 'manual' });
    return { status: res.status, headers: res.headers, text: await res.text() };
  };
  const rowIds = (html: string) => [...html.matchAll(/<tr data-id="([^"]+)"/g)].map((m) => m[1]!);
  const nextLink = (html: string) => /<a href="([^"]+)">Next page<\/a>/.exec(html)?.[1]?.replace(/&amp;/g, '&');

  before(async () => {
    inst = await createInstance('consolehttp');
    // ttl 0: every request asks Postgres, so a revocation shows at once
    server = await startConsole(
      {
        env: inst.env,
        topology,
        redis: inst.redis,
        pool: inst.pool,
        keyStore: new KeyStore(inst.pool, { ttlMs: 0, negativeTtlMs: 0 }),
        logger: createLogger('silent'),
      },
      0,
    );
    operatorKey = await createApiKey(inst.pool, { scope: 'operator' });
    const pipe = inst.redis.pipeline();
    for (let i = 0; i < N; i++) {
      const p = i % P;
      const tx = `tx_scale_${String(i).padStart(5, '0')}`;
      pipe.xadd(
        inst.keys.deadLetter('validate', p),
        '*',
        'tx',
        tx,
        'ev',
        JSON.stringify({ id: tx, type: 'payin', merchant_id: `m${p}`, amount: 1, currency: 'USD', ingested_at: 1 }),
        'error',
        'TimeoutError',
        'message',
        `attempt ${i} timed out`,
        'stage',
        'validate',
        'attempts',
        '5',
      );
    }
    await pipe.exec();
    const login = await fetch(`${server.url}/login`, { method: 'POST', body: new URLSearchParams({ key: operatorKey }), redirect: 'manual' });
    assert.equal(login.status, 303);
    cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    csrf = /name="_csrf" value="([^"]+)"/.exec((await get('/workers')).text)![1]!;
  });

  after(async () => {
    await server?.close();
    await inst?.cleanup();
  });

  test('every page: CSP without inline scripts or styles, no framing, no inline script or style in the HTML', async () => {
    for (const path of ['/', '/partitions', '/workers', '/dead-letters', '/transactions', '/tail', '/wallets', '/bench', '/login']) {
      const r = await get(path);
      assert.equal(r.status, 200, path);
      const csp = r.headers.get('content-security-policy') ?? '';
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /style-src 'self'(;|$)/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(r.headers.get('x-frame-options'), 'DENY');
      assert.doesNotMatch(r.text, /<script(?![^>]*\bsrc=)/, `${path}: an inline script`);
      assert.doesNotMatch(r.text, /\sstyle=|<style/, `${path}: an inline style`);
    }
  });

  test('dead letters are paged server-side: 50 a page, in order, without overlap', async (t) => {
    let started = performance.now();
    const first = await get('/dead-letters?stage=validate');
    t.diagnostic(`first page of ${N} dead letters over ${P} partitions: ${Math.round(performance.now() - started)} ms`);
    assert.match(first.text, /50 shown of 10,000 dead letters of validate/);
    const seen = rowIds(first.text);
    let next = nextLink(first.text);
    for (let page = 0; page < 3; page++) {
      started = performance.now();
      const r = await get(next!);
      t.diagnostic(`page ${page + 2}: ${Math.round(performance.now() - started)} ms`);
      const ids = rowIds(r.text);
      assert.equal(ids.length, 50);
      seen.push(...ids);
      next = nextLink(r.text);
    }
    assert.equal(new Set(seen).size, 200);
    // core's cursor paging (what the pages use) walks all of them exactly once, oldest first
    const dlq = new DeadLetters(inst.redis, inst.keys, topology);
    const all: string[] = [];
    let after: string | undefined;
    for (;;) {
      const res = await dlq.list({ stage: 'validate', limit: 1_000, ...(after ? { after } : {}) });
      all.push(...res.entries.map((d) => d.tx));
      if (!res.more) break;
      after = res.entries[res.entries.length - 1]!.id;
    }
    assert.equal(all.length, N);
    assert.equal(new Set(all).size, N);
    assert.deepEqual(
      seen.slice(0, 3),
      (await dlq.list({ stage: 'validate', limit: 3 })).entries.map((d) => d.id),
    );
  });

  test('a text filter finds one among 10,000', async () => {
    const r = await get('/dead-letters?q=tx_scale_07777');
    assert.equal(rowIds(r.text).length, 1);
    assert.match(r.text, /tx_scale_07777/);
  });

  test('bad input is problem+json', async () => {
    for (const [path, status] of [
      ['/dead-letters?since=yesterday-ish', 400],
      ['/dead-letters?stage=nope', 400],
      ['/dead-letters/show?id=validate/999/1-0', 400],
      ['/dead-letters/show?id=validate/3/1-0', 404],
      ['/partitions?topic=nope', 404],
    ] as const) {
      const r = await get(path);
      assert.equal(r.status, status, `${path}: ${r.text}`);
      assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/, path);
      assert.equal((JSON.parse(r.text) as { status: number }).status, status);
    }
    const none = await post('/dead-letters/redrive', { stage: 'validate' }, { 'x-csrf-token': csrf, 'hx-request': 'true' });
    assert.equal(none.status, 400);
    assert.match(none.text, /Select at least one dead letter/);
  });

  test('purge a selection (htmx, CSRF header) and redrive one (plain form, CSRF field); each an audit line', async () => {
    const page = rowIds((await get('/dead-letters?stage=validate')).text);
    const purged = await post('/dead-letters/purge', { stage: 'validate', ids: page.slice(0, 2) }, { 'x-csrf-token': csrf, 'hx-request': 'true' });
    assert.equal(purged.status, 200);
    assert.match(purged.text, /Purged 2 dead letters\./);
    assert.match(purged.text, /9,998 dead letters/);
    const redriven = await post('/dead-letters/redrive', { _csrf: csrf, id: page[2]! });
    assert.equal(redriven.status, 303);
    const after = await get('/dead-letters?stage=validate');
    assert.match(after.text, /of 9,997 dead letters/);
    assert.match(after.text, new RegExp(`redrive · ${page[2]}: 1 redriven`));
    assert.match(after.text, /purge · 2 selected: 2 purged/);
    const [, p] = page[2]!.split('/');
    assert.equal(await inst.redis.xlen(inst.keys.lane('transactions', Number(p), 'normal')), 1, 'back on its lane');
  });

  test('the partitions table of a 64-partition topic', async (t) => {
    const started = performance.now();
    const r = await get('/partitions?topic=transactions');
    t.diagnostic(`partitions page, ${P} × ${topology.priorities.length} lane streams: ${Math.round(performance.now() - started)} ms`);
    assert.equal((r.text.match(/<th scope="row">\d+<\/th>/g) ?? []).length, P * topology.priorities.length);
  });

  test('the tail resumes after a reconnect from its Last-Event-ID; a bad one is a 400', async () => {
    const lane = inst.keys.lane('transactions', 5, 'normal');
    const append = (tx: string) =>
      inst.redis.xadd(
        lane,
        '*',
        'tx',
        tx,
        'ev',
        JSON.stringify({ id: tx, type: 'payin', merchant_id: 'm_t', amount: 5, currency: 'EUR', ingested_at: Date.now() }),
      );
    /** Opens the tail, appends `tx` once it is listening, returns the first events message. */
    const firstEvents = async (tx: string | undefined, lastEventId?: string) => {
      const abort = new AbortController();
      const res = await fetch(`${server.url}/tail/stream?topic=transactions`, {
        headers: { cookie, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
        signal: abort.signal,
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      let text = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`stream ended: ${text}`);
          text += new TextDecoder().decode(value);
          if (tx && text.includes('waiting for events')) {
            await append(tx);
            tx = undefined;
          }
          const m = /event: events\n((?:data: .*\n)+)id: (.+)\n/.exec(text);
          if (m) return { data: m[1]!, id: m[2]! };
        }
      } finally {
        abort.abort();
      }
    };
    const first = await firstEvents('tx_tail_1');
    assert.match(first.data, /tx_tail_1/);
    await append('tx_tail_2'); // while no one listens
    const resumed = await firstEvents(undefined, first.id);
    assert.match(resumed.data, /tx_tail_2/);
    assert.doesNotMatch(resumed.data, /tx_tail_1/);
    const bad = await fetch(`${server.url}/tail/stream?topic=transactions`, { headers: { cookie, 'last-event-id': 'garbage' } });
    assert.equal(bad.status, 400);
    assert.match(bad.headers.get('content-type') ?? '', /^application\/problem\+json/);
  });

  test("a transaction parked behind its merchant's earlier event shows so in its timeline", async () => {
    const now = Date.now();
    const [first, second] = [newTxId(now - 1), newTxId(now)];
    const merchant = 'm_parked';
    const p = partitionOf(merchant, P);
    const ev = (id: string, at: number) => JSON.stringify({ id, type: 'payin', merchant_id: merchant, amount: 9, currency: 'USD', ingested_at: at });
    const lane = inst.keys.lane('transactions', p, 'normal');
    const e1 = await inst.redis.xadd(lane, '*', 'tx', first, 'ev', ev(first, now - 1));
    const e2 = await inst.redis.xadd(lane, '*', 'tx', second, 'ev', ev(second, now));
    // as core/consumer/parking.ts keeps them: "<entry id> <json>", the merchant's queue in order
    const queue = inst.keys.parkQueue('validate', p, `normal|${merchant}`);
    for (const [entry, id, at] of [
      [e1, first, now - 1],
      [e2, second, now],
    ] as const) {
      await inst.redis.rpush(queue, `${entry} ${JSON.stringify({ stream: lane, lane: 'normal', fields: ['tx', id, 'ev', ev(id, at)] })}`);
    }
    await inst.redis.zadd(inst.keys.parked('validate', p, 'index'), now + 5_000, `normal|${merchant}`);
    const head = await get(`/transactions?id=${first}`);
    assert.match(head.text, /<strong>parked in validate<\/strong> <span>normal lane, first of its merchant&#39;s queue, due /);
    const behind = await get(`/transactions?id=${second}`);
    assert.match(behind.text, /<strong>parked in validate<\/strong> <span>normal lane, behind 1 earlier event of its merchant<\/span>/);
    assert.match(behind.text, /id="tx-status">processing</);
  });

  test('logout ends the session; a revoked key ends every session of it', async () => {
    const other = await fetch(`${server.url}/login`, { method: 'POST', body: new URLSearchParams({ key: operatorKey }), redirect: 'manual' });
    const otherCookie = other.headers.get('set-cookie')!.split(';')[0]!;
    const out = await post('/logout', { _csrf: csrf });
    assert.equal(out.status, 303);
    assert.equal((await get('/workers', { accept: 'application/json' })).status, 401);
    assert.equal((await fetch(`${server.url}/workers`, { headers: { cookie: otherCookie } })).status, 200);
    await revokeApiKey(inst.pool, operatorKey);
    assert.equal((await fetch(`${server.url}/workers`, { headers: { cookie: otherCookie } })).status, 401);
  });
});
