// Routes are checked like outputs: they must name declared topics and must not close a cycle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TopologyError } from '../errors.ts';
import { parseTopology } from './load.ts';

const text = (route: string) => `version: 1
ingest: { topic: transactions }
priorities:
  - { name: normal, types: [payin] }
topics:
  transactions: { partitions: 2 }
  validated: { partitions: 2 }
  reversals: { partitions: 2 }
stages:
  validate:
    input: transactions
    processor: validate
    output: validated
    routes: { by: type, to: { refund: ${route} } }
    dead_letter: {}
  reverse:
    input: reversals
    processor: validate
    output: validated
    dead_letter: {}
sinks:
  pg: { type: postgres, input: validated }
`;

function problems(route: string): string[] {
  try {
    parseTopology(text(route), 't.yaml');
  } catch (err) {
    assert.ok(err instanceof TopologyError);
    return err.problems.map((p) => `${p.line}:${p.column}: ${p.message}`);
  }
  return [];
}

test('a route to a declared topic is accepted', () => {
  assert.deepEqual(problems('reversals'), []);
});

test('a route to an undeclared topic names the route', () => {
  const found = problems('nowhere');
  assert.ok(
    found.some((p) => p.startsWith('14:39:') && p.includes('stages.validate.routes.to.refund: expected a declared topic')),
    found.join('\n'),
  );
});

test('a route back into the stage input is rejected at the route', () => {
  const found = problems('transactions');
  assert.ok(
    found.some((p) => p.startsWith('14:39:') && p.includes('other than the input')),
    found.join('\n'),
  );
});
