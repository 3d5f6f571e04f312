// Retries with backoff on an `ordering: none` stage, through a plugin processor loaded by module
// path: events that fail twice succeed on their third try; events that always fail are
// dead-lettered after the stage's attempts; fatal ones at once. Workers are killed between the
// steps (after a settle that parked retries, before a settle) and restarted: every event still
// ends exactly once in Postgres or the dead-letter stream, and the delay sets end empty.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { deadLetters, outstanding } from './helpers/pipeline.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { EventAppender } from '../ingest/append/index.ts';

const FLAKY = new URL('./fixtures/processors/flaky.ts', import.meta.url).pathname;
let inst: TestInstance;
before(async () => {
  inst = await createInstance('retries');
});
after(async () => {
  await inst?.cleanup();
});

test('retries back off, succeed or dead-letter exactly once, through worker crashes', async (t) => {
  const { path, topology } = writeTopology({
    'topics.checked': { partitions: 8 },
    'stages.validate.visibility_timeout': '1s',
    'stages.flaky': {
      input: 'validated',
      processor: FLAKY,
      output: 'checked',
      ordering: 'none',
      batch: 50,
      retry: { attempts: 4, base: '20ms', factor: 2, max: '200ms', jitter: 'full' },
      visibility_timeout: '1s',
      dead_letter: {},
    },
    'sinks.postgres.input': 'checked',
    'sinks.postgres.visibility_timeout': '1s',
  });
  const vars = { ...inst.vars, RILL_TOPOLOGY: path };
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(20);
  // the refunds and chargebacks of the mix name payins ingest must know
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    topology,
    Array.from({ length: 900 }, (_, i) => sampleBody(i, merchants)),
  );
  const plan: [string, number][] = [
    ['pass', 600],
    ['2', 200],
    ['always', 60],
    ['fatal', 40],
  ];
  const idsBy = new Map<string, Set<string>>();
  let i = 0;
  for (const [fail, n] of plan) {
    const ids = new Set<string>();
    for (let k = 0; k < n; k++, i++) {
      const body = sampleBody(i, merchants);
      ids.add((await appender.append({ ...body, metadata: fail === 'pass' ? {} : { fail } })).id);
    }
    idsBy.set(fail, ids);
  }

  const first = spawnRill(['worker', '--consumer', 'a'], { ...vars, RILL_FAULT: 'stage-after-settle:12' });
  assert.equal(await first.exited, 'SIGKILL', first.output());
  const second = spawnRill(['worker', '--consumer', 'b'], { ...vars, RILL_FAULT: 'stage-before-settle:10' });
  assert.equal(await second.exited, 'SIGKILL', second.output());
  const parked = await Promise.all(Array.from({ length: 8 }, (_, p) => inst.redis.zcard(inst.keys.delay('flaky', p))));
  const third = spawnRill(['worker', '--consumer', 'b'], vars);
  await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 120_000, 100);
  assert.equal(await third.kill('SIGTERM'), 0, third.output());

  const { rows } = await inst.pool.query<{ id: string }>('SELECT id FROM transactions');
  const expectedRows = new Set([...idsBy.get('pass')!, ...idsBy.get('2')!]);
  assert.equal(rows.length, expectedRows.size, 'no row twice');
  assert.deepEqual(new Set(rows.map((r) => r.id)), expectedRows);

  const dead = await deadLetters(inst.redis, inst.keys, 'flaky', 8);
  const deadIds = dead.map((d) => d.get('tx')!);
  assert.equal(new Set(deadIds).size, deadIds.length, 'no dead letter twice');
  assert.deepEqual(new Set(deadIds), new Set([...idsBy.get('always')!, ...idsBy.get('fatal')!]));
  for (const d of dead) {
    const tx = d.get('tx')!;
    if (idsBy.get('always')!.has(tx)) {
      assert.equal(d.get('error'), 'RetryableError');
      assert.match(d.get('message')!, /gave up after 4 attempts/);
      assert.equal(d.get('attempts'), '4');
      assert.ok(Number(d.get('first_failed_at')) < Number(d.get('last_failed_at')), 'first and last failure times differ');
    } else {
      assert.equal(d.get('error'), 'FatalError');
    }
  }
  // a fail=2 event was tried at least 3 times (more only where a crash cut a try short)
  for (const tx of idsBy.get('2')!) assert.ok(Number(await inst.redis.get(inst.keys.global('flaky-tries', tx))) >= 3);
  t.diagnostic(`retries parked in delay sets when the second worker died: ${parked.reduce((a, b) => a + b, 0)}`);
});
