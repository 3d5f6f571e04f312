// Partition handover between real worker processes of an `ordering: key` stage, with a lease TTL
// of 60 s (a periodic lease sync every 20 s), so only the handover can move partitions as fast
// as these waits allow:
//  - a worker that joins gets its share at once (the others give it up when it announces itself);
//  - a worker stopped with SIGTERM gives its partitions up and the others take them at once;
//  - one that comes back with the same consumer id gets exactly its own partitions back, and every
//    other worker ends with exactly the partitions it had (static membership);
//  - one SIGKILLed and restarted with the same id adopts its own leases and pending entries at once.
// Events flow throughout; every one ends in Postgres exactly once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import type { RillProcess } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { merchantIds, sampleBody } from './helpers/transactions.ts';
import { EventAppender } from '../ingest/append/index.ts';

const PARTITIONS = 8;
/** Well under a periodic sync (lease_ttl / 3 = 20 s): a move this fast came from the handover. */
const HANDOVER_WAIT_MS = 15_000;
let inst: TestInstance;
const procs = new Map<string, RillProcess>();

before(async () => {
  inst = await createInstance('handover');
});
after(async () => {
  await Promise.all([...procs.values()].map((p) => p.kill('SIGKILL')));
  await inst?.cleanup();
});

/** Consumer id → the validate partitions it holds a lease on (from the lease keys themselves). */
async function owners(): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (let p = 0; p < PARTITIONS; p++) {
    const id = await inst.redis.get(`mutex:${inst.keys.lease('validate', p)}`);
    if (!id) continue;
    // identifier: <host>-<consumer>-<loop>:<partition>
    const consumer = id.slice(`${hostname()}-`.length, id.lastIndexOf('-'));
    (out[consumer] ??= []).push(p);
  }
  return out;
}

const show = (o: Record<string, number[]>) => JSON.stringify(Object.fromEntries(Object.entries(o).sort()));

test('join, SIGTERM, return with the same id, SIGKILL and return: partitions move at once, each comes home', async (t) => {
  const { path, topology } = writeTopology({
    'stages.validate.ordering': 'key',
    'stages.validate.lease_ttl': '60s',
    'stages.validate.batch': 100,
    'sinks.postgres.max_wait': '50ms',
  });
  const vars = { ...inst.vars, RILL_TOPOLOGY: path };
  const start = (id: string) => procs.set(id, spawnRill(['worker', '--consumer', id], vars));
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(24);
  let sent = 0;
  const send = async (n: number) => {
    for (let i = 0; i < n; i++) await appender.append({ ...sampleBody(sent++, merchants), type: 'payin' });
  };
  const everyPartitionHeldBy = async (ids: string[]) => {
    const o = await owners();
    const held = Object.values(o).flat().length;
    return held === PARTITIONS && Object.keys(o).sort().join() === [...ids].sort().join();
  };

  start('c1');
  start('c2');
  await waitFor('c1 and c2 share the partitions', () => everyPartitionHeldBy(['c1', 'c2']), 60_000, 50);
  await send(200);

  // a third worker joins: it gets its share while the others keep the rest
  start('c3');
  await waitFor('c3 got its share', () => everyPartitionHeldBy(['c1', 'c2', 'c3']), 60_000, 20);
  // (60 s: c3's process start; the move itself follows its first sync)
  const full = await owners();
  t.diagnostic(`three members: ${show(full)}`);
  for (const ps of Object.values(full)) assert.ok(ps.length <= Math.ceil(PARTITIONS / 3), show(full));
  await send(200);

  // SIGTERM: c2 gives its partitions up; c1 and c3 take them at once
  let since = Date.now();
  assert.equal(await procs.get('c2')!.kill('SIGTERM'), 0, procs.get('c2')!.output());
  await waitFor('c1 and c3 hold every partition', () => everyPartitionHeldBy(['c1', 'c3']), HANDOVER_WAIT_MS, 10);
  t.diagnostic(`after c2's SIGTERM the others held every partition ${Date.now() - since} ms after it exited`);
  const without = await owners();
  for (const id of ['c1', 'c3']) for (const p of full[id]!) assert.ok(without[id]!.includes(p), `${id} kept partition ${p}: ${show(without)}`);
  await send(200);

  // c2 comes back with the same id: it gets exactly its partitions back, the others keep theirs
  start('c2');
  await waitFor('c2 back with exactly its own partitions', async () => show(await owners()) === show(full), 60_000, 20);

  // SIGKILL c3, and bring it back at once with the same id: its leases (60 s TTL) are adopted,
  // not waited out, and its pending entries go on under its name
  await send(200);
  assert.equal(await procs.get('c3')!.kill('SIGKILL'), 'SIGKILL');
  since = Date.now();
  start('c3');
  await send(200);
  await waitFor(
    'the pipeline to drain (c3 took its own pending entries back)',
    async () => (await outstanding(inst.redis, inst.keys, topology)) === 0,
    50_000,
    50,
  );
  t.diagnostic(`after c3's SIGKILL and restart the pipeline drained in ${Date.now() - since} ms (lease TTL 60 s)`);
  assert.equal(show(await owners()), show(full), 'every member holds its own partitions again');

  const { rows } = await inst.pool.query<{ n: string; d: string }>('SELECT count(*) AS n, count(DISTINCT id) AS d FROM transactions');
  assert.equal(Number(rows[0]!.d), sent, 'every event in Postgres');
  assert.equal(Number(rows[0]!.n), sent, 'none twice');
  for (const id of ['c1', 'c2', 'c3']) assert.equal(await procs.get(id)!.kill('SIGTERM'), 0, procs.get(id)!.output());
});
