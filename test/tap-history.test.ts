// Tap across tiers: a start before the Redis window reads the sink's input topic from Postgres
// (rows the real sink wrote), then goes on in Redis, while a trimmer keeps a window of a few
// hundred ms under the tap. Every entry exactly once, in the tap's order (id, then stream), across
// the seam; a cursor taken anywhere resumes exactly; a topic without history refuses such a start
// (library, HTTP problem+json, CLI one line); `earliest` stays the oldest entry in Redis.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { waitFor } from './helpers/wait.ts';
import { entryArgs } from '../core/entry.ts';
import type { TransactionEvent, TransactionType } from '../core/event.ts';
import { LaneMap } from '../core/lanes.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { partitionOf } from '../core/partition.ts';
import { connectRedis, defineScripts } from '../core/redis.ts';
import { CORE_SCRIPTS } from '../core/scripts.ts';
import { compareIds, nextId } from '../core/stream-id.ts';
import { postgresHistory } from '../core/tap/history.ts';
import { TapHistoryUnavailableError } from '../core/errors.ts';
import { openTap } from '../core/tap/reader.ts';
import type { TapEvent, TapOptions } from '../core/tap/reader.ts';
import type { PostgresSinkConfig, Topology } from '../core/topology/schema.ts';
import { tapCommand } from '../cli/commands/tap.ts';
import { createApiKey } from '../core/api-keys.ts';
import { startTestIngest } from '../ingest/testing.ts';
import { BatchWriter } from '../sinks/postgres/batch-writer.ts';
import { PostgresSink } from '../sinks/postgres/sink.ts';

const PARTITIONS = 2;
const TYPES: TransactionType[] = ['payin', 'payout', 'refund', 'payin', 'chargeback'];
// two merchants per partition, so every partition has several merchants and each merchant every type
const CANDIDATES = Array.from({ length: 40 }, (_, i) => `m_h${i}`);
const MERCHANTS = [0, 1].flatMap((p) => CANDIDATES.filter((m) => partitionOf(m, PARTITIONS) === p).slice(0, 2));

interface Sent {
  id: string;
  key: string;
  index: number;
  event: TransactionEvent;
}

