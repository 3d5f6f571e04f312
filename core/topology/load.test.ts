import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { TopologyError } from '../errors.ts';
import type { TopologyProblem } from '../errors.ts';
import { loadTopology, parseTopology } from './load.ts';
import { describeTopology } from './describe.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (name: string) => `${root}test/fixtures/topology/${name}`;

/** The problems a load throws; fails the test if it doesn't throw a TopologyError. */
function problemsOf(load: () => unknown): TopologyProblem[] {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof TopologyError, `expected a TopologyError, got ${String(err)}`);
    assert.equal(err.message, err.problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.message}`).join('\n'));
    return err.problems;
  }
  assert.fail('expected the topology to be rejected');
}

/** Asserts one problem at exactly file:line:col whose message contains `fragment`. */
function expectProblem(problems: TopologyProblem[], file: string, line: number, column: number, fragment: string): void {
  const hit = problems.find((p) => p.line === line && p.column === column && p.message.includes(fragment));
  assert.ok(
    hit,
    `no problem at ${line}:${column} containing ${JSON.stringify(fragment)}; got:\n${problems.map((p) => `${p.line}:${p.column}: ${p.message}`).join('\n')}`,
  );
  assert.equal(hit.file, file);
}

const VALID = `version: 1
ingest: { topic: transactions }
priorities:
  - { name: high, types: [payout] }
  - { name: low }
topics:
  transactions: { partitions: 4 }
  validated: { partitions: 4 }
stages:
  validate:
    input: transactions
    processor: validate
    output: validated
    dead_letter: {}
sinks:
  postgres: { type: postgres, input: validated }
