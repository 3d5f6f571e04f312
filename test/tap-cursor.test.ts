// The tap's merge order and resume cursor against real Redis streams with hand-picked ids: equal
// ids in different streams, a later entry with a SMALLER id than one already delivered (what a
// single "last id" cursor would skip), resuming from every event's cursor, start and end bounds,
// and that tapping writes nothing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { entryArgs } from '../core/entry.ts';
import { connectRedis } from '../core/redis.ts';
import { idBefore } from '../core/stream-id.ts';
import { decodeCursor, encodeCursor, parseTapStart } from '../core/tap/position.ts';
import { TapInputError } from '../core/errors.ts';
import { openTap } from '../core/tap/reader.ts';
import type { TapEvent, TapOptions } from '../core/tap/reader.ts';
import { partitionOf } from '../core/partition.ts';

const { topology } = writeTopology({ 'topics.transactions.partitions': 2, 'topics.validated.partitions': 2 });
const TOPIC = 'transactions';

let inst: TestInstance;
let conn: Redis;

before(async () => {
  inst = await createInstance('tap-cursor');
  conn = connectRedis(inst.env, { name: 'rill:tap:test' }) as Redis;
});
after(async () => {
  conn?.disconnect();
  await inst?.cleanup();
});

const stream = (p: number, lane: string) => inst.keys.lane(TOPIC, p, lane);

async function add(p: number, lane: string, id: string, event: Record<string, unknown>): Promise<void> {
  await inst.redis.xadd(stream(p, lane), id, ...entryArgs({ txId: String(event.id), event: JSON.stringify(event) }));
}

const ev = (n: number, merchant = 'm_a', type = 'payin') => ({ id: `tx_${n}`, merchant_id: merchant, type, amount: n, currency: 'USD' });

async function collect(opts: Partial<TapOptions>, max = Infinity): Promise<TapEvent[]> {
  const tap = await openTap({ redis: conn, keys: inst.keys, topology, topic: TOPIC, from: 'earliest', ...opts });
  const out: TapEvent[] = [];
  for await (const e of tap) {
    out.push(e);
    if (out.length >= max) break;
  }
  return out;
}

const txs = (events: readonly TapEvent[]) => events.map((e) => e.event.id);

