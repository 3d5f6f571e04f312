// The shedding decision as a state machine, and the shedder around it (fake measurements): start
// past a max, stop only under both resume levels, keep the last decision when a sample fails.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import { createRegistry } from '../../core/metrics.ts';
import { BackpressureSchema } from '../../core/topology/schema.ts';
import { ACCEPTING, nextLoadState } from './hysteresis.ts';
import type { LoadSample, LoadState, Thresholds } from './hysteresis.ts';
import { LoadShedder } from './shedder.ts';
import { waitFor } from '../../core/wait.ts';

const T: Thresholds = { max_lag: 1000, resume_lag: 500, max_memory: 0.8, resume_memory: 0.7 };
const s = (waiting: number, memoryShare?: number): LoadSample => ({ waiting, memoryShare });
const SHEDDING: LoadState = { shedding: true, reasons: ['x'] };

/** Feed samples through the machine from accepting; the decision after each. */
function run(samples: LoadSample[]): boolean[] {
  let st = ACCEPTING;
  return samples.map((x) => (st = nextLoadState(st, x, T)).shedding);
}

describe('nextLoadState', () => {
  test('lag: starts strictly over max_lag, stops strictly under resume_lag', () => {
    assert.deepEqual(run([s(0), s(1000), s(1001), s(999), s(500), s(600), s(499), s(999), s(1000), s(1001)]), [
      false,
      false,
      true,
      true,
      true,
      true,
      false,
      false,
      false,
      true,
    ]);
  });

  test('memory: the same hysteresis on the share of the budget', () => {
    assert.deepEqual(run([s(0, 0.5), s(0, 0.8), s(0, 0.81), s(0, 0.75), s(0, 0.7), s(0, 0.69), s(0, 0.79)]), [false, false, true, true, true, false, false]);
  });

  test('either signal starts shedding; only both under their resume level stop it', () => {
    // lag starts it, lag recovers, memory (never over its max) still holds it between the levels
    assert.deepEqual(run([s(2000, 0.75), s(0, 0.75), s(0, 0.65)]), [true, true, false]);
    // memory starts it, memory recovers, lag between the levels still holds it
    assert.deepEqual(run([s(700, 0.9), s(700, 0.1), s(400, 0.1)]), [true, true, false]);
  });

  test('an unknown memory share neither starts nor holds shedding', () => {
    assert.deepEqual(run([s(10), s(10, undefined), s(1001), s(499, undefined)]), [false, false, true, false]);
  });

  test('reasons say which limit and the measured value', () => {
    const st = nextLoadState(ACCEPTING, s(1234, 0.91), T);
    assert.equal(st.shedding, true);
    assert.equal(st.reasons.length, 2);
    assert.match(st.reasons[0]!, /1234 entries .* max_lag 1000/);
    assert.match(st.reasons[1]!, /91\.0%.*max_memory 80\.0%/);
    const holding = nextLoadState(st, s(800, 0.5), T);
    assert.deepEqual(holding.shedding, true);
    assert.deepEqual(holding.reasons.length, 1);
    assert.match(holding.reasons[0]!, /800 entries .* resume_lag 500/);
    assert.deepEqual(nextLoadState(SHEDDING, s(0, 0), T), ACCEPTING);
  });
});

describe('LoadShedder', () => {
  const config = BackpressureSchema.parse({ max_lag: 1000, resume_lag: 500, check_interval: 10, retry_after: 1500 });
  const make = (measure: () => Promise<LoadSample>, timeoutMs = 1000) => {
    const registry = createRegistry({ defaults: false });
    const shedder = new LoadShedder({ measure, config, registry, logger: pino({ level: 'silent' }), timeoutMs });
    const metric = async (name: string) => (await registry.getSingleMetric(name)!.get()).values[0]?.value;
    return { shedder, metric };
  };

  test('follows the samples; a failed sample keeps the last decision, shedding or not', async () => {
    const script: (LoadSample | Error)[] = [s(10), new Error('down'), s(5000), new Error('down'), s(600), s(100)];
    const { shedder, metric } = make(async () => {
      const next = script.shift()!;
      if (next instanceof Error) throw next;
      return next;
    });
    const seen: boolean[] = [];
    for (let i = 0; i < 6; i++) {
      await shedder.sample();
      seen.push(shedder.state.shedding);
    }
    assert.deepEqual(seen, [false, false, true, true, true, false]);
    assert.equal(await metric('rill_ingest_load_sample_failures_total'), 2);
    assert.equal(await metric('rill_ingest_shedding'), 0);
    assert.equal(await metric('rill_pipeline_waiting_entries'), 100);
    assert.equal(shedder.retryAfterSeconds, 2, 'retry_after 1500 ms → 2 s');
  });

  test('a hung measurement times out, and no second one piles up behind it', async () => {
    let calls = 0;
    const { shedder, metric } = make(() => {
      calls++;
      return new Promise<LoadSample>(() => undefined);
    }, 20);
    await shedder.sample();
    await shedder.sample();
    assert.equal(calls, 1);
    assert.equal(await metric('rill_ingest_load_sample_failures_total'), 1);
    assert.equal(shedder.state.shedding, false);
  });

  test('samples on its timer until stop(); none after', async () => {
    let calls = 0;
    const { shedder, metric } = make(async () => {
      calls++;
      return s(calls > 3 ? 5000 : 0);
    });
    shedder.start();
    // on its timer alone: no sample() call here (a condition, not a sleep: a busy box is slow)
    await waitFor('five samples on the timer', () => calls >= 5, 10_000, 5);
    await shedder.stop();
    const atStop = calls;
    assert.ok(atStop >= 5, `sampled on the timer (${atStop} samples)`);
    assert.equal(shedder.state.shedding, true);
    assert.equal(await metric('rill_ingest_shedding'), 1);
    await delay(50);
    assert.equal(calls, atStop, 'no sample after stop()');
  });
});
