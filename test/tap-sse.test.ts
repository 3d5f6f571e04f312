// GET /v1/streams/:topic/tail over real HTTP: tap keys only, history and live events, filters,
// Last-Event-ID resume without gaps or repeats, keep-alive pings, a per-key limit, and a client
// that goes away takes its Redis connection with it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { waitFor } from './helpers/wait.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { createApiKey, parseApiKey } from '../core/api-keys.ts';
import { scanPrefix, startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';

const [A, B] = ['m_tap_a', 'm_tap_b'];

interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
}

/** A minimal SSE client over fetch: parses messages and comments as they arrive. */
class SseClient {
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  private readonly abort = new AbortController();
  private waiters: (() => void)[] = [];
  ended = false;
  res!: Response;

  static async open(url: string, headers: Record<string, string>): Promise<SseClient> {
    const c = new SseClient();
    c.res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: c.abort.signal });
    if (c.res.ok) void c.pump();
    return c;
  }

  private async pump(): Promise<void> {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of this.res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          this.block(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
        }
        this.wake();
      }
    } catch {
      // aborted
    }
    this.ended = true;
    this.wake();
  }

  private block(text: string): void {
    const m: SseMessage = {};
    let fields = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
      const i = line.indexOf(':');
      const [k, v] = i < 0 ? [line, ''] : [line.slice(0, i), line.slice(i + 1).replace(/^ /, '')];
      if (k === 'id' || k === 'event') {
        m[k] = v;
        fields++;
      } else if (k === 'data') {
        m.data = m.data === undefined ? v : `${m.data}\n${v}`;
        fields++;
      }
    }
    if (m.data !== undefined) this.messages.push(m);
    else if (m.id !== undefined && fields) this.comments.push(`id ${m.id}`);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits until `check` holds (re-checked on every chunk). */
  async until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (this.ended) throw new Error(`stream ended while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what} (have ${this.messages.length} events)`);
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), delay(Math.min(left, 200))]);
    }
  }

  events(): { id: string; type: string; event: Record<string, unknown> }[] {
    return this.messages.map((m) => ({ id: m.id!, type: m.event!, event: JSON.parse(m.data!) as Record<string, unknown> }));
  }

  close(): void {
    this.abort.abort();
  }
}

