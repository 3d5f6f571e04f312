// `rill topology check`, run in-process with captured output (the `rill` entry point is wired
// elsewhere; this is the command it dispatches to).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topologyCommand } from '../cli/commands/topology.ts';
import { runCaptured } from './helpers/cli.ts';
import type { CommandRun } from './helpers/cli.ts';

function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<CommandRun> {
  return runCaptured(topologyCommand, argv, { env });
}

const lines = (s: string) => s.split('\n').filter(Boolean);

test('check of the shipped topology: exit 0 and a summary on stdout', async () => {
  const r = await run(['check', 'topology.yaml']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^topology\.yaml: ok\n/);
  assert.match(r.stdout, /transactions → \[validate: validate,/);
  assert.match(r.stdout, /settled → \[postgres: postgres table transactions/);
});

test('the file defaults to RILL_TOPOLOGY, then ./topology.yaml', async () => {
  const fromEnv = await run(['check'], { RILL_TOPOLOGY: 'test/fixtures/topology/bad-yaml.yaml' });
  assert.equal(fromEnv.code, 1);
  assert.match(fromEnv.stderr, /^test\/fixtures\/topology\/bad-yaml\.yaml:11:12: invalid YAML/);
  const fallback = await run(['check']);
  assert.equal(fallback.code, 0, fallback.stderr);
  assert.match(fallback.stdout, /^\.\/topology\.yaml: ok/);
});

test('a broken topology: exit 1, one file:line:col line per problem on stderr, nothing on stdout', async () => {
  const file = 'test/fixtures/topology/bad-values.yaml';
  const r = await run(['check', file]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  const got = lines(r.stderr);
  assert.equal(got.length, 8);
  for (const line of got) assert.match(line, /^test\/fixtures\/topology\/bad-values\.yaml:\d+:\d+: \S/);
  assert.ok(got.includes(`${file}:18:24: stages.validate.retry.attempts: expected an integer >= 1, got 0`), r.stderr);
  assert.ok(got.includes(`${file}:14:5: stages.validate: missing required key "dead_letter"`), r.stderr);
});

test('semantic problems are reported the same way', async () => {
  const r = await run(['check', 'test/fixtures/topology/bad-semantics.yaml']);
  assert.equal(r.code, 1);
  for (const line of lines(r.stderr)) assert.match(line, /^test\/fixtures\/topology\/bad-semantics\.yaml:\d+:\d+: /);
  assert.match(r.stderr, /:31:12: stages\.enrich\.input: expected a declared topic/);
});

test('a missing file: exit 1 and one line', async () => {
  const r = await run(['check', 'nope/topology.yaml']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'nope/topology.yaml:1:1: cannot read topology: no such file\n');
});

test('usage errors: one line on stderr, exit 1', async () => {
  for (const argv of [['validate'], [], ['check', '--strict'], ['check', 'a.yaml', 'b.yaml']]) {
    const r = await run(argv);
    assert.equal(r.code, 1, argv.join(' '));
    assert.equal(lines(r.stderr).length, 1, `${argv.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^rill topology/);
    assert.equal(r.stdout, '');
  }
  assert.equal((await run(['check', '--strict'])).stderr, "rill topology: unknown option '--strict' (see rill topology --help)\n");
});

test('--help prints usage and exits 0', async () => {
  for (const argv of [['--help'], ['check', '--help'], ['-h']]) {
    const r = await run(argv);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: rill topology check \[file\]/);
    assert.equal(r.stderr, '');
  }
});
