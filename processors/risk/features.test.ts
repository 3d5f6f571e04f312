// The risk script's streaming features: the arithmetic against a direct computation, the same
// state whether events come one by one or in batches, state that survives a worker restart (it is
// all in Redis), per-merchant isolation, and the decisions (block, review, anomalies, rules).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectRedis } from '../../core/redis.ts';
import type { RedisClient } from '../../core/redis.ts';
import { Keys } from '../../core/keys.ts';
import { createLogger } from '../../core/logger.ts';
import { createRegistry } from '../../core/metrics.ts';
import { partitionOf } from '../../core/partition.ts';
import type { TransactionEvent } from '../../core/event.ts';
import type { StreamEvent } from '../../core/processor.ts';
import { createInstance } from '../../test/helpers/instance.ts';
import type { TestInstance } from '../../test/helpers/instance.ts';
import { riskProcessor } from './index.ts';
import { RiskScorer } from './scorer.ts';
import type { ScoredInput, Verdict } from './scorer.ts';
import type { VersionedRules } from './rules.ts';
import { reviewKey } from '../../core/review-queue.ts';
import { readFeatures } from './features.ts';
import type { FeatureState } from './features.ts';

let inst: TestInstance;
before(async () => {
  inst = await createInstance('risk-features');
});
after(async () => {
  await inst.cleanup();
});

const LIMITS = { per_minute_count: 600, per_minute_amount: 100_000_000, per_hour_count: 10_000, per_hour_amount: 1_000_000_000 };
const ALLOW_ALL: VersionedRules = { version: 0, thresholds: { default: { review: 101, block: 101 } } };
const T0 = Date.UTC(2026, 0, 5, 12);
const P = 8;

let seq = 0;
function input(merchant: string, amount: number, t: number, type: TransactionEvent['type'] = 'payin', currency = 'EUR'): ScoredInput {
  return { partition: partitionOf(merchant, P), txId: `tx_f_${seq++}`, event: { merchant_id: merchant, type, amount, currency, ingested_at: t } };
}

/** A scorer under a prefix of its own (its own priors): runs that must match start equal. */
function scorer(sub: string, redis: RedisClient = inst.redis) {
  const keys = new Keys(`${inst.env.prefix}:${sub}`);
  return { keys, s: new RiskScorer(redis, keys, { limits: LIMITS, recordTtlMs: 60_000, features: true }) };
}

async function features(keys: Keys, merchant: string): Promise<FeatureState> {
  const f = await readFeatures(inst.redis, keys, partitionOf(merchant, P), merchant);
  assert.ok(f, `features of ${merchant}`);
  return f;
}

const AMOUNTS = [5000, 5500, 4500, 5000, 5500, 4500, 5200, 4800, 5000, 5100, 4900, 5000];
const GAP = 45_000;

test('features match a direct computation: mean and variance of ln(amount), decayed counts and sums', async () => {
  const { keys, s } = scorer('arith');
  const events = AMOUNTS.map((a, i) => input('m_arith', a, T0 + i * GAP));
  const verdicts: Verdict[] = [];
  for (const e of events) verdicts.push(...(await s.score([e], ALLOW_ALL, e.event.ingested_at)));
  assert.ok(
    verdicts.every((v) => v.decision === 'allow' && v.score < 20),
    `normal events learn: ${verdicts.map((v) => v.score)}`,
  );

  const f = await features(keys, 'm_arith');
  const x = AMOUNTS.map(Math.log);
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length; // alpha = 1/n: the population variance
  const [n, m, v] = f.amounts['payin:EUR']!;
  assert.equal(n, AMOUNTS.length);
  assert.ok(Math.abs(m! - mean) < 1e-8, `mean ${m} vs ${mean}`);
  assert.ok(Math.abs(v! - variance) < 1e-8, `variance ${v} vs ${variance}`);

  const last = events.at(-1)!.event.ingested_at;
  const decayed = (half: number, w: (i: number) => number) => events.reduce((acc, e, i) => acc + w(i) * 2 ** (-(last - e.event.ingested_at) / half), 0);
  const close = (field: keyof FeatureState['scalars'], want: number) =>
    assert.ok(Math.abs(f.scalars[field] - want) < 1e-6 * Math.max(1, want), `${field} ${f.scalars[field]} vs ${want}`);
  close(
    'r',
    decayed(60_000, () => 1),
  );
  close(
    'tc',
    decayed(1_800_000, () => 1),
  );
  close(
    'ps',
    decayed(21_600_000, (i) => AMOUNTS[i]!),
  );
  assert.equal(f.scalars.rc, 0);
  assert.equal(f.scalars.n, AMOUNTS.length);
  assert.equal(f.scalars.t, last);
  assert.deepEqual(f.currencies, ['EUR']);
  // bounded: 12 scalars, the currencies, one entry per (type, currency) seen
  assert.deepEqual(Object.keys(f.amounts), ['payin:EUR']);
  assert.equal(f.bytes, 'EUR|payin:EUR|'.length + 8 * (12 + 3));
});

