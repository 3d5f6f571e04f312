// The ledger against Postgres for payins past the hot window (real Redis and Postgres): a hot
// window of 1.5 s, the sink's BatchWriter writing the ledger's output as the sink would. A payin
// refunded inside the window, then past it once its bucket has left Redis: the cold refunds go
// through exactly once (a redelivery gets the same answer and moves nothing again), wait while the
// sink has not written the merchant's earlier refunds, fail refund_exceeds_payin across the tiers
// and payin_not_found for an unknown old payin; refunds inside the window make no query at all.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from '../../test/helpers/instance.ts';
import type { TestInstance } from '../../test/helpers/instance.ts';
import { waitFor } from '../../test/helpers/wait.ts';
import { createLogger } from '../../core/logger.ts';
import { createRegistry } from '../../core/metrics.ts';
import { partitionOf } from '../../core/partition.ts';
import type { TransactionEvent } from '../../core/event.ts';
import type { Outcome, Processor, ProcessorContext, StreamEvent } from '../../core/processor.ts';
import { newTxId } from '../../core/tx-id.ts';
import { payinBucket } from '../../core/payins.ts';
import { BatchWriter } from '../../sinks/postgres/batch-writer.ts';
import { ledgerProcessor, PENDING_RECORD_TTL_MS, REDELIVERY_MARGIN_MS } from './index.ts';

const HOT = 1_500;
const HORIZON = 10_000;
let inst: TestInstance;
let writer: BatchWriter;
const processors: Processor[] = [];
before(async () => {
  inst = await createInstance('coldpayins');
  writer = new BatchWriter(inst.env);
});
after(async () => {
  for (const p of processors) await p.close?.();
  await writer.close();
  await inst.cleanup();
});

async function processor(over: Partial<ProcessorContext> = {}): Promise<Processor> {
  const p = await ledgerProcessor.create(
    { low_balance: {} },
    {
      stage: 'ledger',
      redis: inst.redis,
      keys: inst.keys,
      topics: [],
      refunds: { window: 86_400_000, await_payin: 1_000, hot: HOT },
      postgres: inst.env,
      redeliveryHorizonMs: HORIZON,
      registry: createRegistry(),
      logger: createLogger('silent'),
      ...over,
    },
  );
  processors.push(p);
  return p;
}

function ev(type: TransactionEvent['type'], merchant: string, amount: number, reference?: string): StreamEvent {
  const id = newTxId();
  const event = { id, type, merchant_id: merchant, amount, currency: 'EUR', reference, ingested_at: Date.now(), status: 'accepted' } as TransactionEvent;
  return { entryId: '1-0', stream: `s:${merchant}`, partition: partitionOf(merchant, 8), lane: 'critical', txId: id, event, deliveries: 1 };
}

const verdict = (o: Outcome | undefined) =>
  o?.kind === 'ok'
    ? o.event.status === 'failed'
      ? `failed:${o.event.failure_code}`
      : o.event.status
    : o?.kind === 'retry'
      ? o.wait
        ? 'wait'
        : 'retry'
      : o?.kind;

/** The sink's write of these outcomes (the ledger's output events). */
async function sink(outcomes: Outcome[]): Promise<void> {
  await writer.write(
    outcomes.map((o, i) => (o.kind === 'ok' ? { event: o.event, streamId: `1-${i}`, attempts: 1 } : undefined)).filter((r) => r !== undefined),
  );
}

const one = async (sql: string, params: unknown[]) => (await inst.pool.query(sql, params)).rows[0] as Record<string, string> | undefined;