`;

test('the shipped topology.yaml loads, with durations in ms and defaults filled in', () => {
  const t = loadTopology(`${root}topology.yaml`);
  assert.equal(t.ingest.topic, 'transactions');
  assert.equal(t.ingest.idempotency_ttl, 86_400_000);
  assert.deepEqual(
    t.priorities.map((p) => p.name),
    ['critical', 'high', 'normal', 'low'],
  );
  assert.equal(t.topics.transactions?.partitions, 8);
  const validate = t.stages.validate!;
  assert.equal(validate.retry.base, 100);
  assert.equal(validate.retry.max, 30_000);
  assert.equal(validate.visibility_timeout, 30_000);
  const pg = t.sinks.postgres;
  assert.ok(pg?.type === 'postgres');
  assert.equal(pg.max_wait, 200);
  assert.equal(pg.concurrency, 1);
});

test('a minimal topology gets the schema defaults', () => {
  const t = parseTopology(VALID, 'min.yaml');
  const stage = t.stages.validate!;
  assert.equal(stage.ordering, 'none');
  assert.equal(stage.batch, 100);
  assert.deepEqual(stage.retry, { attempts: 5, base: 100, factor: 2, max: 30_000, jitter: 'full' });
  assert.equal(stage.dead_letter.max_len, 1_000_000);
  const pg = t.sinks.postgres;
  assert.ok(pg?.type === 'postgres');
  assert.equal(pg.batch_rows, 5_000);
});

test('bad-yaml.yaml: the syntax error with its position', () => {
  const file = fixture('bad-yaml.yaml');
  const problems = problemsOf(() => loadTopology(file));
  assert.equal(problems.length, 1);
  expectProblem(problems, file, 11, 12, 'invalid YAML: Nested mappings are not allowed');
});

test('unknown-key.yaml: each misspelled key, at the key itself', () => {
  const file = fixture('unknown-key.yaml');
  const problems = problemsOf(() => loadTopology(file));
  expectProblem(problems, file, 9, 5, 'topics.transactions: unknown key "partitons" (did you mean "partitions"?)');
  expectProblem(problems, file, 16, 5, 'stages.validate: unknown key "retries" (allowed: input, processor, output,');
  // The typo leaves "partitions" missing too; that is the same mistake, so it's reported once.
  assert.equal(problems.length, 2);
});

test('bad-values.yaml: every wrong value, each at its value, with what was expected', () => {
  const file = fixture('bad-values.yaml');
  const problems = problemsOf(() => loadTopology(file));
  expectProblem(problems, file, 5, 20, 'ingest.idempotency_ttl: expected a duration like 250ms');
  expectProblem(problems, file, 5, 20, 'got "1 day"');
  expectProblem(problems, file, 7, 55, 'priorities[0].min_share: expected a number <= 1, got 2');
  expectProblem(problems, file, 10, 31, 'topics.transactions.partitions: expected an integer >= 1, got 0');
  expectProblem(problems, file, 11, 28, 'topics.validated.partitions: expected an integer from 1 to 1024, got "8"');
  expectProblem(problems, file, 14, 5, 'stages.validate: missing required key "dead_letter"');
  expectProblem(problems, file, 17, 15, 'stages.validate.ordering: expected one of "none", "key", got "strict"');
  expectProblem(problems, file, 18, 24, 'stages.validate.retry.attempts: expected an integer >= 1, got 0');
  expectProblem(problems, file, 20, 61, 'sinks.postgres.batch_rows: expected an integer from 1 to 100000, got 5000.5');
  assert.equal(problems.length, 8);
  // In file order, as an editor lists them.
  const order = problems.map((p) => p.line * 1000 + p.column);
  assert.deepEqual(
    order,
    [...order].sort((a, b) => a - b),
  );
});

test('bad-semantics.yaml: cross-cutting rules, each at the offending value', () => {
  const file = fixture('bad-semantics.yaml');
  const problems = problemsOf(() => loadTopology(file));
  expectProblem(problems, file, 8, 36, 'priorities[1].types[1]: event type "refund" is already in priority "critical"');
  expectProblem(problems, file, 11, 28, 'topics.validated.partitions: expected 8 like topic "transactions"');
  expectProblem(problems, file, 13, 3, 'topics.audit: no stage or sink reads topic "audit"');
  expectProblem(problems, file, 28, 13, 'stages.rescore.output: "validated" closes a cycle validated → [risk] → scored → [rescore] → validated');
  expectProblem(problems, file, 31, 12, 'stages.enrich.input: expected a declared topic (transactions, validated, scored, audit), got "enriched"');
  expectProblem(problems, file, 36, 3, 'sinks.risk: name "risk" is also a stage');
  assert.equal(problems.length, 6);
});

test('semantic rules: duplicate lanes, self-loop, undeclared ingest and output topics', () => {
  const text = VALID.replace('{ name: low }', '{ name: high }')
    .replace('ingest: { topic: transactions }', 'ingest: { topic: incoming }')
    .replace('output: validated', 'output: transactions');
  const problems = problemsOf(() => parseTopology(text, 'x.yaml'));
  expectProblem(problems, 'x.yaml', 2, 18, 'ingest.topic: expected a declared topic (transactions, validated), got "incoming"');
  expectProblem(problems, 'x.yaml', 5, 13, 'priorities[1].name: duplicate priority "high" (already priorities[0])');
  expectProblem(problems, 'x.yaml', 13, 13, 'stages.validate.output: expected a topic other than the input, got "transactions"');
  assert.equal(problems.length, 3);
});

test('a topic nobody reads is an error even when it is the ingest topic', () => {
  const text = VALID.replace('input: transactions', 'input: validated').replace('output: validated', 'output: transactions');
  const problems = problemsOf(() => parseTopology(text, 'x.yaml'));
  // validate now reads validated and writes transactions, which nothing reads.
  expectProblem(problems, 'x.yaml', 7, 3, 'topics.transactions: no stage or sink reads topic "transactions"');
});

test('invalid names, a wrong root type and unknown top-level keys', () => {
  let problems = problemsOf(() => parseTopology(VALID.replace('  validated: { partitions: 4 }', '  Validated: { partitions: 4 }'), 'x.yaml'));
  expectProblem(problems, 'x.yaml', 8, 3, 'topics: invalid name "Validated": expected a topic name');
  problems = problemsOf(() => parseTopology(`${VALID}extras: 1\n`, 'x.yaml'));
  expectProblem(problems, 'x.yaml', 17, 1, 'unknown key "extras" (allowed: version, ingest, refunds, priorities, topics, stages, sinks, chaining)');
  problems = problemsOf(() => parseTopology('- 1\n- 2\n', 'x.yaml'));
  expectProblem(problems, 'x.yaml', 1, 1, 'expected a mapping, got a list of 2');
});

test('a missing key is reported at the mapping that lacks it', () => {
  const problems = problemsOf(() => parseTopology(VALID.replace('  validated: { partitions: 4 }', '  validated: { retention: { max_len: 10 } }'), 'x.yaml'));
  expectProblem(problems, 'x.yaml', 8, 14, 'topics.validated: missing required key "partitions"');
  assert.equal(problems.length, 1);
});

test('an empty value reports at its key', () => {
  const problems = problemsOf(() => parseTopology(VALID.replace('dead_letter: {}', 'dead_letter:'), 'x.yaml'));
  expectProblem(problems, 'x.yaml', 14, 5, 'stages.validate.dead_letter: expected a mapping, got an empty value');
});

test('duplicate keys are a YAML error at the second key', () => {
  const problems = problemsOf(() => parseTopology(VALID.replace('    processor: validate\n', '    processor: validate\n    processor: risk\n'), 'x.yaml'));
  expectProblem(problems, 'x.yaml', 13, 5, 'invalid YAML: Map keys must be unique');
});

test('empty and missing files', () => {
  expectProblem(
    problemsOf(() => parseTopology('# nothing\n', 'e.yaml')),
    'e.yaml',
    1,
    1,
    'empty topology: expected a mapping',
  );
  const missing = fixture('does-not-exist.yaml');
  expectProblem(
    problemsOf(() => loadTopology(missing)),
    missing,
    1,
    1,
    'cannot read topology: no such file',
  );
});

test('describeTopology names every topic, lane, stage and sink', () => {
  const text = describeTopology(loadTopology(`${root}topology.yaml`));
  assert.match(text, /transactions\s+8 partitions, retention hot 15m, at most 512mb/);
  assert.match(text, /validated\s+8 partitions, retention trimmed once acknowledged, at most 256mb/);
  assert.match(text, /critical\s+chargeback, refund\s+min_share 0/);
  assert.match(text, /low\s+any other type\s+min_share 0\.05/);
  assert.match(text, /transactions → \[validate: validate, ordering key, batch 500, concurrency 1, retry 5× 100ms\.\.30s ×2 jitter\] → validated/);
  assert.match(text, /scored → \[ledger: ledger, ordering key, batch 500, concurrency 1, retry 4× 100ms\.\.1s ×2 jitter\] → settled/);
  assert.match(text, /settled → \[postgres: postgres table transactions, every 5,000 rows or 200ms, concurrency 1\]/);
  const lanes = [...text.matchAll(/^ {2}(critical|high|normal|low) /gm)].map((m) => m[1]);
  assert.deepEqual(lanes, ['critical', 'high', 'normal', 'low']);
});

test('lower lanes may not reserve the whole read', () => {
  const text = VALID.replace('{ name: low }', '{ name: low, min_share: 1 }');
  const problems = problemsOf(() => parseTopology(text, 'x.yaml'));
  expectProblem(problems, 'x.yaml', 5, 29, 'priorities[1].min_share: the lanes below "high" reserve 1 of every read in all; expected a sum below 1');
});