test('the same state whether events come one by one or in one batch', async () => {
  const one = scorer('one');
  const batch = scorer('batch');
  const a = AMOUNTS.map((amt, i) => input('m_same', amt, T0 + i * GAP));
  const b = AMOUNTS.map((amt, i) => input('m_same', amt, T0 + i * GAP));
  const v1: Verdict[] = [];
  for (const e of a) v1.push(...(await one.s.score([e], ALLOW_ALL, e.event.ingested_at)));
  const v2 = await batch.s.score(b, ALLOW_ALL, b.at(-1)!.event.ingested_at);
  assert.deepEqual(
    v2.map((v) => v.score),
    v1.map((v) => v.score),
  );
  assert.deepEqual(await features(batch.keys, 'm_same'), await features(one.keys, 'm_same'));
});

test('state survives a worker restart: a new connection and processor go on where the old one stopped', async () => {
  const ev = (merchant: string, i: number): StreamEvent => {
    const id = `tx_restart_${merchant}_${i}`;
    const amount = i === 14 ? 500_000 : AMOUNTS[i % AMOUNTS.length]!; // one spike near the end
    const event = { id, type: 'payin', merchant_id: merchant, amount, currency: 'EUR', ingested_at: T0 + i * GAP, status: 'accepted' } as TransactionEvent;
    return { entryId: `${i}-0`, stream: 's', partition: partitionOf(merchant, P), lane: 'normal', txId: id, event, deliveries: 1 };
  };
  const config = riskProcessor.configSchema.parse({ features: true, thresholds: { default: { review: 50, block: 101 } } });
  const make = async (sub: string, redis: RedisClient = inst.redis) =>
    riskProcessor.create(config, {
      stage: 'risk',
      redis,
      keys: new Keys(`${inst.env.prefix}:${sub}`),
      topics: [],
      registry: createRegistry(),
      logger: createLogger('silent'),
    });
  const all = Array.from({ length: 16 }, (_, i) => ev('m_restart', i));

  const steady = await make('steady');
  const uninterrupted = await steady.process(all);

  const firstConn = connectRedis(inst.env);
  const before = await make('restart', firstConn);
  const head = await before.process(all.slice(0, 8));
  firstConn.disconnect(); // the worker dies; its state is in Redis
  const secondConn = connectRedis(inst.env);
  const afterRestart = await make('restart', secondConn);
  const tail = await afterRestart.process(all.slice(8));
  secondConn.disconnect();

  const scores = (o: typeof uninterrupted) => o.map((x) => (x.kind === 'ok' ? [x.event.risk_score, x.event.status] : x.kind));
  assert.deepEqual(scores([...head, ...tail]), scores(uninterrupted));
  assert.equal(scores(uninterrupted)[14]![1], 'in_review', 'the spike after the restart is still recognised');
});

