// Stage chaining (core/topology/chains.ts, core/consumer/chain-batch.ts): three ordering: key stages
// validate → flaky → apply (sequence-check) run as one task, their intermediate topics crossed in
// memory. The same input run chained and with `chaining: false` ends the same: the same rows with
// the same statuses, every merchant's events in order, the same dead letters at the same stages.
// A retry at the chain's second stage parks there (its name, its input form) with its merchant's
// later events behind it. Workers SIGKILLed between two stages of the chain and before its settle
// lose and duplicate nothing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import type { RillProcess } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { FLAKY_PROCESSOR, writeTopology } from './helpers/topology-file.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { partitionOf } from '../core/partition.ts';
import { fieldsToMap } from '../core/entry.ts';
import { planChains } from '../core/topology/chains.ts';
import type { TransactionBody } from '../ingest/validation.ts';
import type { Topology } from '../core/topology/schema.ts';
import { DeadLetters } from '../core/dead-letter/dead-letters.ts';

const SEQUENCE_CHECK = new URL('./fixtures/processors/sequence-check.ts', import.meta.url).pathname;
const MERCHANTS = 12;
const PER_MERCHANT = 25;
/** Fails its 3rd event's first 3 tries at the flaky stage (parked there, its later events behind it). */
const SLOW = 'm_chain_000';
/** Its 2nd event fails 5 tries at the flaky stage (attempts: 5): dead-lettered, then redriven, it passes. */
const GAVE_UP = 'm_chain_003';

const instances: TestInstance[] = [];
const workers: RillProcess[] = [];
before(async () => {
  for (const label of ['chain-on', 'chain-off', 'chain-kill']) instances.push(await createInstance(label));
});
after(async () => {
  await Promise.all(workers.map((w) => w.kill('SIGKILL')));
  await Promise.all(instances.map((i) => i.cleanup()));
});

function topologyFor(chaining: boolean) {
  const stage = (input: string, processor: string, output: string, retry: Record<string, unknown>) => ({
    input,
    processor,
    output,
    ordering: 'key',
    batch: 50,
    lease_ttl: '2s',
    visibility_timeout: '2s',
    retry,
    dead_letter: {},
  });
  return writeTopology({
    chaining,
    'topics.flagged': { partitions: 8 },
    'topics.checked': { partitions: 8 },
    'stages.validate.ordering': 'key',
    'stages.validate.batch': 50,
    'stages.validate.lease_ttl': '2s',
    'stages.validate.visibility_timeout': '2s',
    'stages.flaky': stage('validated', FLAKY_PROCESSOR, 'flagged', { attempts: 5, base: '500ms', factor: 2, max: '1s', jitter: 'none' }),
    'stages.apply': stage('flagged', SEQUENCE_CHECK, 'checked', { attempts: 3 }),
    'sinks.postgres.input': 'checked',
    'sinks.postgres.max_wait': '50ms',
    'sinks.postgres.visibility_timeout': '2s',
  });
}

/** The same input for every run: payins (one lane) numbered per merchant, a few to fail or dead-letter. */
function bodies(): TransactionBody[] {
  const out: TransactionBody[] = [];
  const seq = new Map<string, number>();
  for (let i = 0; i < PER_MERCHANT; i++) {
    for (let m = 0; m < MERCHANTS; m++) {
      const merchant = `m_chain_${String(m).padStart(3, '0')}`;
      const metadata: Record<string, string> = {};
      if (merchant === SLOW && i === 2) metadata.fail = '3';
      // dead-lettered by the flaky stage (no seq: it never reaches apply)
      if (m % 5 === 1 && i === 7) metadata.fail = 'fatal';
      else if (merchant === GAVE_UP && i === 1) metadata.fail = '5';
      else {
        seq.set(merchant, (seq.get(merchant) ?? 0) + 1);
        metadata.seq = String(seq.get(merchant));
      }
      // a merchant mistake: validate fails it (a row with status failed), the chain goes on
      const currency = m % 4 === 2 && i === 4 ? 'ZAR' : 'EUR';
      out.push({ type: 'payin', merchant_id: merchant, amount: 100 + i, currency, reference: `${merchant}-${i}`, metadata } as TransactionBody);
    }
  }
  return out;
}
const FATAL = bodies().filter((b) => b.metadata?.fail === 'fatal').length;
const UNREADABLE_TX = 'tx_unreadable_chain';

async function post(inst: TestInstance, topology: Topology): Promise<void> {
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  for (const b of bodies()) await appender.append(b);
  // an entry without its event body: dead-lettered by validate, the chain's first stage
  await inst.redis.xadd(inst.keys.lane('transactions', 0, 'normal'), '*', 'tx', UNREADABLE_TX);
}