describe('tap over SSE', () => {
  let inst: TestInstance;
  let ingest: TestIngest;
  let appender: EventAppender;
  let tapKey: string;
  let tapKeyId: string;
  let merchantKey: string;
  const clients: SseClient[] = [];
  const appended: { id: string; merchant: string; type: string }[] = [];

  const url = (query = '', topic = 'transactions') => `${ingest.url}/v1/streams/${topic}/tail${query ? `?${query}` : ''}`;
  const open = async (query: string, headers: Record<string, string> = {}, key = tapKey) => {
    const c = await SseClient.open(url(query), { authorization: `Bearer ${key}`, ...headers });
    clients.push(c);
    return c;
  };
  const append = async (n: number) => {
    const merchants = [A, B];
    for (let i = 0; i < n; i++) {
      const body = sampleBody(appended.length, merchants);
      // a refund or chargeback of the mix names a payin ingest must know
      await registerReferencedPayins(inst.redis, inst.keys, ingest.topology, [body]);
      const out = await appender.append(body);
      appended.push({ id: out.id, merchant: body.merchant_id, type: body.type });
    }
  };
  const tapClients = async () => {
    const list = (await inst.redis.client('LIST')) as string;
    return list.split('\n').filter((l) => l.includes(` name=rill:tap:${tapKeyId} `)).length;
  };
  const openGauge = async () => {
    const m = await ingest.registry.getSingleMetric('rill_tap_streams')?.get();
    return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
  };

  before(async () => {
    inst = await createInstance('tap-sse');
    ingest = await startTestIngest(inst, { limits: { tapKeepAliveMs: 300 } });
    appender = new EventAppender(inst.redis, ingest.topology, inst.keys, { timeoutMs: 5_000 });
    tapKey = await createApiKey(inst.pool, { scope: 'tap' });
    tapKeyId = parseApiKey(tapKey)!.keyId;
    merchantKey = await createApiKey(inst.pool, { merchantId: A });
    await append(20);
  });
  after(async () => {
    for (const c of clients) c.close();
    await ingest?.server.close();
    await inst?.cleanup();
  });

  test('tap keys only: 401 without a key, 403 for a merchant key, 404 unknown topic, 400 bad input', async () => {
    const none = await fetch(url('from=earliest'));
    assert.equal(none.status, 401);
    assert.match(none.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const merchant = await fetch(url('from=earliest'), { headers: { authorization: `Bearer ${merchantKey}` } });
    assert.equal(merchant.status, 403);
    assert.match(merchant.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(((await merchant.json()) as { status: number }).status, 403);
    const auth = { authorization: `Bearer ${tapKey}` };
    const unknown = await fetch(url('', 'nope'), { headers: auth });
    assert.equal(unknown.status, 404);
    assert.match(((await unknown.json()) as { detail: string }).detail, /nope/);
    for (const [q, h] of [
      ['from=yesterday', {}],
      ['merchant_id=%20bad', {}],
      ['type=a%0Ab', {}],
      ['', { 'last-event-id': 'garbage!' }],
    ] as const) {
      const res = await fetch(url(q), { headers: { ...auth, ...h } });
      assert.equal(res.status, 400, `${q} ${JSON.stringify(h)}`);
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
      await res.body?.cancel();
    }
    assert.equal(await openGauge(), 0);
  });

  test('from=earliest: every event, as SSE with cursor ids and the type as event name', async () => {
    const c = await open('from=earliest');
    assert.equal(c.res.status, 200);
    assert.match(c.res.headers.get('content-type') ?? '', /^text\/event-stream/);
    await c.until('20 events', () => c.messages.length >= 20);
    const got = c.events();
    assert.deepEqual(got.map((e) => e.event.id).sort(), appended.map((a) => a.id).sort());
    assert.equal(new Set(got.map((e) => e.id)).size, 20, 'one cursor per event');
    for (const e of got) {
      assert.equal(e.type, e.event.type);
      assert.match(e.id, /^[A-Za-z0-9_-]+$/);
      assert.equal(e.event.status, 'accepted');
    }
    c.close();
  });

  test('filters: merchant_id and type', async () => {
    const c = await open(`from=earliest&merchant_id=${A}`);
    const wantA = appended.filter((a) => a.merchant === A);
    await c.until('merchant A events', () => c.messages.length >= wantA.length);
    await delay(200);
    assert.deepEqual(
      c
        .events()
        .map((e) => e.event.id)
        .sort(),
      wantA.map((a) => a.id).sort(),
    );
    c.close();
    const t = await open(`from=earliest&type=payout&merchant_id=${B}`);
    const want = appended.filter((a) => a.merchant === B && a.type === 'payout');
    assert.ok(want.length > 0);
    await t.until('payouts of B', () => t.messages.length >= want.length);
    await delay(200);
    assert.deepEqual(
      t
        .events()
        .map((e) => e.event.id)
        .sort(),
      want.map((a) => a.id).sort(),
    );
    t.close();

    // nothing matches: the pings carry the position past the skipped entries, so a client
    // resuming from it does not scan them again
    const none = await open('from=earliest&type=nomatch');
    await none.until('a ping with a cursor', () => none.comments.some((x) => x.startsWith('id ')), 5_000);
    none.close();
    assert.equal(none.messages.length, 0);
    const cursor = none.comments.find((x) => x.startsWith('id '))!.slice(3);
    const resumed = await open('', { 'last-event-id': cursor });
    await resumed.until('a ping', () => resumed.comments.includes('ping'), 5_000);
    assert.equal(resumed.messages.length, 0, 'everything before the cursor was already scanned');
    resumed.close();
  });

  test('from=now: only live events, which arrive after connecting; keep-alive pings', async () => {
    const c = await open('');
    await c.until('the opening comment', () => c.comments.some((x) => x.startsWith('tap transactions')));
    const before = appended.length;
    await append(6);
    await c.until('6 live events', () => c.messages.length >= 6);
    assert.deepEqual(
      c
        .events()
        .map((e) => e.event.id)
        .sort(),
      appended
        .slice(before)
        .map((a) => a.id)
        .sort(),
    );
    await c.until('a ping', () => c.comments.includes('ping'), 3_000);
    c.close();
  });

  test('Last-Event-ID resumes without gaps or repeats, also across live appends', async () => {
    const first = await open('from=earliest');
    await first.until('7 events', () => first.messages.length >= 7);
    first.close();
    const seen = first.events().slice(0, 7);
    const last = seen[seen.length - 1]!.id;

    await append(5); // appended while nobody listens
    const second = await open('from=now', { 'last-event-id': last }); // the header wins over from
    const total = appended.length;
    await second.until('the rest', () => seen.length + second.messages.length >= total);
    await append(3); // live, after resuming
    await second.until('live events after resume', () => seen.length + second.messages.length >= total + 3);
    await delay(300);
    const ids = [...seen, ...second.events()].map((e) => e.event.id as string);
    assert.equal(ids.length, appended.length, 'no repeats');
    assert.deepEqual([...ids].sort(), appended.map((a) => a.id).sort(), 'no gaps');
    second.close();
  });

  test('closing the client frees its Redis connection; at most 5 streams per key (429)', async () => {
    await waitFor('earlier streams to close', async () => (await tapClients()) === 0 && (await openGauge()) === 0, 10_000);
    const five = await Promise.all([1, 2, 3, 4, 5].map(() => open('')));
    for (const c of five) assert.equal(c.res.status, 200);
    await waitFor('five tap connections', async () => (await tapClients()) === 5, 5_000);
    assert.equal(await openGauge(), 5);
    const sixth = await fetch(url(''), { headers: { authorization: `Bearer ${tapKey}` } });
    assert.equal(sixth.status, 429);
    assert.ok(sixth.headers.get('retry-after'));
    assert.match(sixth.headers.get('content-type') ?? '', /^application\/problem\+json/);
    await sixth.body?.cancel();

    // clients go away while their streams sit in a blocking read
    for (const c of five) c.close();
    await waitFor('tap connections to close', async () => (await tapClients()) === 0, 10_000);
    await waitFor('the open-streams gauge to drop', async () => (await openGauge()) === 0, 5_000);
    const again = await open('');
    assert.equal(again.res.status, 200);
    again.close();
    await waitFor('the last tap connection to close', async () => (await tapClients()) === 0, 10_000);
  });

  test('read-only: tapping wrote nothing to Redis', async () => {
    const { keys, entries } = await scanPrefix(inst.redis, inst.env.prefix);
    const streams = keys.filter((k) => k.includes(':transactions:'));
    assert.equal(entries, appended.length);
    for (const k of streams) assert.deepEqual(await inst.redis.xinfo('GROUPS', k), [], `no group on ${k}`);
  });
});