test("per-merchant isolation: another merchant's burst in the same partition leaves this one's state alone", async () => {
  const candidates = Array.from({ length: 100 }, (_, i) => `m_iso_${i}`);
  const [y, x] = [candidates[0]!, candidates.find((m, i) => i > 0 && partitionOf(m, P) === partitionOf(candidates[0]!, P))!];
  const calm = scorer('calm');
  const noisy = scorer('noisy');
  const yEvents = () => AMOUNTS.map((a, i) => input(y, a, T0 + i * GAP));
  const alone = await calm.s.score(yEvents(), ALLOW_ALL, T0 + AMOUNTS.length * GAP);

  // x: a normal history, then card testing (tiny payins seconds apart) and a spike, interleaved with y
  const xs = [
    ...AMOUNTS.map((a, i) => input(x, a * 3, T0 - 3_600_000 + i * GAP)),
    ...Array.from({ length: 20 }, (_, i) => input(x, 90, T0 + i * 5_000)),
    input(x, 9_000_000, T0 + 200_000),
  ];
  const mixed = [...yEvents(), ...xs].sort((a, b) => a.event.ingested_at - b.event.ingested_at);
  const verdicts = await noisy.s.score(mixed, ALLOW_ALL, T0 + AMOUNTS.length * GAP);
  const yVerdicts = verdicts.filter((_, i) => mixed[i]!.event.merchant_id === y);
  const xFlagged = verdicts.filter((v, i) => mixed[i]!.event.merchant_id === x && v.score >= 50).length;
  assert.ok(xFlagged >= 15, `x's burst is scored high (${xFlagged})`);
  assert.ok(
    yVerdicts.every((v) => v.score < 20) && alone.every((v) => v.score < 20),
    `y stays normal: ${yVerdicts.map((v) => v.reasons)} / ${alone.map((v) => v.reasons)}`,
  );
  assert.deepEqual(await features(noisy.keys, y), await features(calm.keys, y));
});

test('decisions: block fails with risk_blocked, review holds in_review and announces the anomaly, rules version recorded', async () => {
  const keys = new Keys(`${inst.env.prefix}:decide`);
  const make = (thresholds: Record<string, { review: number; block: number }>) =>
    riskProcessor.create(riskProcessor.configSchema.parse({ features: true, thresholds, anomalies_topic: 'anomalies' }), {
      stage: 'risk',
      redis: inst.redis,
      keys,
      topics: ['anomalies'],
      registry: createRegistry(),
      logger: createLogger('silent'),
    });
  const ev = (id: string): StreamEvent => {
    const event = {
      id,
      type: 'payout',
      merchant_id: 'm_decide',
      amount: 1234,
      currency: 'EUR',
      ingested_at: Date.now(),
      status: 'accepted',
    } as TransactionEvent;
    return { entryId: '1-0', stream: 's', partition: partitionOf('m_decide', P), lane: 'high', txId: id, event, deliveries: 1 };
  };
  const [blocked] = await (await make({ default: { review: 0, block: 0 } })).process([ev('tx_block')]);
  assert.ok(blocked?.kind === 'ok');
  assert.equal(blocked.event.status, 'failed');
  assert.equal(blocked.event.failure_code, 'risk_blocked');
  assert.match(blocked.event.failure_reason ?? '', /^risk: score \d+ at or above the block threshold/);
  assert.equal(blocked.emit?.[0]?.topic, 'anomalies');
  assert.equal(blocked.emit?.[0]?.event.decision, 'block');

  const [held] = await (await make({ default: { review: 101, block: 101 }, payout: { review: 0, block: 101 } })).process([ev('tx_review')]);
  assert.ok(held?.kind === 'ok');
  assert.equal(held.event.status, 'in_review');
  assert.equal(held.event.risk_rules_version, 0);
  assert.deepEqual(held.emit?.[0]?.event.risk_reasons, held.event.risk_reasons);
  const stored = JSON.parse((await inst.redis.hget(reviewKey(keys, partitionOf('m_decide', P)), 'tx_review'))!) as TransactionEvent;
  assert.equal(stored.status, 'in_review');

  const [allowed] = await (await make({ default: { review: 101, block: 101 } })).process([ev('tx_allow')]);
  assert.ok(allowed?.kind === 'ok');
  assert.equal(allowed.event.status, 'accepted');
  assert.equal(allowed.emit, undefined);
});
