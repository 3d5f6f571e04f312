// `rill review` and `rill risk rules`: list, approve and decline held transactions; store and show
// versioned rules; bad input is one line and exit 1.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { SHIPPED_TOPOLOGY } from './helpers/topology-file.ts';
import { reviewCommand, riskCommand } from '../cli/commands/review.ts';
import { runCaptured } from './helpers/cli.ts';
import { partitionOf } from '../core/partition.ts';
import { loadTopology } from '../core/topology/load.ts';
import type { TransactionEvent } from '../core/event.ts';
import { holdForReview } from '../core/review-queue.ts';
import { readRules } from '../processors/risk/rules.ts';

let inst: TestInstance;
before(async () => {
  inst = await createInstance('risk-review-cli');
});
after(async () => {
  await inst.cleanup();
});

async function run(cmd: typeof reviewCommand, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await runCaptured(cmd, argv, { env: { ...process.env, ...inst.vars, RILL_TOPOLOGY: SHIPPED_TOPOLOGY, USER: 'ops-alice' } });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

const held = (id: string, merchant: string): TransactionEvent => ({
  id,
  merchant_id: merchant,
  type: 'payin',
  amount: 900_000,
  currency: 'EUR',
  ingested_at: Date.now(),
  status: 'in_review',
  risk_score: 71,
  risk_reasons: ["amount_high: amount 6.1 standard deviations above this merchant's usual for the type and currency"],
});

test('list, approve (on toward the ledger) and decline (failed, risk_declined) from the CLI', async () => {
  const partitions = loadTopology(SHIPPED_TOPOLOGY).topics.validated!.partitions;
  await holdForReview(inst.redis, inst.keys, [
    { partition: partitionOf('m_cli_a', partitions), event: held('tx_cli_1', 'm_cli_a') },
    { partition: partitionOf('m_cli_b', partitions), event: held('tx_cli_2', 'm_cli_b') },
  ]);
  const list = await run(reviewCommand, ['list']);
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, /^tx_cli_1 {2}m_cli_a {2}payin 900000 EUR {2}score 71 {2}amount_high: /m);
  assert.match(list.out, /^tx_cli_2 /m);
  assert.equal((await run(reviewCommand, ['list', '--merchant', 'm_cli_b'])).out.split('\n').filter(Boolean).length, 1);

  const approve = await run(reviewCommand, ['approve', 'tx_cli_1', '--note', 'called the customer']);
  assert.deepEqual([approve.code, approve.out], [0, 'tx_cli_1 approved by ops-alice\n']);
  const p = partitionOf('m_cli_a', partitions);
  const [[, fields]] = (await inst.redis.xrange(inst.keys.lane('scored', p, 'normal'), '-', '+')) as [[string, string[]]];
  const ev = JSON.parse(fields[fields.indexOf('ev') + 1]!) as TransactionEvent;
  assert.equal(ev.status, 'accepted');
  assert.deepEqual({ ...ev.review, at: undefined }, { decision: 'approved', by: 'ops-alice', note: 'called the customer', at: undefined });

  const decline = await run(reviewCommand, ['decline', 'tx_cli_2']);
  assert.equal(decline.code, 0, decline.err);
  const again = await run(reviewCommand, ['approve', 'tx_cli_2']);
  assert.deepEqual([again.code, again.err], [1, 'rill review: tx_cli_2 is not held for review (unknown, or already decided)\n']);
  assert.equal((await run(reviewCommand, ['list'])).out, 'nothing held for review\n');
});

test('rules set stores the next version; show prints it; bad rules are one line and exit 1', async () => {
  const set = await run(riskCommand, ['rules', 'set', '{"thresholds":{"default":{"review":40,"block":80}}}']);
  assert.deepEqual([set.code, set.out], [0, 'risk rules version 1 stored\n']);
  const set2 = await run(riskCommand, ['rules', 'set', '{"thresholds":{"default":{"review":45,"block":85},"refund":{"review":20,"block":85}}}']);
  assert.equal(set2.out, 'risk rules version 2 stored\n');
  assert.deepEqual(await readRules(inst.redis, inst.keys), {
    version: 2,
    thresholds: { default: { review: 45, block: 85 }, refund: { review: 20, block: 85 } },
  });
  assert.match((await run(riskCommand, ['rules', 'show'])).out, /"version": 2/);

  for (const [argv, message] of [
    [['rules', 'set', '{"thresholds":{"default":{"review":90,"block":80}}}'], 'rill risk: rules: thresholds.default: review must not be above block\n'],
    [['rules', 'set', '{"thresholds":{}}'], 'rill risk: rules: thresholds: thresholds need a default\n'],
    [['rules', 'set', '{nope'], /^rill risk: rules are not JSON: .*\n$/],
    [['rules', 'get'], 'rill risk: expected "rules set <file|json>" or "rules show" (see rill risk --help)\n'],
  ] as const) {
    const r = await run(riskCommand, [...argv]);
    assert.equal(r.code, 1);
    if (typeof message === 'string') assert.equal(r.err, message);
    else assert.match(r.err, message);
  }
  assert.equal((await readRules(inst.redis, inst.keys))?.version, 2, 'nothing stored by the bad ones');
  const bad = await run(reviewCommand, ['approve']);
  assert.deepEqual([bad.code, bad.err], [1, 'rill review: approve takes one transaction id\n']);
});
