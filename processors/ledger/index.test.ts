// The ledger's refundable payins live in time buckets that expire with the refund window, so Redis
// does not keep every payin forever. A refund whose payin is unknown (never accepted, or past the
// window) or failed ends failed with its code; one whose payin was accepted but has not settled
// waits for it (a parked wait, woken by the payin's signal) until await_payin, then fails.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from '../../test/helpers/instance.ts';
import type { TestInstance } from '../../test/helpers/instance.ts';
import { createLogger } from '../../core/logger.ts';
import { createRegistry } from '../../core/metrics.ts';
import { partitionOf } from '../../core/partition.ts';
import type { TransactionEvent } from '../../core/event.ts';
import type { StreamEvent } from '../../core/processor.ts';
import { newTxId } from '../../core/tx-id.ts';
import { ledgerProcessor, payinBucket } from './index.ts';
import { PAYIN_ACCEPTED, payinToken } from '../../core/payins.ts';

const DAY = 86_400_000;
const WINDOW = 30 * DAY;
const AWAIT = 60_000;

let inst: TestInstance;
before(async () => {
  inst = await createInstance('ledger');
});
after(async () => {
  await inst.cleanup();
});

function processor() {
  return ledgerProcessor.create(
    { low_balance: {}, record_ttl_ms: 60_000 },
    {
      stage: 'ledger',
      redis: inst.redis,
      keys: inst.keys,
      topics: [],
      refunds: { window: WINDOW, await_payin: AWAIT, hot: WINDOW },
      postgres: inst.env,
      registry: createRegistry(),
      logger: createLogger('silent'),
    },
  );
}

function ev(type: string, merchant: string, amount: number, id = newTxId(), reference?: string): StreamEvent {
  const event = { id, type, merchant_id: merchant, amount, currency: 'EUR', reference, ingested_at: Date.now(), status: 'accepted' } as TransactionEvent;
  return { entryId: '1-0', stream: `s:${merchant}`, partition: partitionOf(merchant, 8), lane: 'normal', txId: id, event, deliveries: 1 };
}

test('payinBucket: a 30th of the hot window per bucket, expiring once its last payin is past the hot window', () => {
  const at = Date.UTC(2026, 10, 26, 12);
  const b = payinBucket(newTxId(at), WINDOW);
  const size = WINDOW / 30;
  assert.equal(b.name, String(Math.floor(at / size)));
  assert.equal(b.expiresAt, (Math.floor(at / size) + 1) * size + WINDOW);
  assert.ok(b.expiresAt >= at + WINDOW && b.expiresAt < at + WINDOW + size);
  assert.equal(payinBucket(newTxId(at), 120_000).expiresAt % 60_000, 0, 'buckets are at least a minute');
  const short = payinBucket(newTxId(at), 2_000);
  assert.ok(short.expiresAt > at + 2_000 && short.expiresAt <= at + 4_000, 'or the hot window, when it is shorter');
  assert.deepEqual(payinBucket('not-a-tx-id', WINDOW), { name: 'none', expiresAt: 0 });
});

test('a payin lands in its bucket with the expiry set; a refund of it succeeds', async () => {
  const p = await processor();
  const payin = ev('payin', 'm_bucket', 1_000);
  assert.equal((await p.process([payin]))[0]!.kind, 'ok');
  const key = inst.keys.partitioned(payin.partition, 'payins', 'm_bucket', payinBucket(payin.txId, WINDOW).name);
  assert.equal(await inst.redis.hget(key, payin.txId), '1000:EUR');
  const ttl = await inst.redis.pttl(key);
  assert.ok(ttl > WINDOW - 60_000 && ttl <= WINDOW + WINDOW / 30, `TTL ${ttl} ms`);
  const [refund] = await p.process([ev('refund', 'm_bucket', 400, undefined, payin.txId)]);
  assert.equal(refund!.kind === 'ok' && refund!.event.status, 'succeeded');
  assert.equal(await inst.redis.hget(key, payin.txId), '600:EUR');
});

