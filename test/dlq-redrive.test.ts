// The redrive script: XDEL first, XADD only when this call deleted the dead letter, so a redrive
// run twice (or by two operators at once) appends the event once, with its transaction id.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { SHIPPED_TOPOLOGY } from './helpers/topology-file.ts';
import { DeadLetters, REDRIVE_SCRIPT } from '../core/dead-letter/dead-letters.ts';
import { connectRedis, runScript } from '../core/redis.ts';
import type { RedisClient } from '../core/redis.ts';
import { loadTopology } from '../core/topology/load.ts';

let inst: TestInstance;
const topology = loadTopology(SHIPPED_TOPOLOGY);
before(async () => {
  inst = await createInstance('dlqredrive');
});
after(async () => {
  await inst?.cleanup();
});

const P = 3;

/** A dead letter as the stage runner writes it; returns its entry id. */
async function deadLetter(tx: string, over: Record<string, string> = {}): Promise<string> {
  const f: Record<string, string> = {
    tx,
    // a stage gave up on it (its cause, here a timeout, is gone by the time of the redrive)
    ev: JSON.stringify({ id: tx, type: 'payin', merchant_id: 'm', amount: 1, currency: 'EUR', ingested_at: Date.now() }),
    error: 'RetryableError',
    message: 'gave up after 5 attempts: Redis timeout',
    stage: 'validate',
    attempts: '1',
    origin_stream: inst.keys.lane('transactions', P, 'normal'),
    origin_id: '1-0',
    first_failed_at: String(Date.now()),
    last_failed_at: String(Date.now()),
    tp: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    ...over,
  };
  return String(await inst.redis.xadd(inst.keys.deadLetter('validate', P), '*', ...Object.entries(f).flat()));
}

const fieldsOf = (raw: string[]) => Object.fromEntries(Array.from({ length: raw.length / 2 }, (_, i) => [raw[2 * i], raw[2 * i + 1]]));

test('running the redrive script twice for one dead letter appends once', async () => {
  new DeadLetters(inst.redis, inst.keys, topology); // defines the script on the connection
  const dlqKey = inst.keys.deadLetter('validate', P);
  const origin = inst.keys.lane('transactions', P, 'normal');
  const index = inst.keys.deadLetterIndex(P);
  const id = await deadLetter('tx_twice');
  await inst.redis.hset(index, 'tx_twice', '{"stage":"validate"}');
  const first = await runScript(inst.redis, REDRIVE_SCRIPT, [dlqKey, origin, index], [id]);
  const second = await runScript(inst.redis, REDRIVE_SCRIPT, [dlqKey, origin, index], [id]);
  assert.equal(await inst.redis.hexists(index, 'tx_twice'), 0, 'its dead-letter index line goes with it');
  assert.match(String(first), /^\d+-\d+$/);
  assert.equal(second, null);
  const appended = await inst.redis.xrange(origin, '-', '+');
  assert.equal(appended.length, 1);
  const f = fieldsOf(appended[0]![1]);
  assert.deepEqual(Object.keys(f), ['tx', 'ev', 'tp'], 'only the entry fields go back');
  assert.equal(f.tx, 'tx_twice');
  assert.equal(JSON.parse(f.ev!).id, 'tx_twice');
  assert.equal(await inst.redis.xlen(dlqKey), 0);
});

test('two redrives of the same dead letters at once move each once', async () => {
  const origin = inst.keys.lane('transactions', P, 'normal');
  await inst.redis.del(origin);
  const ids = [await deadLetter('tx_a'), await deadLetter('tx_b'), await deadLetter('tx_c')].map((e) => `validate/${P}/${e}`);
  const conns: RedisClient[] = [connectRedis(inst.env), connectRedis(inst.env)];
  try {
    const [a, b] = await Promise.all([
      new DeadLetters(conns[0]!, inst.keys, topology).redrive({ ids }),
      new DeadLetters(conns[1]!, inst.keys, topology).redrive({ all: true, stage: 'validate' }),
    ]);
    assert.equal(a.redriven + b.redriven, 3);
    assert.equal(a.missing.length, 3 - a.redriven);
  } finally {
    for (const c of conns) c.disconnect();
  }
  const txs = (await inst.redis.xrange(origin, '-', '+')).map(([, f]) => fieldsOf(f).tx).sort();
  assert.deepEqual(txs, ['tx_a', 'tx_b', 'tx_c']);
});

test('an origin that is not one of the stage input lanes is replaced by the lane of the event type', async () => {
  const dlq = new DeadLetters(inst.redis, inst.keys, topology);
  const stray = `${inst.keys.prefix}:{${P}}:elsewhere`;
  const critical = inst.keys.lane('transactions', P, 'critical');
  const ev = JSON.stringify({ id: 'tx_lane', type: 'refund', merchant_id: 'm', amount: 1, currency: 'EUR', reference: 'tx_paid', ingested_at: 1 });
  const id = await deadLetter('tx_lane', { origin_stream: stray, ev });
  assert.equal((await dlq.redrive({ ids: [`validate/${P}/${id}`] })).redriven, 1);
  assert.equal(await inst.redis.exists(stray), 0);
  const back = await inst.redis.xrange(critical, '-', '+');
  assert.deepEqual(
    back.map(([, f]) => fieldsOf(f).tx),
    ['tx_lane'],
  );
});

test('a dead letter without its event is refused and kept', async () => {
  const dlq = new DeadLetters(inst.redis, inst.keys, topology);
  const broken = `validate/${P}/${await deadLetter('tx_broken', { ev: '' })}`;
  const fine = `validate/${P}/${await deadLetter('tx_fine')}`;
  const res = await dlq.redrive({ ids: [broken, fine] });
  assert.equal(res.redriven, 1, 'the others in its batch still go');
  assert.deepEqual(
    res.failed.map((f) => f.id),
    [broken],
  );
  assert.match(res.failed[0]!.error, /has no tx\/ev fields/);
  assert.ok(await dlq.get(broken), 'still there');
  assert.equal(await dlq.get(fine), undefined);
});
