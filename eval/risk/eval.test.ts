// The small risk evaluation that CI runs (npm test): 150 merchants over a day, seed 2 (the report
// seed; thresholds were tuned on seed 1). Prints the table; asserts determinism for the seed and
// quality floors this fixed seed clears with room (no timing assertions: cost is printed only).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Keys } from '../../core/keys.ts';
import { loadTopology } from '../../core/topology/load.ts';
import { SHIPPED_TOPOLOGY } from '../../test/helpers/topology-file.ts';
import { createInstance } from '../../test/helpers/instance.ts';
import type { TestInstance } from '../../test/helpers/instance.ts';
import type { RiskConfig } from '../../processors/risk/index.ts';
import { generate } from './generator.ts';
import { runDetector } from './evaluate.ts';
import { report } from './metrics.ts';
import { table } from './table.ts';

let inst: TestInstance;
before(async () => {
  inst = await createInstance('eval-risk');
});
after(async () => {
  await inst.cleanup();
});

const OPTS = { seed: 2, merchants: 150, hours: 24 };
const config = (loadTopology(SHIPPED_TOPOLOGY).stages.risk?.config ?? {}) as Partial<RiskConfig>;
const digest = (x: unknown) => createHash('sha256').update(JSON.stringify(x)).digest('hex');

test('the generator is deterministic for a seed, and differs across seeds', () => {
  const a = generate(OPTS);
  assert.equal(digest(a.events), digest(generate(OPTS).events));
  assert.notEqual(digest(a.events), digest(generate({ ...OPTS, seed: 3 }).events));
  const fraud = a.events.filter((e) => e.label).length / a.events.length;
  assert.ok(fraud >= 0.005 && fraud <= 0.02, `fraud share ${fraud}`);
  assert.deepEqual(new Set(a.events.filter((e) => e.label).map((e) => e.label)).size, 5);
});

test('small eval: the combined score against the velocity rules, the same verdicts on a second run', async () => {
  const stream = generate(OPTS);
  const velocity = await runDetector(inst.redis, new Keys(`${inst.env.prefix}:v`), stream, { config: { ...config, features: false } });
  const score = await runDetector(inst.redis, new Keys(`${inst.env.prefix}:s1`), stream, { config: { ...config, features: true } });
  const again = await runDetector(inst.redis, new Keys(`${inst.env.prefix}:s2`), stream, { config: { ...config, features: true } });
  assert.deepEqual(again.scores, score.scores, 'the same scores for the same seed');

  const rv = report(stream, velocity.flagged);
  const rs = report(stream, score.flagged);
  console.log(
    `\nrisk eval (seed ${OPTS.seed}, ${OPTS.merchants} merchants, ${OPTS.hours} h, ${rs.events} events, ${rs.fraud} fraud)\n${table(rv, rs, { velocity: velocity.usPerEvent, score: score.usPerEvent })}\n`,
  );

  assert.ok(rs.overall.recall >= 0.85, `recall ${rs.overall.recall}`);
  assert.ok(rs.overall.precision >= 0.8, `precision ${rs.overall.precision}`);
  assert.ok(rs.cleanFpRate <= 0.005, `false positives on clean merchants ${rs.cleanFpRate}`);
  assert.ok(rv.overall.recall < rs.overall.recall);
});