interface RunResult {
  rows: Map<string, string>;
  order: Map<string, string[]>;
  deadLetters: string[];
  violations: string[];
  intermediateEntries: number;
}

async function result(inst: TestInstance): Promise<RunResult> {
  const { rows } = await inst.pool.query<{
    id: string;
    reference: string;
    merchant_id: string;
    status: string;
    failure_code: string | null;
    seq: string | null;
  }>(
    `SELECT id, reference, merchant_id, status, failure_code, metadata->>'seq' AS seq FROM transactions ORDER BY split_part(stream_id, '-', 1)::bigint, split_part(stream_id, '-', 2)::bigint`,
  );
  assert.equal(new Set(rows.map((r) => r.id)).size, rows.length, 'no row twice');
  const order = new Map<string, string[]>();
  // the redriven event (no seq) lands last, out of line: order is checked over the others
  for (const r of rows) if (r.seq !== null) order.set(r.merchant_id, [...(order.get(r.merchant_id) ?? []), r.seq]);
  const deadLetters: string[] = [];
  for (const stage of ['validate', 'flaky', 'apply']) {
    for (let p = 0; p < 8; p++) {
      for (const [, fields] of await inst.redis.xrange(inst.keys.deadLetter(stage, p), '-', '+')) {
        const f = fieldsToMap(fields);
        const ref = f.get('ev') ? (JSON.parse(f.get('ev')!) as { reference: string }).reference : f.get('tx');
        deadLetters.push(`${stage} ${ref} ${f.get('error')}`);
      }
    }
  }
  let intermediateEntries = 0;
  for (const topic of ['validated', 'flagged']) for (let p = 0; p < 8; p++) intermediateEntries += await inst.redis.xlen(inst.keys.lane(topic, p, 'normal'));
  return {
    rows: new Map(rows.map((r) => [r.reference, `${r.merchant_id} ${r.status}${r.failure_code ? `:${r.failure_code}` : ''}`])),
    order,
    deadLetters: deadLetters.sort(),
    violations: await inst.redis.lrange(inst.keys.global('seq-violations'), 0, -1),
    intermediateEntries,
  };
}

/** The parked queue of SLOW at the flaky stage, as its items' (stream, seq). */
/** Waits until `expected` rows are in Postgres and every group of the topology has caught up. */
async function caughtUp(inst: TestInstance, topology: Topology, expected: number): Promise<void> {
  await waitFor(
    'every row and every group caught up',
    async () => {
      const { rows } = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
      return Number(rows[0]!.n) >= expected && (await outstanding(inst.redis, inst.keys, topology)) === 0;
    },
    90_000,
    100,
  );
}

/** Each merchant's rows carry its sequence numbers 1..n, in order. */
function assertRowsInOrder(r: RunResult): void {
  for (const [m, seqs] of r.order) {
    assert.deepEqual(
      seqs.map(Number),
      seqs.map((_, j) => j + 1),
      `${m}: rows in order`,
    );
  }
}

async function slowParkedAtFlaky(inst: TestInstance): Promise<{ stream: string; seq: string }[]> {
  const p = partitionOf(SLOW, 8);
  const items = await inst.redis.lrange(inst.keys.parkQueue('flaky', p, `normal|${SLOW}`), 0, -1);
  return items.map((raw) => {
    const item = JSON.parse(raw.slice(raw.indexOf(' ') + 1)) as { stream: string; fields: string[] };
    const ev = JSON.parse(fieldsToMap(item.fields).get('ev')!) as { metadata: { seq: string } };
    return { stream: item.stream, seq: ev.metadata.seq };
  });
}

