// The ledger's refundable payins live in time buckets that expire with the refund window, so Redis
// does not keep every payin forever; a refund of a payin past the window fails (a business
// outcome), while one whose payin is simply not there yet is retried.
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

const DAY = 86_400_000;
const WINDOW = 30 * DAY;

let inst: TestInstance;
before(async () => {
  inst = await createInstance('ledger');
});
after(async () => {
  await inst.cleanup();
});

function processor() {
  return ledgerProcessor.create(
    { low_balance: {}, record_ttl_ms: 60_000, refund_window_ms: WINDOW },
    { stage: 'ledger', redis: inst.redis, keys: inst.keys, topics: [], registry: createRegistry(), logger: createLogger('silent') },
  );
}

function ev(type: string, merchant: string, amount: number, id = newTxId(), reference?: string): StreamEvent {
  const event = { id, type, merchant_id: merchant, amount, currency: 'EUR', reference, ingested_at: Date.now(), status: 'accepted' } as TransactionEvent;
  return { entryId: '1-0', stream: `s:${merchant}`, partition: partitionOf(merchant, 8), lane: 'normal', txId: id, event, deliveries: 1 };
}

test('payinBucket: a 30th of the window per bucket, expiring once its last payin is past the window', () => {
  const at = Date.UTC(2026, 10, 26, 12);
  const b = payinBucket(newTxId(at), WINDOW);
  const size = WINDOW / 30;
  assert.equal(b.name, String(Math.floor(at / size)));
  assert.equal(b.expiresAt, (Math.floor(at / size) + 1) * size + WINDOW);
  assert.ok(b.expiresAt >= at + WINDOW && b.expiresAt < at + WINDOW + size);
  assert.equal(payinBucket(newTxId(at), 1_000).expiresAt % 60_000, 1_000, 'buckets are at least a minute');
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

test('a refund of a payin past the refund window fails; one of a payin not there yet is retried', async () => {
  const p = await processor();
  const old = newTxId(Date.now() - WINDOW - DAY);
  const [late] = await p.process([ev('refund', 'm_late', 100, undefined, old)]);
  assert.equal(late!.kind, 'ok');
  assert.equal(late!.kind === 'ok' && late!.event.status, 'failed');
  assert.match(late!.kind === 'ok' ? String(late!.event.failure_reason) : '', /past the refund window/);
  const [early] = await p.process([ev('refund', 'm_late', 100, undefined, newTxId())]);
  assert.equal(early!.kind, 'retry');
});

test('a batch applies each event as if applied alone: the same outcomes, balances and low-balance alerts', async () => {
  const p = await ledgerProcessor.create(
    { low_balance: { default: 500 }, record_ttl_ms: 60_000, refund_window_ms: WINDOW, alerts_topic: 'alerts' },
    { stage: 'ledger', redis: inst.redis, keys: inst.keys, topics: ['alerts'], registry: createRegistry(), logger: createLogger('silent') },
  );
  // 1,000 → 300 (alert) → 200 → 800 (re-armed) → 300 (alert again) → payout refused → refund → 100
  const plan = (m: string): StreamEvent[] => {
    const payin = ev('payin', m, 1_000);
    return [payin, ev('payout', m, 700), ev('payout', m, 100), ev('payin', m, 600), ev('payout', m, 500), ev('payout', m, 5_000), ev('refund', m, 200, undefined, payin.txId)];
  };
  const summary = (outs: Awaited<ReturnType<typeof p.process>>) =>
    outs.map((o) => (o.kind === 'ok' ? [o.event.status, (o.emit ?? []).map((e) => [e.event.type, e.event.balance])] : [o.kind]));
  const alone = [];
  for (const e of plan('m_seq_alone')) alone.push(...(await p.process([e])));
  const batched = await p.process(plan('m_seq_batch'));
  assert.deepEqual(summary(batched), summary(alone));
  assert.deepEqual(summary(batched), [
    ['succeeded', []], ['succeeded', [['wallet_low', 300]]], ['succeeded', []], ['succeeded', []],
    ['succeeded', [['wallet_low', 300]]], ['failed', []], ['succeeded', []],
  ]);
  const wallet = (m: string) => inst.redis.hget(inst.keys.partitioned(partitionOf(m, 8), 'wallet', m), 'EUR');
  assert.equal(await wallet('m_seq_batch'), await wallet('m_seq_alone'));
});
