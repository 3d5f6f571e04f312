// `npm run eval:risk [-- --seed N --merchants N --hours N --timing-reps N --json]`: generates the labelled stream,
// runs it through the risk stage's scoring with the velocity rules alone and with the combined
// score (real Redis, a key prefix of its own, removed at the end) and prints the table.
// Tuned on seed 1; the reported numbers are seed 2 (the default).
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { readEnv } from '../../core/config.ts';
import { Keys } from '../../core/keys.ts';
import { connectRedis } from '../../core/redis.ts';
import { deleteByPattern } from '../../core/slot-pipeline.ts';
import { loadTopology } from '../../core/topology/load.ts';
import type { RiskConfig } from '../../processors/risk/index.ts';
import { generate } from './generator.ts';
import { runDetector } from './evaluate.ts';
import { report } from './metrics.ts';
import { table } from './table.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '2' },
    merchants: { type: 'string', default: '1000' },
    hours: { type: 'string', default: '48' },
    json: { type: 'boolean', default: false },
    'timing-reps': { type: 'string', default: '3' },
  },
});
const num = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < (name === 'timing-reps' ? 0 : 1)) {
    console.error(`eval:risk: --${name} must be a whole number (at least 1; timing-reps at least 0), got "${v}"`);
    process.exit(1);
  }
  return n;
};
const seed = num('seed', values.seed);
const merchants = num('merchants', values.merchants);
const hours = num('hours', values.hours);
const reps = num('timing-reps', values['timing-reps']);
/** Events per timing run: the cost is the fastest of `reps` alternating runs (a shared machine is noisy). */
const TIMING_EVENTS = 50_000;

const env = readEnv({ ...process.env, RILL_PREFIX: `rilleval:${randomBytes(4).toString('hex')}` });
const topology = loadTopology(env.topologyPath);
const stageConfig = (topology.stages.risk?.config ?? {}) as Partial<RiskConfig>;
const redis = connectRedis(env);
const keys = new Keys(env.prefix);
try {
  const stream = generate({ seed, merchants, hours });
  process.stderr.write(`eval:risk: seed ${seed}, ${merchants} merchants, ${hours} h: ${stream.events.length} events\n`);
  const velocity = await runDetector(redis, keys, stream, { config: { ...stageConfig, features: false } });
  await deleteByPattern(redis, `${env.prefix}:*`);
  const score = await runDetector(redis, keys, stream, { config: { ...stageConfig, features: true } });
  const rv = report(stream, velocity.flagged);
  const rs = report(stream, score.flagged);
  const sample = { ...stream, events: stream.events.slice(0, TIMING_EVENTS) };
  const cost = { velocity: velocity.usPerEvent, score: score.usPerEvent };
  for (let r = 0; r < reps; r++) {
    for (const features of [false, true]) {
      await deleteByPattern(redis, `${env.prefix}:*`);
      const us = (await runDetector(redis, keys, sample, { config: { ...stageConfig, features } })).usPerEvent;
      if (features) cost.score = Math.min(cost.score, us);
      else cost.velocity = Math.min(cost.velocity, us);
    }
  }
  if (values.json)
    console.log(JSON.stringify({ seed, merchants, hours, velocity: { ...rv, usPerEvent: cost.velocity }, score: { ...rs, usPerEvent: cost.score } }, null, 2));
  else {
    console.log(`seed ${seed}: ${rs.events} events, ${merchants} merchants, ${rs.fraud} fraud (${((rs.fraud / rs.events) * 100).toFixed(2)} %)\n`);
    console.log(table(rv, rs, cost));
    console.log(
      `\nscoring cost: fastest of ${reps + 1} runs each (the first over all events, then ${Math.min(TIMING_EVENTS, stream.events.length)}), batches of 500 as the stage reads them`,
    );
  }
} finally {
  await deleteByPattern(redis, `${env.prefix}:*`);
  redis.disconnect();
}