describe('tap merge and cursor', () => {
  test('parsing starts and positions', () => {
    assert.deepEqual(parseTapStart('now'), { kind: 'now' });
    assert.deepEqual(parseTapStart('earliest'), { kind: 'earliest' });
    assert.deepEqual(parseTapStart('1717000000000'), { kind: 'time', ms: 1717000000000 });
    assert.deepEqual(parseTapStart('0017-03'), { kind: 'id', id: '17-3' });
    assert.deepEqual(parseTapStart('10m', 1_000_000), { kind: 'time', ms: 400_000 });
    assert.deepEqual(parseTapStart('2024-06-01T00:00:00Z'), { kind: 'time', ms: Date.UTC(2024, 5, 1) });
    assert.throws(() => parseTapStart('yesterday'), TapInputError);
    assert.equal(idBefore('5-3'), '5-2');
    assert.equal(idBefore('5-0'), '4-18446744073709551615');
    assert.equal(idBefore('0-0'), '0-0');
    const slots = [
      { partition: 0, lane: 'normal' },
      { partition: 1, lane: 'normal' },
      { partition: 1, lane: 'low' },
    ];
    const positions = ['1717000000000-0', '1717000000000-0', '1716999999000-7'];
    const c = encodeCursor(TOPIC, slots, positions);
    assert.match(c, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeCursor(c, TOPIC, slots), positions);
    assert.throws(() => decodeCursor(c, 'validated', slots), /belongs to topic "transactions"/);
    assert.throws(() => decodeCursor('not a cursor', TOPIC, slots), TapInputError);
    assert.throws(() => decodeCursor(Buffer.from('{"v":1}').toString('base64url'), TOPIC, slots), TapInputError);
  });

  test('merges by id across streams; resumes exactly from every event, ties and late smaller ids included', async () => {
    // ties: the same id in three streams; ordering by id, then partition, then lane (critical first)
    await add(1, 'normal', '1000-0', ev(3));
    await add(0, 'normal', '1000-0', ev(2));
    await add(0, 'critical', '1000-0', ev(1, 'm_a', 'refund'));
    await add(0, 'normal', '1000-1', ev(4));
    await add(1, 'low', '999-5', ev(0, 'm_b', 'alert'));
    await add(1, 'critical', '2000-0', ev(5, 'm_b', 'chargeback'));
    await add(0, 'high', '3000-0', ev(6, 'm_b', 'payout'));

    const all = await collect({});
    assert.deepEqual(txs(all), ['tx_0', 'tx_1', 'tx_2', 'tx_3', 'tx_4', 'tx_5', 'tx_6']);
    assert.deepEqual(
      all.map((e) => e.id),
      ['999-5', '1000-0', '1000-0', '1000-0', '1000-1', '2000-0', '3000-0'],
    );
    assert.equal(all[0]!.stream, stream(1, 'low'));
    assert.equal(all[0]!.partition, 1);
    assert.equal(all[0]!.tx, 'tx_0');

    // from every event's cursor, the rest: no gap, no repeat (also with a batch of 1 per read)
    for (let k = 0; k < all.length; k++) {
      for (const batch of [1, 500]) {
        const rest = await collect({ cursor: all[k]!.cursor(), batch });
        assert.deepEqual(txs(rest), txs(all.slice(k + 1)), `resume after event ${k} (batch ${batch})`);
      }
    }

    // an entry appended later with a smaller id than ones already delivered from other streams
    // (another shard's clock, a clock step back): a per-stream cursor still delivers it, once
    const cursorAtEnd = all[all.length - 1]!.cursor();
    await add(1, 'normal', '1500-0', ev(7));
    const late = await collect({ cursor: cursorAtEnd });
    assert.deepEqual(txs(late), ['tx_7']);
    assert.deepEqual(txs(await collect({ cursor: late[0]!.cursor() })), []);
  });

  test('start, end, filters', async () => {
    assert.deepEqual(txs(await collect({ from: '1000' })), ['tx_1', 'tx_2', 'tx_3', 'tx_4', 'tx_7', 'tx_5', 'tx_6']);
    assert.deepEqual(txs(await collect({ from: '1000-1' })), ['tx_4', 'tx_7', 'tx_5', 'tx_6']);
    assert.deepEqual(txs(await collect({ to: '1000' })), ['tx_0', 'tx_1', 'tx_2', 'tx_3', 'tx_4']);
    assert.deepEqual(txs(await collect({ to: '1000-0' })), ['tx_0', 'tx_1', 'tx_2', 'tx_3']);
    assert.deepEqual(txs(await collect({ from: '1500', to: '2000' })), ['tx_7', 'tx_5']);
    assert.deepEqual(txs(await collect({ from: 'now' })), []);
    // follow up to now: ends at the streams' ends as they were at open
    assert.deepEqual(txs(await collect({ from: '1500', follow: true, to: 'now', blockMs: 5_000 })), ['tx_7', 'tx_5', 'tx_6']);
    assert.deepEqual(txs(await collect({ filter: { type: 'payin' } })), ['tx_2', 'tx_3', 'tx_4', 'tx_7']);
    const mb = await collect({ filter: { merchantId: 'm_b' } });
    // a merchant filter reads only that merchant's partition: m_b's events in other partitions
    // (planted by hand here, never by Rill) are not seen
    const home = partitionOf('m_b', 2);
    assert.deepEqual(txs(mb), [...(home === 1 ? ['tx_0', 'tx_5'] : []), ...(home === 0 ? ['tx_6'] : [])]);
    // a filtered tap's cursor still covers what it skipped
    const types = await collect({ filter: { type: 'refund' } });
    assert.deepEqual(txs(types), ['tx_1']);
    assert.deepEqual(txs(await collect({ cursor: types[0]!.cursor() })), ['tx_2', 'tx_3', 'tx_4', 'tx_7', 'tx_5', 'tx_6']);
    // an undecodable entry is skipped and counted
    await inst.redis.xadd(stream(0, 'low'), '3500-0', 'tx', 'tx_bad', 'ev', 'not json');
    const tap = await openTap({ redis: conn, keys: inst.keys, topology, topic: TOPIC, from: '3000' });
    const seen: string[] = [];
    for await (const e of tap) seen.push(String(e.event.id));
    assert.deepEqual(seen, ['tx_6']);
    assert.equal(tap.stats.undecodable, 1);
    assert.equal(tap.stats.scanned, 2);
  });

  test('follow: live entries in id order per round, abort ends the read', async () => {
    const abort = new AbortController();
    const tap = await openTap({ redis: conn, keys: inst.keys, topology, topic: TOPIC, from: 'now', follow: true, blockMs: 200, signal: abort.signal });
    const got: string[] = [];
    const reading = (async () => {
      for await (const e of tap) {
        got.push(String(e.event.id));
        if (got.length === 2) abort.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    await add(0, 'normal', '*', ev(8));
    await add(1, 'high', '*', ev(9, 'm_b', 'payout'));
    await reading;
    assert.deepEqual(got.sort(), ['tx_8', 'tx_9']);
  });

  test('a tap writes nothing: no group, no new key', async () => {
    const before = (await inst.redis.keys(`${inst.env.prefix}:*`)).sort();
    await collect({});
    await collect({ from: 'now', follow: true, to: String(Date.now() + 300), blockMs: 100 });
    assert.deepEqual((await inst.redis.keys(`${inst.env.prefix}:*`)).sort(), before);
    for (const k of before) assert.deepEqual(await inst.redis.xinfo('GROUPS', k), [], k);
  });
});