/** One run of the input through a worker: chained or not. Checks what holds either way. */
async function runOnce(inst: TestInstance, chaining: boolean, consumer: string): Promise<RunResult> {
  const { path, topology } = topologyFor(chaining);
  assert.deepEqual(
    planChains(topology).map((c) => c.stages),
    chaining ? [['validate', 'flaky', 'apply']] : [['validate'], ['flaky'], ['apply']],
  );
  await post(inst, topology);
  const w = spawnRill(['worker', '--consumer', consumer], { ...inst.vars, RILL_TOPOLOGY: path });
  workers.push(w);
  // SLOW's failing event is parked at the flaky stage (the chain's second), its later events
  // behind it, each in the form the flaky stage reads (its input topic's lane)
  let parked: { stream: string; seq: string }[] = [];
  await waitFor('SLOW parked at the flaky stage', async () => (parked = await slowParkedAtFlaky(inst)).length >= 5, 60_000, 10).catch((e: Error) => {
    throw new Error(`${e.message}: ${w.output().slice(-2000)}`);
  });
  const p = partitionOf(SLOW, 8);
  assert.deepEqual(
    parked.map((i) => i.stream),
    parked.map(() => inst.keys.lane('validated', p, 'normal')),
  );
  assert.deepEqual(
    parked.map((i) => Number(i.seq)),
    parked.map((_, j) => 3 + j),
    'the failed event first, its merchant later ones behind it, in order',
  );
  assert.equal(await inst.redis.exists(inst.keys.parked('validate', p, 'index')), 0, 'nothing parked at validate');

  // GAVE_UP's event is dead-lettered by the flaky stage after its 5 attempts; redriven, it goes
  // back to the flaky stage's input topic (chained: read by the chain's reader of that topic) and passes
  const dlq = new DeadLetters(inst.redis, inst.keys, topology);
  const gaveUp = async () => (await result(inst)).deadLetters.filter((d) => d.startsWith(`flaky ${GAVE_UP}-1 `));
  await waitFor('the flaky stage to give up on one event', async () => (await gaveUp()).length === 1, 60_000, 50);
  const redriven = await dlq.redrive({ all: true, stage: 'flaky' });
  assert.equal(redriven.redriven, FATAL + 1);
  const expected = MERCHANTS * PER_MERCHANT - FATAL;
  await caughtUp(inst, topology, expected);
  assert.equal(await w.kill('SIGTERM'), 0, w.output());
  const r = await result(inst);
  assert.deepEqual(await gaveUp(), [], 'the redriven event went through');
  assert.ok(r.rows.has(`${GAVE_UP}-1`));
  assert.equal(r.rows.size, expected);
  assert.deepEqual(r.violations, [], 'apply saw every merchant in order');
  assertRowsInOrder(r);
  assert.equal(r.deadLetters.length, FATAL + 1);
  return r;
}

test('chained and unchained runs of the same input end the same; a retry inside the chain parks at its stage', async (t) => {
  const [chained, unchained] = await Promise.all([runOnce(instances[0]!, true, 'on'), runOnce(instances[1]!, false, 'off')]);
  assert.deepEqual(chained.rows, unchained.rows, 'the same rows, statuses and failure codes');
  assert.deepEqual(chained.order, unchained.order, 'the same per-merchant order');
  assert.deepEqual(chained.deadLetters, unchained.deadLetters, 'the same dead letters at the same stages');
  assert.ok(chained.deadLetters.some((d) => d.startsWith(`validate ${UNREADABLE_TX} `)));
  assert.ok(chained.deadLetters.some((d) => d.startsWith('flaky ')));
  assert.equal(chained.intermediateEntries, FATAL + 1, 'chained: nothing written to the intermediate topics but the redriven dead letters');
  assert.ok(unchained.intermediateEntries > MERCHANTS * PER_MERCHANT, 'unchained: the intermediate topics were written');
  t.diagnostic(`rows ${chained.rows.size}, dead letters ${chained.deadLetters.length}, intermediate entries unchained ${unchained.intermediateEntries}`);
});

test('workers SIGKILLed between two chained stages and before the settle: nothing lost, nothing twice, order kept', async () => {
  const inst = instances[2]!;
  const { path, topology } = topologyFor(true);
  await post(inst, topology);
  const vars = { ...inst.vars, RILL_TOPOLOGY: path };
  // 1. killed after a batch went through validate and flaky, before apply ran it
  const first = spawnRill(['worker', '--consumer', 'a'], { ...vars, RILL_FAULT: 'chain-between-stages:4' });
  workers.push(first);
  assert.equal(await first.exited, 'SIGKILL', first.output());
  // 2. another consumer takes the leases over; killed after every stage ran a batch, before its settle
  const second = spawnRill(['worker', '--consumer', 'b'], { ...vars, RILL_FAULT: 'stage-before-settle:3' });
  workers.push(second);
  assert.equal(await second.exited, 'SIGKILL', second.output());
  // 3. the first consumer id again: its own pending entries first, then the rest
  const third = spawnRill(['worker', '--consumer', 'a'], vars);
  workers.push(third);
  // GAVE_UP's event stays dead-lettered here (not redriven)
  const expected = MERCHANTS * PER_MERCHANT - FATAL - 1;
  await caughtUp(inst, topology, expected);
  assert.equal(await third.kill('SIGTERM'), 0, third.output());
  const r = await result(inst);
  assert.equal(r.rows.size, expected);
  assert.deepEqual(r.violations, [], 'apply saw every merchant in order, each event once');
  assertRowsInOrder(r);
  assert.equal(r.deadLetters.length, FATAL + 2);
  assert.equal(r.intermediateEntries, 0);
});