describe('tap across Redis and Postgres', () => {
  let inst: TestInstance;
  let topology: Topology;
  let topologyPath: string;
  let sink: PostgresSink;
  let sinkRedis: Redis;
  const sent: Sent[] = [];
  const streamIndex = new Map<string, number>();
  let lanes: LaneMap;
  let t0 = 0;
  let seq = 0;

  /** The event a stage would have written to `validated`: settled or failed, as the sink's row keeps it. */
  const makeEvent = (): TransactionEvent => {
    const n = seq++;
    const type = TYPES[n % TYPES.length]!;
    const amount = 100 + n;
    const base: TransactionEvent = {
      id: `tx_hist_${String(n).padStart(6, '0')}`,
      merchant_id: MERCHANTS[n % MERCHANTS.length]!,
      type,
      amount,
      currency: n % 7 ? 'USD' : 'EUR',
      ingested_at: Date.now(),
      ...(n % 3 ? { reference: `ref ${n}` } : {}),
      ...(n % 4 === 1 ? { occurred_at: new Date(Date.now() - 60_000).toISOString() } : {}),
      ...(n % 5 === 2 ? { metadata: { order: `o${n}`, note: 'a "quoted", comma' } } : {}),
      risk_score: n % 90,
    };
    if (n % 11 === 5) return { ...base, status: 'failed', failure_code: 'insufficient_funds', failure_reason: 'ledger: not enough balance' };
    const credit = type === 'payin';
    return {
      ...base,
      status: 'succeeded',
      ledger: [
        { account: 'wallet', amount: credit ? amount : -amount },
        { account: 'external', amount: credit ? -amount : amount },
      ],
    };
  };

  const append = async (n: number): Promise<void> => {
    const events = Array.from({ length: n }, makeEvent);
    const pipe = inst.redis.pipeline();
    const keys = events.map((e) => inst.keys.lane('validated', partitionOf(e.merchant_id, PARTITIONS), lanes.laneOf(e.type)));
    events.forEach((e, i) => pipe.xadd(keys[i]!, '*', ...entryArgs({ txId: e.id, event: JSON.stringify(e) })));
    const res = await pipe.exec();
    events.forEach((e, i) => sent.push({ id: String(res![i]![1]), key: keys[i]!, index: streamIndex.get(keys[i]!)!, event: e }));
  };

  /** The tap's order: entry id, ties by stream (partition, then lane in priority order). */
  const tapOrder = (list: readonly Sent[]): Sent[] => [...list].sort((a, b) => compareIds(a.id, b.id) || a.index - b.index);
  const label = (key: string, id: string, tx: string | undefined) => `${key} ${id} ${tx}`;
  const sentLabels = (list: readonly Sent[]) => list.map((s) => label(s.key, s.id, s.event.id));
  const tapLabels = (list: readonly TapEvent[]) => list.map((e) => label(e.stream, e.id, e.tx));

  /** Retention as a hot window: entries older than `windowMs` that the sink acknowledged are trimmed. */
  const trimAcked = async (windowMs: number, keep: (key: string) => number = () => 0): Promise<number> => {
    let trimmed = 0;
    for (const key of streamIndex.keys()) {
      const groups = (await inst.redis.xinfo('GROUPS', key).catch(() => [])) as unknown[][];
      const g = groups.map(toMap).find((m) => m.get('name') === 'postgres');
      if (!g) continue;
      const pending = (await inst.redis.xpending(key, 'postgres')) as [number, string | null];
      let cut = pending[0] > 0 && pending[1] ? pending[1] : nextId(String(g.get('last-delivered-id')));
      const age = `${Date.now() - windowMs}-0`;
      if (compareIds(age, cut) < 0) cut = age;
      const kept = keep(key);
      if (kept > 0) {
        const last = (await inst.redis.xrevrange(key, '+', '-', 'COUNT', kept)) as [string, string[]][];
        const oldestKept = last[last.length - 1]?.[0];
        if (oldestKept && compareIds(oldestKept, cut) < 0) cut = oldestKept;
      }
      trimmed += Number(await inst.redis.xtrim(key, 'MINID', cut));
    }
    return trimmed;
  };

  const rowCount = async () => Number((await inst.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM transactions')).rows[0]!.n);

  const tapOptions = (o: Partial<TapOptions>, redis: Redis): TapOptions => ({
    redis,
    keys: inst.keys,
    topology,
    topic: 'validated',
    history: postgresHistory(inst.pool, topology, 'validated')!,
    batch: 7,
    historyPage: 40,
    blockMs: 200,
    ...o,
  });

  before(async () => {
    inst = await createInstance('taphist');
    ({ topology, path: topologyPath } = writeTopology({
      'topics.transactions.partitions': PARTITIONS,
      'topics.validated.partitions': PARTITIONS,
      'sinks.postgres.batch_rows': 50,
      'sinks.postgres.max_wait': '20ms',
    }));
    lanes = new LaneMap(topology.priorities);
    for (let p = 0; p < PARTITIONS; p++) for (const l of topology.priorities) streamIndex.set(inst.keys.lane('validated', p, l.name), streamIndex.size);
    sinkRedis = connectRedis(inst.env) as Redis;
    defineScripts(sinkRedis, CORE_SCRIPTS);
    sink = new PostgresSink({
      name: 'postgres',
      config: topology.sinks.postgres as PostgresSinkConfig,
      topology,
      keys: inst.keys,
      redis: sinkRedis,
      writer: new BatchWriter(inst.env, 'rill-test-taphist'),
      consumer: 'c1',
      registry: createRegistry({ defaults: false }),
      logger: createLogger('silent'),
      blockMs: 100,
    });
    await sink.start();
  });

  after(async () => {
    await sink?.stop();
    sinkRedis?.disconnect();
    await inst?.cleanup();
  });

  test('from before the window: history from Postgres, then Redis, live, with trimming under the tap', async () => {
    t0 = Date.now() - 1;
    await append(300);
    await waitFor('the first 300 rows', async () => (await rowCount()) === 300, 20_000);
    // a different window per stream: some keep nothing, some a few, one (the low lane) everything
    // (streams by index: partition 0 critical, high, normal, low, then partition 1's)
    const keep = [1_000, 0, 3, 0, 0, 9, 0, 0];
    const trimmedBefore = await trimAcked(0, (key) => keep[streamIndex.get(key)!]!);
    assert.ok(trimmedBefore >= 100, `trimmed ${trimmedBefore} of 300 before the tap opens`);

    const redis = connectRedis(inst.env) as Redis;
    const abort = new AbortController();
    const tap = await openTap(tapOptions({ from: { kind: 'time', ms: t0 }, follow: true, signal: abort.signal }, redis));
    const got: TapEvent[] = [];
    let stopWriting = false;
    // a lost entry would leave the tap waiting: give up after a while and let the counts fail
    const deadline = setTimeout(() => {
      abort.abort();
      redis.disconnect();
    }, 30_000);
    // meanwhile: 200 more events, and a 300 ms hot window trimming what the sink acknowledged
    const writer = (async () => {
      for (let i = 0; i < 10; i++) {
        await append(20);
        await trimAcked(300);
        await delay(30);
      }
      while (!stopWriting) {
        await trimAcked(300);
        await delay(30);
      }
    })();
    try {
      for await (const ev of tap) {
        got.push(ev);
        if (got.length === 500) break;
      }
    } finally {
      stopWriting = true;
      clearTimeout(deadline);
      abort.abort();
      redis.disconnect();
      await writer;
    }
    assert.equal(got.length, 500);
    assert.equal(new Set(tapLabels(got)).size, 500, 'no entry twice');
    assert.deepEqual(new Set(tapLabels(got)), new Set(sentLabels(sent)), 'every entry');
    // the 300 that existed at open come first and in the tap's exact order; each stream in id order
    assert.deepEqual(tapLabels(got.slice(0, 300)), sentLabels(tapOrder(sent.slice(0, 300))));
    for (const key of streamIndex.keys()) {
      const ids = got.filter((e) => e.stream === key).map((e) => e.id);
      assert.deepEqual(
        ids,
        sent.filter((s) => s.key === key).map((s) => s.id),
        `${key} in order`,
      );
    }
    // the events themselves: as written (occurred_at is given in UTC here, so it comes back the same)
    const byTx = new Map(sent.map((s) => [s.event.id, s.event]));
    for (const e of got) assert.deepEqual(e.event, byTx.get(e.tx!), `${e.tx} from ${e.source}`);
    assert.ok(tap.stats.fromHistory >= trimmedBefore, `${tap.stats.fromHistory} from history`);
    assert.ok(got.some((e) => e.source === 'redis'));
  });

  test('a cursor from anywhere (history, seam, Redis) resumes exactly, in the tap order', async () => {
    await append(20); // test 1's window may have trimmed everything: a few newest entries stay in Redis
    await waitFor('every row', async () => (await rowCount()) === sent.length, 20_000);
    await trimAcked(0, (key) => (key.endsWith(':normal') ? 4 : 0));
    const redis = connectRedis(inst.env) as Redis;
    try {
      const all: TapEvent[] = [];
      for await (const ev of await openTap(tapOptions({ from: { kind: 'time', ms: t0 } }, redis))) all.push(ev);
      const expected = sentLabels(tapOrder(sent));
      assert.deepEqual(tapLabels(all), expected, 'one pass, no follow: the exact order');
      const seam = all.findIndex((e) => e.source === 'redis');
      assert.ok(seam > 0, 'history, then Redis');
      for (const k of [0, 41, seam - 1, seam, all.length - 3]) {
        const rest: TapEvent[] = [];
        for await (const ev of await openTap(tapOptions({ cursor: all[k]!.cursor() }, redis))) rest.push(ev);
        assert.deepEqual(tapLabels(rest), expected.slice(k + 1), `resumed after event ${k}`);
      }
      const merchant: TapEvent[] = [];
      for await (const ev of await openTap(tapOptions({ from: { kind: 'time', ms: t0 }, filter: { merchantId: MERCHANTS[2]!, type: 'payout' } }, redis)))
        merchant.push(ev);
      const want = tapOrder(sent).filter((s) => s.event.merchant_id === MERCHANTS[2] && s.event.type === 'payout');
      assert.ok(want.length > 0);
      assert.deepEqual(tapLabels(merchant), sentLabels(want), 'filters');
    } finally {
      redis.disconnect();
    }
  });

  test('a topic without history, or a tap without Postgres, refuses a start before the window; earliest is what Redis holds', async () => {
    const key = inst.keys.lane('transactions', 0, 'normal');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(String(await inst.redis.xadd(key, '*', 'tx', `tx_t${i}`, 'ev', JSON.stringify({ id: `tx_t${i}`, type: 'payin' }))));
    await inst.redis.xtrim(key, 'MINID', ids[2]!);
    const redis = connectRedis(inst.env) as Redis;
    try {
      const base = { redis, keys: inst.keys, topology, topic: 'transactions' };
      await assert.rejects(openTap({ ...base, from: { kind: 'time', ms: t0 } }), (err: Error) => {
        assert.ok(err instanceof TapHistoryUnavailableError);
        assert.match(err.message, /entries of transactions after .* are gone from Redis .*keeps no history beyond Redis \(only "validated"/);
        return true;
      });
      await assert.rejects(openTap({ ...base, topic: 'validated', from: { kind: 'time', ms: t0 } }), /its history is in Postgres, which this tap cannot read/);
      const earliest: TapEvent[] = [];
      for await (const ev of await openTap({ ...base, from: { kind: 'earliest' } })) earliest.push(ev);
      assert.deepEqual(
        earliest.map((e) => e.id),
        ids.slice(2),
      );
      // from within the window: fine without history
      const inside: TapEvent[] = [];
      for await (const ev of await openTap({ ...base, from: { kind: 'id', id: ids[3]! } })) inside.push(ev);
      assert.deepEqual(
        inside.map((e) => e.id),
        ids.slice(3),
      );
    } finally {
      redis.disconnect();
    }

    // HTTP: a 400 problem for the topic without history; the sink's topic streams its history
    const ingest = await startTestIngest(inst, { topology });
    try {
      const tapKey = await createApiKey(inst.pool, { scope: 'tap' });
      const res = await fetch(`${ingest.url}/v1/streams/transactions/tail?from=${t0}`, { headers: { authorization: `Bearer ${tapKey}` } });
      assert.equal(res.status, 400);
      assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
      const problem = (await res.json()) as { detail: string };
      assert.match(problem.detail, /keeps no history beyond Redis/);
      const ac = new AbortController();
      const sse = await fetch(`${ingest.url}/v1/streams/validated/tail?from=${t0}`, { headers: { authorization: `Bearer ${tapKey}` }, signal: ac.signal });
      assert.equal(sse.status, 200);
      let text = '';
      const first = tapOrder(sent)[0]!;
      const giveUp = setTimeout(() => ac.abort(), 15_000);
      try {
        for await (const chunk of sse.body as unknown as AsyncIterable<Uint8Array>) {
          text += Buffer.from(chunk).toString('utf8');
          if (text.includes('data: ')) break;
        }
      } finally {
        clearTimeout(giveUp);
        ac.abort();
      }
      const data = /data: (.*)\n/.exec(text)?.[1];
      assert.deepEqual(JSON.parse(data!), first.event, 'the oldest event, from Postgres');
    } finally {
      await ingest.server.close();
    }

    // CLI: one line and exit 1; the sink's topic prints everything in order and says where from
    const io = () => {
      const out = { stdout: '', stderr: '' };
      return {
        out,
        io: {
          stdout: { write: (s: string) => (out.stdout += s) },
          stderr: { write: (s: string) => (out.stderr += s) },
          env: { ...process.env, ...inst.vars },
        },
      };
    };
    const bad = io();
    assert.equal(await tapCommand(['transactions', '--from', String(t0), '--topology', topologyPath], bad.io), 1);
    assert.equal(bad.out.stderr.trim().split('\n').length, 1);
    assert.match(bad.out.stderr, /^rill tap: entries of transactions after .* keeps no history beyond Redis/);
    const good = io();
    assert.equal(await tapCommand(['validated', '--from', String(t0), '--topology', topologyPath], good.io), 0);
    const lines = good.out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { _id: string; id: string });
    assert.deepEqual(
      lines.map((l) => `${l._id} ${l.id}`),
      tapOrder(sent).map((s) => `${s.id} ${s.event.id}`),
    );
    assert.match(good.out.stderr, /^rill tap: \d+ events from before the Redis window were read from Postgres\n$/);
  });
});

function toMap(flat: unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(String(flat[i]), flat[i + 1]);
  return m;
}

describe('tap history: what a page holds whole', () => {
  let inst: TestInstance;
  let writer: BatchWriter;
  before(async () => {
    inst = await createInstance('taphistpage');
    writer = new BatchWriter(inst.env, 'rill-test-taphistpage');
  });
  after(async () => {
    await writer?.close();
    await inst?.cleanup();
  });

  test('entries sunk and trimmed after a history page was read are read again, not skipped', async () => {
    const { topology } = writeTopology({ 'topics.transactions.partitions': PARTITIONS, 'topics.validated.partitions': PARTITIONS });
    const merchant = CANDIDATES.find((m) => partitionOf(m, PARTITIONS) === 0)!;
    const s = inst.keys.lane('validated', 0, 'normal');
    const t = inst.keys.lane('validated', 0, 'high');
    // S (payins) and T (payouts) interleaved in time: T's last entry is the newest
    const entries: { key: string; id: string; event: TransactionEvent }[] = [];
    const t0 = Date.now() - 1;
    for (let i = 0; i < 20; i++) {
      for (const [key, type] of [
        [s, 'payin'],
        [t, 'payout'],
      ] as const) {
        const event: TransactionEvent = {
          id: `tx_pg_${type}_${i}`,
          merchant_id: merchant,
          type,
          amount: 10 + i,
          currency: 'USD',
          ingested_at: Date.now(),
          status: 'succeeded',
        };
        entries.push({ key, id: String(await inst.redis.xadd(key, '*', ...entryArgs({ txId: event.id, event: JSON.stringify(event) }))), event });
      }
    }
    const sEntries = entries.filter((e) => e.key === s);
    const tEntries = entries.filter((e) => e.key === t);
    const sink = async (list: typeof entries) => {
      await writer.writeBatch(list.map((e) => ({ event: e.event, streamId: e.id, attempts: 1 })));
    };
    // S: its first 10 in Postgres and gone from Redis; T: all of it
    await sink([...sEntries.slice(0, 10), ...tEntries]);
    await inst.redis.xtrim(s, 'MINID', sEntries[10]!.id);
    await inst.redis.xtrim(t, 'MINID', nextId(tEntries[19]!.id));

    const redis = connectRedis(inst.env) as Redis;
    try {
      const tap = await openTap({
        redis,
        keys: inst.keys,
        topology,
        topic: 'validated',
        from: { kind: 'time', ms: t0 },
        history: postgresHistory(inst.pool, topology, 'validated')!,
        batch: 3,
        historyPage: 1_000,
      });
      const it = tap[Symbol.asyncIterator]();
      const got: TapEvent[] = [];
      // up to S's 13th entry (the Redis ones S read with its first page)
      while (got.length === 0 || got[got.length - 1]!.tx !== sEntries[12]!.event.id) got.push((await it.next()).value as TapEvent);
      // meanwhile S's entries 11..15 reach Postgres and leave Redis
      await sink(sEntries.slice(10, 15));
      await inst.redis.xtrim(s, 'MINID', sEntries[15]!.id);
      for (let r = await it.next(); !r.done; r = await it.next()) got.push(r.value);
      const order = [...entries].sort((a, b) => compareIds(a.id, b.id) || (a.key === t ? -1 : 1));
      assert.deepEqual(
        got.map((e) => `${e.stream} ${e.id}`),
        order.map((e) => `${e.key} ${e.id}`),
      );
      assert.deepEqual(
        got.filter((e) => e.stream === s).map((e) => e.source),
        [...Array(10).fill('history'), 'redis', 'redis', 'redis', 'history', 'history', ...Array(5).fill('redis')],
      );
    } finally {
      redis.disconnect();
    }
  });
});
