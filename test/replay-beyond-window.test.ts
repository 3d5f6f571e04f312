// `rill replay` from before the hot window: it replays what Redis still holds, says which part it
// cannot replay and where the older events are (Postgres for a postgres sink's input topic,
// nowhere for the others), and the group then gets exactly the entries still held.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { ENGINE_TOPOLOGY } from './helpers/topology-file.ts';
import { loadTopology } from '../core/topology/load.ts';
import { replayCommand } from '../cli/commands/replay.ts';

const topology = loadTopology(ENGINE_TOPOLOGY);
let inst: TestInstance;

before(async () => {
  inst = await createInstance('replay-window');
});
after(async () => {
  await inst?.cleanup();
});

async function replay(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await replayCommand(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: { ...process.env, ...inst.vars, RILL_TOPOLOGY: ENGINE_TOPOLOGY },
  });
  return { code, stdout, stderr };
}

/** 10 entries on one lane stream, read and acknowledged by `group`, the first 6 then trimmed. */
async function consumedAndTrimmed(topic: string, group: string): Promise<{ key: string; ids: string[] }> {
  const key = inst.keys.lane(topic, 3, 'normal');
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) ids.push(String(await inst.redis.xadd(key, '*', 'tx', `tx_${topic}_${i}`, 'ev', '{}')));
  await inst.redis.xgroup('CREATE', key, group, '0');
  const read = (await inst.redis.xreadgroup('GROUP', group, 'c1', 'COUNT', 100, 'STREAMS', key, '>')) as [string, [string, string[]][]][];
  assert.equal(read[0]![1].length, 10);
  await inst.redis.xack(key, group, ...ids);
  await inst.redis.xtrim(key, 'MINID', ids[6]!);
  return { key, ids };
}

test('a replay from before the hot window replays what Redis holds and says what it cannot', async () => {
  const t = await consumedAndTrimmed('transactions', 'validate');
  const from = String(Number(t.ids[0]!.split('-')[0]) - 1);
  const lanes = topology.topics.transactions!.partitions * topology.priorities.length;

  const dry = await replay('--group', 'validate', '--from', from, '--dry-run');
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /: 4 entries would be delivered again \(1 of \d+ lane streams would move back\)/);
  assert.match(
    dry.stdout,
    new RegExp(`cannot replay all of it: 1 of ${lanes} lane streams no longer hold every entry since the start .*whole again from ${t.ids[6]} \\(`),
  );
  assert.match(dry.stdout, /the older events of transactions are not kept anywhere \(it keeps no history beyond Redis\)/);

  const real = await replay('--group', 'validate', '--from', from);
  assert.equal(real.code, 0, real.stderr);
  assert.match(real.stdout, /: 4 entries will be delivered again/);
  const again = (await inst.redis.xreadgroup('GROUP', 'validate', 'c1', 'COUNT', 100, 'STREAMS', t.key, '>')) as [string, [string, string[]][]][];
  assert.deepEqual(
    again[0]![1].map(([id]) => id),
    t.ids.slice(6),
    'exactly the entries still held',
  );

  // the sink's input topic: the older events are in Postgres, readable with tap
  const s = await consumedAndTrimmed('validated', 'postgres');
  const sinkFrom = String(Number(s.ids[0]!.split('-')[0]) - 1);
  const sink = await replay('--group', 'postgres', '--from', sinkFrom, '--dry-run');
  assert.equal(sink.code, 0, sink.stderr);
  assert.match(
    sink.stdout,
    /the older events of validated are in Postgres: read them with rill tap validated --from \d+-0; they are not delivered to postgres again/,
  );

  // from inside the window: nothing about trimming
  const inside = await replay('--group', 'validate', '--from', t.ids[7]!, '--dry-run');
  assert.equal(inside.code, 0, inside.stderr);
  assert.doesNotMatch(inside.stdout, /cannot replay/);
});