test('refunds of unknown, failed and unsettled payins: failed with their codes, or a wait for the payin', async () => {
  const p = await processor();
  const code = (o: Awaited<ReturnType<typeof p.process>>[number] | undefined) => (o?.kind === 'ok' ? o.event.failure_code : o?.kind);
  // unknown: never accepted, or past the window (its bucket expired)
  const [unknown] = await p.process([ev('refund', 'm_late', 100, undefined, newTxId(Date.now() - WINDOW - DAY))]);
  assert.equal(code(unknown), 'payin_not_found');
  // accepted by ingest, not settled: a wait for the payin's token, until its deadline
  const pending = newTxId();
  const m = 'm_wait';
  const part = partitionOf(m, 8);
  const bucket = inst.keys.payins(part, m, payinBucket(pending, WINDOW).name);
  await inst.redis.hset(bucket, pending, PAYIN_ACCEPTED);
  const refund = ev('refund', m, 100, undefined, pending);
  const [waiting] = await p.process([refund]);
  assert.equal(waiting!.kind, 'retry');
  assert.deepEqual(waiting!.kind === 'retry' && waiting!.wait, { token: payinToken(pending), until: refund.event.ingested_at + AWAIT });
  // past its deadline: failed payin_not_settled, and that answer is kept for redeliveries
  const late = ev('refund', m, 100, undefined, pending);
  late.event.ingested_at -= AWAIT + 1;
  assert.equal(code((await p.process([late]))[0]), 'payin_not_settled');
  // the payin failed upstream: marked, signalled, and a refund of it fails payin_failed
  const failedPayin = ev('payin', m, 500, pending);
  failedPayin.event.status = 'failed';
  const [marked] = await p.process([failedPayin]);
  assert.deepEqual(marked!.kind === 'ok' && marked!.signals, [payinToken(pending)]);
  assert.equal(await inst.redis.hget(bucket, pending), 'f');
  assert.equal(code((await p.process([refund]))[0]), 'payin_failed');
});

test('a wait blocks only its merchant in that stream: the same merchant behind it, another merchant goes on', async () => {
  const p = await processor();
  const pending = newTxId();
  const [a, b] = ['m_blockA', 'm_blockB'];
  await inst.redis.hset(inst.keys.payins(partitionOf(a, 8), a, payinBucket(pending, WINDOW).name), pending, PAYIN_ACCEPTED);
  const payinB = ev('payin', b, 1_000);
  const out = await p.process([ev('refund', a, 10, undefined, pending), ev('payout', a, 1), payinB, ev('payout', b, 400)]);
  assert.deepEqual(
    out.map((o) => (o.kind === 'retry' ? (o.wait ? 'wait' : 'behind') : o.kind === 'ok' ? o.event.status : 'fatal')),
    ['wait', 'behind', 'succeeded', 'succeeded'],
  );
});

test('a batch applies each event as if applied alone: the same outcomes, balances and low-balance alerts', async () => {
  const p = await ledgerProcessor.create(
    { low_balance: { default: 500 }, record_ttl_ms: 60_000, alerts_topic: 'alerts' },
    {
      stage: 'ledger',
      redis: inst.redis,
      keys: inst.keys,
      topics: ['alerts'],
      refunds: { window: WINDOW, await_payin: AWAIT, hot: WINDOW },
      postgres: inst.env,
      registry: createRegistry(),
      logger: createLogger('silent'),
    },
  );
  // 1,000 → 300 (alert) → 200 → 800 (re-armed) → 300 (alert again) → payout refused → refund → 100
  const plan = (m: string): StreamEvent[] => {
    const payin = ev('payin', m, 1_000);
    return [
      payin,
      ev('payout', m, 700),
      ev('payout', m, 100),
      ev('payin', m, 600),
      ev('payout', m, 500),
      ev('payout', m, 5_000),
      ev('refund', m, 200, undefined, payin.txId),
    ];
  };
  const summary = (outs: Awaited<ReturnType<typeof p.process>>) =>
    outs.map((o) => (o.kind === 'ok' ? [o.event.status, (o.emit ?? []).map((e) => [e.event.type, e.event.balance])] : [o.kind]));
  const alone = [];
  for (const e of plan('m_seq_alone')) alone.push(...(await p.process([e])));
  const batched = await p.process(plan('m_seq_batch'));
  assert.deepEqual(summary(batched), summary(alone));
  assert.deepEqual(summary(batched), [
    ['succeeded', []],
    ['succeeded', [['wallet_low', 300]]],
    ['succeeded', []],
    ['succeeded', []],
    ['succeeded', [['wallet_low', 300]]],
    ['failed', []],
    ['succeeded', []],
  ]);
  const wallet = (m: string) => inst.redis.hget(inst.keys.partitioned(partitionOf(m, 8), 'wallet', m), 'EUR');
  assert.equal(await wallet('m_seq_batch'), await wallet('m_seq_alone'));
});

test('a transaction held for review never moves money here: dead-lettered for an operator (the review route is missing)', async () => {
  const p = await processor();
  const held = ev('payin', 'm_held', 1_000);
  held.event.status = 'in_review';
  const [out] = await p.process([held]);
  assert.equal(out!.kind, 'fatal');
  assert.equal(await inst.redis.hget(inst.keys.partitioned(held.partition, 'wallet', 'm_held'), 'EUR'), null, 'no balance moved');
});
