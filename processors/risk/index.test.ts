// The risk stage's velocity score: per merchant, counts and amounts over the sliding minute and
// hour. A batch is scored in one script call that reads each merchant's window once: every event
// must still see the ones before it, exactly as if each had been scored alone; a redelivered event
// gets its first score and counts once (its decision record lives for the stage's redelivery
// horizon); a rejected one does not count.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from '../../test/helpers/instance.ts';
import type { TestInstance } from '../../test/helpers/instance.ts';
import { createLogger } from '../../core/logger.ts';
import { createRegistry } from '../../core/metrics.ts';
import { partitionOf } from '../../core/partition.ts';
import type { TransactionEvent } from '../../core/event.ts';
import type { Outcome, StreamEvent } from '../../core/processor.ts';
import { riskProcessor } from './index.ts';
import type { RiskConfig } from './index.ts';
import { redeliveryHorizon } from '../../core/retention/horizon.ts';
import { StageSchema } from '../../core/topology/schema.ts';

let inst: TestInstance;
before(async () => {
  inst = await createInstance('risk');
});
after(async () => {
  await inst.cleanup();
});

// the velocity rules alone (features: false): the stage as it was before the streaming features
const LIMITS: RiskConfig = riskProcessor.configSchema.parse({
  per_minute_count: 4,
  per_minute_amount: 1_000,
  per_hour_count: 100,
  per_hour_amount: 1_000_000,
  threshold: 75,
  record_ttl_ms: 60_000,
  features: false,
});

function processor() {
  return riskProcessor.create(LIMITS, {
    stage: 'risk',
    redis: inst.redis,
    keys: inst.keys,
    topics: [],
    registry: createRegistry(),
    logger: createLogger('silent'),
  });
}

let seq = 0;
function ev(merchant: string, amount: number): StreamEvent {
  const id = `tx_risk_${merchant}_${seq++}`;
  const event = { id, type: 'payin', merchant_id: merchant, amount, currency: 'EUR', ingested_at: Date.now(), status: 'accepted' } as TransactionEvent;
  return { entryId: `${seq}-0`, stream: 's', partition: partitionOf(merchant, 8), lane: 'normal', txId: id, event, deliveries: 1 };
}

const scoreOf = (o: Outcome): number | undefined => (o.kind === 'ok' ? (o.event as TransactionEvent & { risk_score?: number }).risk_score : undefined);
const failed = (o: Outcome) => o.kind === 'ok' && o.event.status === 'failed';

test('a batch scores each event as if it were scored alone: the same scores, the same rejections', async () => {
  const p = await processor();
  // count limit 4 a minute: 1..6 events score 13, 25, 38, 50, 63, 75; the 7th (88) is rejected and
  // not counted, so the 8th scores 88 again; amounts stay under their limit
  const alone: Outcome[] = [];
  for (let i = 0; i < 8; i++) alone.push(...(await p.process([ev('m_alone', 10)])));
  const batched = await p.process(Array.from({ length: 8 }, () => ev('m_batch', 10)));
  assert.deepEqual(alone.map(scoreOf), batched.map(scoreOf));
  assert.deepEqual(alone.map(failed), batched.map(failed));
  assert.deepEqual(batched.map(scoreOf), [13, 25, 38, 50, 63, 75, 88, 88]);
  assert.deepEqual(batched.map(failed), [false, false, false, false, false, false, true, true]);
});

test('merchants interleaved in one batch keep separate windows; amounts count too', async () => {
  const p = await processor();
  const batch = [ev('m_x', 400), ev('m_y', 10), ev('m_x', 400), ev('m_y', 10), ev('m_x', 400), ev('m_x', 10)];
  const out = await p.process(batch);
  // m_x: 400 → 20, 800 → 40, 1,200 → 60 (amount limit 1,000), then the 4th event at the count limit
  // with 1,210 → 61; m_y: counts 1, 2 → 13, 25
  assert.deepEqual(out.map(scoreOf), [20, 13, 40, 25, 60, 61]);
  assert.deepEqual(out.map(failed), [false, false, false, false, false, false]);
  const again = await p.process([ev('m_y', 10)]);
  assert.equal(scoreOf(again[0]!), 38);
});