test('a payin past the hot window is refunded against Postgres: exactly once, waits for the sink, over-refund and unknown payins fail', async () => {
  const m = 'm_cold';
  const p = await processor();
  const payin = ev('payin', m, 1_000);
  const hot = ev('refund', m, 300, payin.txId);
  const inWindow = await p.process([payin, hot]);
  assert.deepEqual(inWindow.map(verdict), ['succeeded', 'succeeded']);
  await sink(inWindow);
  const bucket = inst.keys.payins(payin.partition, m, payinBucket(payin.txId, HOT).name);
  await waitFor('the payin to leave Redis', async () => (await inst.redis.exists(bucket)) === 0, 10_000, 50);

  // past the window: Postgres has the payin and the 300 refunded of it
  const r1 = ev('refund', m, 500, payin.txId);
  const [first] = await p.process([r1]);
  assert.equal(verdict(first), 'succeeded');
  const wallet = inst.keys.partitioned(payin.partition, 'wallet', m);
  assert.equal(await inst.redis.hget(wallet, 'EUR'), '200');
  // the worker died before settling: the redelivery gets the same answer and moves nothing again
  const [again] = await p.process([{ ...r1, deliveries: 2 }]);
  assert.deepEqual(again, first);
  assert.equal(await inst.redis.hget(wallet, 'EUR'), '200');
  assert.equal(await inst.redis.get(inst.keys.partitioned(payin.partition, 'refunds', m)), '2', 'two refunds counted, the redelivery not again');
  // the decision is kept while its input is pending (long: an outage of every worker must not lose
  // it); the settle that acknowledges the input shortens it to the redelivery horizon
  const record = inst.keys.partitioned(payin.partition, 'ledger', r1.txId);
  const pending = await inst.redis.pttl(record);
  assert.ok(pending > PENDING_RECORD_TTL_MS - 60_000, `decision kept while pending: ${pending} ms`);
  assert.ok(first?.kind === 'ok');
  assert.deepEqual(first.records, [{ key: record, ttlMs: first.records?.[0]?.ttlMs }]);
  const ttl = first.records?.[0]?.ttlMs ?? 0;
  assert.ok(ttl > HORIZON && ttl <= HORIZON + REDELIVERY_MARGIN_MS, `decision kept for the redelivery horizon once settled, not days: ${ttl} ms`);

  // r1 is not in Postgres yet: a later refund of the merchant waits for the sink (and blocks its merchant)
  const r2 = ev('refund', m, 300, payin.txId);
  const r3 = ev('refund', m, 200, payin.txId);
  const waiting = await p.process([r2, r3]);
  assert.deepEqual(waiting.map(verdict), ['wait', 'retry']);
  assert.deepEqual(waiting[0]!.kind === 'retry' && waiting[0]!.wait?.token, `refunds-written:${m}`);
  assert.equal(await inst.redis.hget(wallet, 'EUR'), '200', 'nothing applied while waiting');

  // once written: 300 more would pass the payin (300 + 500 + 300 > 1,000); 200 fits exactly; then nothing is left
  await sink([first!]);
  await sink([first!]); // a redelivered sink batch counts nothing twice
  const r4 = ev('chargeback', m, 1, payin.txId);
  // not in Postgres: it may still be on its way there, so it waits for it (await_payin), then fails
  const unknown = ev('refund', m, 50, newTxId(Date.now() - 60_000));
  const [fresh] = await (await processor()).process([{ ...unknown, stream: 'elsewhere' }]);
  assert.deepEqual(fresh!.kind === 'retry' && fresh!.wait, { token: `payin:${unknown.event.reference}`, until: unknown.event.ingested_at + 1_000 });
  unknown.event.ingested_at -= 1_000;
  const otherMerchant = ev('refund', 'm_cold_other', 10, payin.txId);
  otherMerchant.event.ingested_at -= 1_000;
  const settled = await p.process([r2, r3, r4, unknown, otherMerchant]);
  assert.deepEqual(settled.map(verdict), [
    'failed:refund_exceeds_payin',
    'succeeded',
    'failed:refund_exceeds_payin',
    'failed:payin_not_found',
    'failed:payin_not_found',
  ]);
  assert.equal(await inst.redis.hget(wallet, 'EUR'), '0');
  await sink(settled);

  const row = await one('SELECT refunded::text, merchant_id FROM payin_refunds WHERE payin_id = $1', [payin.txId]);
  assert.deepEqual(row, { refunded: '1000', merchant_id: m }, 'refunded sum exact');
  assert.deepEqual(await one('SELECT written::text FROM merchant_refunds WHERE merchant_id = $1', [m]), { written: '3' });
  assert.deepEqual(await one('SELECT balance::text FROM wallets WHERE merchant_id = $1', [m]), { balance: '0' });
  assert.deepEqual(await one("SELECT count(*)::text AS n FROM transactions WHERE merchant_id = $1 AND type = 'refund' AND status = 'succeeded'", [m]), {
    n: '3',
  });
});

test('refunds inside the hot window never query Postgres', async () => {
  // a Postgres nobody listens on: any query would fail the batch
  const p = await processor({ postgres: { databaseUrl: 'postgres://nobody@127.0.0.1:1/none', pgSchema: 'none' } });
  const m = 'm_hot_only';
  const payin = ev('payin', m, 1_000);
  const out = await p.process([payin, ev('refund', m, 400, payin.txId), ev('chargeback', m, 600, payin.txId), ev('refund', m, 1, payin.txId)]);
  assert.deepEqual(out.map(verdict), ['succeeded', 'succeeded', 'succeeded', 'failed:refund_exceeds_payin']);
});

test("a cold payin refunded in a batch stays its merchant's: another merchant of the partition naming it in the same call finds none", async () => {
  const p = await processor();
  const a = 'm_cold_owner';
  const b = Array.from({ length: 200 }, (_, i) => `m_cold_peer_${i}`).find((m) => partitionOf(m, 8) === partitionOf(a, 8))!;
  // a payin from a minute ago: past the hot window at once, settled into Postgres only
  const at = Date.now() - 60_000;
  const id = newTxId(at);
  const base = ev('payin', a, 1_000);
  const payin: StreamEvent = { ...base, txId: id, event: { ...base.event, id, ingested_at: at } };
  const settledPayin = await p.process([payin]);
  assert.deepEqual(settledPayin.map(verdict), ['succeeded']);
  await sink(settledPayin);
  const own = ev('refund', a, 100, id);
  const peer = ev('refund', b, 100, id);
  peer.event.ingested_at -= 1_000; // past await_payin: not found fails rather than waits
  const out = await p.process([own, peer]);
  assert.deepEqual(out.map(verdict), ['succeeded', 'failed:payin_not_found']);
  assert.equal(await inst.redis.hget(inst.keys.partitioned(peer.partition, 'wallet', b), 'EUR'), '0', 'no money moved for the other merchant');
});
