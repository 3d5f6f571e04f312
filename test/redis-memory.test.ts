// Redis memory by key family (core/redis-memory.ts) on real Redis: keys of every kind under a
// test's own prefix are classified by the key layout, counted exactly, weighed, their entries and
// TTLs read; a cut scan says so; `rill status` shows the table (text and --json).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { classifyKey, redisMemoryByFamily } from '../core/redis-memory.ts';
import type { RedisMemoryReport } from '../core/redis-memory.ts';
import { statusCommand } from '../cli/commands/status.ts';

let inst: TestInstance;
const { path, topology } = writeTopology({});
const topics = Object.keys(topology.topics);
const TOPIC = topics[0]!;
const DAY_S = 86_400;

before(async () => {
  inst = await createInstance('redismem');
  const k = inst.keys;
  const pipe = inst.redis.pipeline();
  for (let i = 0; i < 30; i++) pipe.set(k.idempotency(i % 8, 'm_1', `key-${i}`), 'x'.repeat(40), 'EX', DAY_S);
  for (let i = 0; i < 5; i++) pipe.xadd(k.lane(TOPIC, i % 2, 'normal'), '*', 'tx', `tx_${i}`);
  for (let i = 0; i < 4; i++) pipe.hset(k.payins(3, 'm_1', 'b1'), `tx_${i}`, '1');
  pipe.set(k.partitioned(2, 'ledger', 'tx_1'), 'd', 'EX', 7 * DAY_S);
  pipe.set(k.partitioned(2, 'risk', 'tx_1'), 'r', 'EX', DAY_S);
  pipe.hset(k.partitioned(2, 'rl', 'm_1'), 't', '1');
  pipe.set(k.global('some-setting'), 'w');
  pipe.set(`${k.prefix}:{2}:something-new`, 'n');
  await pipe.exec();
});
after(async () => {
  await inst?.cleanup();
});

const family = (r: RedisMemoryReport, name: string) => r.families.find((f) => f.family === name);

test('classifyKey: streams by topic, partitioned state by its first segment, globals, other prefixes', () => {
  const set = new Set(['transactions', 'validated']);
  assert.equal(classifyKey('rill', 'rill:{7}:transactions:normal', set)?.family, 'stream:transactions');
  assert.equal(classifyKey('rill', 'rill:{7}:idem:m_1:abc:def', set)?.family, 'idempotency');
  assert.equal(classifyKey('rill', 'rill:{7}:risk:tx_1', set)?.family, 'risk-records');
  assert.equal(classifyKey('rill', 'rill:{7}:riskf:m_1', set)?.family, 'risk-features');
  assert.equal(classifyKey('rill', 'rill:{7}:ledger:tx_1', set)?.family, 'ledger-records');
  assert.equal(classifyKey('rill', 'rill:{7}:payins:m_1:b3', set)?.kind, 'per-event');
  assert.equal(classifyKey('rill', 'rill:{7}:refunds:m_1', set)?.family, 'ledger-state', "the ledger's per-merchant refund count");
  assert.equal(classifyKey('rill', 'rill:{7}:park:ledger:q:normal|m_1', set)?.family, 'parked');
  assert.equal(classifyKey('rill', 'rill:{7}:dlq:validate', set)?.family, 'dead-letters');
  assert.equal(classifyKey('rill', 'rill:{7}:unknown:normal', set)?.family, 'other');
  assert.equal(classifyKey('rill', 'rill:g:some-setting', set)?.family, 'global');
  assert.equal(classifyKey('rill', 'rillx:{7}:idem:a', set), undefined);
});

test('every key counted in its family, entries and TTLs read, bytes weighed', async () => {
  const r = await redisMemoryByFamily(inst.redis, inst.keys.prefix, { topics, memorySamples: 0, samplesPerFamily: 8 });
  assert.equal(r.complete, true);
  assert.equal(r.keys, 30 + 2 + 1 + 1 + 1 + 1 + 1 + 1);
  const idem = family(r, 'idempotency')!;
  assert.equal(idem.keys, 30);
  assert.equal(idem.sampled, 8);
  assert.ok(idem.ttlMs! > (DAY_S - 60) * 1000 && idem.ttlMs! <= DAY_S * 1000, `ttl ${idem.ttlMs}`);
  assert.ok(idem.bytes > 30 * 40, `idempotency bytes ${idem.bytes}`);
  const stream = family(r, `stream:${TOPIC}`)!;
  assert.deepEqual([stream.keys, stream.entries, stream.kind, stream.ttlMs], [2, 5, 'stream', null]);
  assert.deepEqual([family(r, 'refundable-payins')?.keys, family(r, 'refundable-payins')?.entries], [1, 4]);
  assert.ok(family(r, 'ledger-records')!.ttlMs! > (7 * DAY_S - 60) * 1000);
  assert.equal(family(r, 'risk-records')?.keys, 1);
  assert.equal(family(r, 'rate-limit')?.kind, 'per-merchant');
  assert.equal(family(r, 'global')?.keys, 1);
  assert.equal(family(r, 'other')?.keys, 1);
  assert.equal(
    r.bytes,
    r.families.reduce((n, f) => n + f.bytes, 0),
  );
  assert.ok(r.usedMemory >= r.bytes);
});

test('a scan cut at maxKeys says the counts are extrapolated', async () => {
  const r = await redisMemoryByFamily(inst.redis, inst.keys.prefix, { topics, maxKeys: 1 });
  // one SCAN call returns up to ~1000 keys: a cut only happens when the scan is not over yet
  if (r.complete) assert.equal(r.keys, 38);
  else assert.ok(r.keys > 0);
});

test('rill status shows Redis memory by family (text and --json)', async () => {
  const run = async (argv: string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await statusCommand(argv, {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      env: { ...process.env, ...inst.vars, RILL_TOPOLOGY: path },
      tty: false,
    });
    assert.equal(code, 0, stderr);
    return stdout;
  };
  const text = await run([]);
  assert.match(text, /^Redis memory of prefix rilltest:\S+: [\d.]+ MB in 38 keys/m);
  assert.match(text, /^FAMILY\s+GROWS\s+KEYS\s+ENTRIES\s+BYTES\s+TTL$/m);
  assert.match(text, /^idempotency\s+per-event\s+30\s+-\s+[\d.]+ MB\s+(23h59m|1d00h)$/m);
  assert.match(text, new RegExp(`^stream:${TOPIC}\\s+stream\\s+2\\s+5\\s`, 'm'));
  const json = JSON.parse(await run(['--json'])) as { memory: RedisMemoryReport };
  assert.equal(family(json.memory, 'idempotency')?.keys, 30);
  assert.equal(json.memory.keys, 38);
});
