// 1% poison events in a stream of good ones, on the engine topology with one plugin stage added
// (validate → crashy → sink):
//   - entries whose `ev` is not JSON, appended straight to the ingest topic: validate cannot decode
//     them and dead-letters them at once;
//   - events that make the plugin processor call process.exit: they keep crashing whichever worker
//     gets them. The test restarts the worker after each crash (consumer ids a, b, a, …: its own
//     pending entries read again, or another's reclaimed by XAUTOCLAIM), and Redis's delivery count
//     must stop the loop: past the stage's attempts the poison-pill guard dead-letters the event.
// Each poison event is dead-lettered exactly once; every good event reaches Postgres exactly once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { writeTopology } from '../helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from '../helpers/transactions.ts';
import { EventAppender } from '../../ingest/append/index.ts';
import { partitionOf } from '../../core/partition.ts';
import { entryArgs } from '../../core/entry.ts';
import { drainAndJudge, formatVerdict, waiting } from './support/consistency.ts';
import type { Accepted } from './support/consistency.ts';
import { cleanupInstance, exitWithin, Fleet } from './support/processes.ts';

const CRASH_ON_MARKED = new URL('./support/processors/crash-on-marked.ts', import.meta.url).pathname;
const TOTAL = 2_000;
const NOT_JSON = 10; // 0.5%
const CRASHERS = 10; // 0.5%
const ATTEMPTS = 2;
const MAX_RESTARTS = 60;

let inst: TestInstance;
let fleet: Fleet;

before(async () => {
  inst = await createInstance('f-poison');
});
after(async () => {
  await fleet?.killAll();
  await cleanupInstance(inst);
});

test('1% poison events: each dead-lettered exactly once, the rest flow', async (t) => {
  const started = performance.now();
  const { path, topology } = writeTopology({
    'ingest.rate_limit': { per_second: 1_000_000, burst: 1_000_000 },
    'topics.checked': { partitions: 8 },
    'stages.validate.visibility_timeout': '1s',
    'stages.crashy': {
      input: 'validated',
      processor: CRASH_ON_MARKED,
      output: 'checked',
      ordering: 'none',
      batch: 50,
      retry: { attempts: ATTEMPTS, base: '20ms', factor: 2, max: '200ms', jitter: 'full' },
      visibility_timeout: '1s',
      dead_letter: {},
    },
    'sinks.postgres.input': 'checked',
    'sinks.postgres.visibility_timeout': '1s',
  });
  const ctx = { ...inst, topology };
  fleet = new Fleet({ ...inst.vars, RILL_TOPOLOGY: path });
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(20);
  // the refunds and chargebacks of the mix name payins ingest must know (the engine topology has no ledger)
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    topology,
    Array.from({ length: TOTAL }, (_, i) => sampleBody(i, merchants)),
  );

  // the good events with the poison spread evenly among them
  const accepted: Accepted[] = [];
  const every = Math.floor(TOTAL / (NOT_JSON + CRASHERS));
  let notJson = 0;
  let crashers = 0;
  for (let i = 0; i < TOTAL; i++) {
    const body = sampleBody(i, merchants);
    if (i % every === every - 1 && (notJson + crashers) % 2 === 0 && notJson < NOT_JSON) {
      const tx = `tx_poison_notjson_${notJson++}`;
      await inst.redis.xadd(
        inst.keys.lane('transactions', partitionOf(body.merchant_id, 8), 'normal'),
        '*',
        ...entryArgs({ txId: tx, event: `{"id":"${tx}", not json` }),
      );
      accepted.push({ id: tx, amount: 0, expect: { place: 'dead', stage: 'validate' }, label: 'ev is not JSON' });
    } else if (i % every === every - 1 && crashers < CRASHERS) {
      crashers++;
      const { id } = await appender.append({ ...body, metadata: { poison: 'crash' } });
      accepted.push({ id, amount: body.amount, expect: { place: 'dead', stage: 'crashy' }, label: 'crashes its worker' });
    } else {
      const { id } = await appender.append(body);
      accepted.push({ id, amount: body.amount, expect: { place: 'row', status: 'succeeded' }, label: `${body.type} ${body.amount}` });
    }
  }
  assert.equal(notJson + crashers, NOT_JSON + CRASHERS);

  // a worker; restarted whenever it dies, until the pipeline is drained
  const exits: (number | string)[] = [];
  for (let n = 0; ; n++) {
    assert.ok(n < MAX_RESTARTS, `still crashing after ${MAX_RESTARTS} restarts: the poison-pill guard does not stop it\n${fleet.tails()}`);
    const w = fleet.worker(n % 2 ? 'b' : 'a');
    let done = false;
    const drained = (async () => {
      while (!done && w.child.exitCode === null && w.child.signalCode === null) {
        if ((await waiting(ctx)) === 0) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    })();
    const code = await Promise.race([w.exited, drained.then((d) => (d ? 'drained' : 'exited'))]);
    done = true;
    if (code === 'drained') {
      assert.equal(await w.kill('SIGTERM'), 0, fleet.tails());
      break;
    }
    exits.push(await exitWithin(w, 10_000));
  }

  const { verdict, drained } = await drainAndJudge(ctx, accepted, { timeoutMs: 30_000, uniqueIn: ['transactions', 'validated', 'checked'] });
  const crashes = await inst.redis.hgetall(inst.keys.global('crashes'));
  t.diagnostic(`${exits.length} worker crashes (exit codes ${[...new Set(exits)].join(', ')}); crashes per poison event: ${Object.values(crashes).join(', ')}`);
  t.diagnostic(formatVerdict(verdict, `${accepted.length} events`));
  assert.ok(drained && verdict.ok, formatVerdict(verdict));
  assert.equal(verdict.counts.deadLettered, NOT_JSON + CRASHERS);
  assert.equal(verdict.counts.tableRows, TOTAL - NOT_JSON - CRASHERS);
  t.diagnostic(`${Math.round((performance.now() - started) / 1000)} s`);
});