test('a redelivered batch gets its first scores and counts once', async () => {
  const p = await processor();
  const batch = [ev('m_re', 10), ev('m_re', 10), ev('m_re', 10)];
  const first = await p.process(batch);
  const second = await p.process(batch.map((e) => ({ ...e, deliveries: 2 })));
  assert.deepEqual(second.map(scoreOf), first.map(scoreOf));
  // had the redelivery counted, the 4th event would be the 7th (rejected); it is the 4th: at the limit
  const next = await p.process([ev('m_re', 10), ev('m_re', 10), ev('m_re', 10)]);
  assert.deepEqual(next.map(failed), [false, false, false]);
  const last = await p.process([ev('m_re', 10)]);
  assert.equal(failed(last[0]!), true, 'the 7th in the minute is over the threshold');
});

test('decision records live for the stage redelivery horizon: a redelivery inside it gets the same answer', async () => {
  // a stage of 3 attempts, 2 s visibility, 1 s lease, retries up to 500 ms apart: 3 × 3.5 s + 2 s
  const stage = StageSchema.parse({
    input: 'validated',
    processor: 'risk',
    output: 'scored',
    retry: { attempts: 3, max: '500ms' },
    visibility_timeout: '2s',
    lease_ttl: '1s',
    dead_letter: {},
  });
  const horizon = redeliveryHorizon(stage);
  assert.equal(horizon, 12_500);
  const { record_ttl_ms: _unset, ...limits } = LIMITS;
  const p = await riskProcessor.create(riskProcessor.configSchema.parse(limits), {
    stage: 'risk',
    redis: inst.redis,
    keys: inst.keys,
    topics: [],
    registry: createRegistry(),
    logger: createLogger('silent'),
    redeliveryHorizonMs: horizon,
  });
  const batch = [ev('m_hz', 10), ev('m_hz', 10), ev('m_hz', 10), ev('m_hz', 10), ev('m_hz', 10)];
  const first = await p.process(batch);
  assert.deepEqual(first.map(failed), [false, false, false, false, false]);
  for (const e of batch) {
    const ttl = await inst.redis.pttl(inst.keys.partitioned(e.partition, 'risk', e.txId));
    assert.ok(ttl > horizon - 5_000 && ttl <= horizon, `risk:${e.txId} expires in ${ttl} ms, within the horizon ${horizon}`);
  }
  // redelivered (a reclaim after a crash, inside the horizon): the same events, the same answers,
  // the counts untouched; the whole batch again and one event alone
  const again = await p.process(batch.map((e) => ({ ...e, deliveries: 2 })));
  assert.deepEqual(again, first);
  const alone = await p.process([{ ...batch[4]!, deliveries: 3 }]);
  assert.deepEqual(alone, [first[4]]);
  // counted once: the 6th of the minute scores 75, under the threshold (had the redeliveries counted, 6 more would be over it)
  const next = await p.process([ev('m_hz', 10)]);
  assert.deepEqual([scoreOf(next[0]!), failed(next[0]!)], [75, false]);
});

test('without a horizon from the host, records live for that of a stage with the default times; record_ttl_ms overrides', async () => {
  const defaults = redeliveryHorizon(StageSchema.parse({ input: 'a', processor: 'risk', output: 'b', dead_letter: {} }));
  assert.equal(defaults, 5 * (30_000 + 5_000 + 30_000) + 30_000);
  const { record_ttl_ms: _unset, ...limits } = LIMITS;
  const ctx = { stage: 'risk', redis: inst.redis, keys: inst.keys, topics: [], registry: createRegistry(), logger: createLogger('silent') };
  for (const [config, expected] of [
    [riskProcessor.configSchema.parse(limits), defaults],
    [LIMITS, 60_000],
  ] as const) {
    const p = await riskProcessor.create(config, ctx);
    const e = ev('m_ttl', 10);
    await p.process([e]);
    const ttl = await inst.redis.pttl(inst.keys.partitioned(e.partition, 'risk', e.txId));
    assert.ok(ttl > expected - 5_000 && ttl <= expected, `${ttl} ms, expected about ${expected}`);
  }
});
