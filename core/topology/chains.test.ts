// Which stages run as one task: the shipped pipeline's chain, and each thing that cuts a chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { parseTopology } from './load.ts';
import { planChains } from './chains.ts';

const SHIPPED = new URL('../../topology.yaml', import.meta.url).pathname;

/** The shipped topology with dotted paths set to values. */
function shipped(changes: Record<string, unknown> = {}) {
  const doc = parseDocument(readFileSync(SHIPPED, 'utf8'));
  for (const [path, value] of Object.entries(changes)) doc.setIn(path.split('.'), value);
  return parseTopology(doc.toString(), 'topology.yaml');
}

const tasks = (changes: Record<string, unknown> = {}, only?: string[]) =>
  planChains(shipped(changes), only ? new Set(only) : undefined).map((c) => c.stages.join('+'));

test('the shipped pipeline: validate → risk → ledger is one task (settled is read by the sink and webhook-events)', () => {
  const t = shipped();
  assert.equal(t.chaining, true);
  assert.equal(t.topics.validated!.materialize, false);
  assert.deepEqual(tasks(), ['validate+risk+ledger', 'webhook-events', 'webhook-alerts']);
  assert.deepEqual(planChains(t).find((c) => c.stages.length > 1)?.links, ['validated', 'scored']);
});

test('chaining: false runs every stage alone', () => {
  assert.deepEqual(tasks({ chaining: false }), ['validate', 'risk', 'ledger', 'webhook-events', 'webhook-alerts']);
});

test('materialize, external, another reader or a stage not keyed cut the chain there', () => {
  assert.deepEqual(tasks({ 'topics.validated.materialize': true }), ['validate', 'risk+ledger', 'webhook-events', 'webhook-alerts']);
  assert.deepEqual(tasks({ 'topics.scored.external': true }), ['validate+risk', 'ledger', 'webhook-events', 'webhook-alerts']);
  assert.deepEqual(tasks({ 'sinks.audit': { type: 'postgres', input: 'scored' } }), ['validate+risk', 'ledger', 'webhook-events', 'webhook-alerts']);
  assert.deepEqual(tasks({ 'stages.risk.ordering': 'none' }), ['validate', 'risk', 'ledger', 'webhook-events', 'webhook-alerts']);
});

test('a worker running part of a chain runs that part alone', () => {
  assert.deepEqual(tasks({}, ['validate']), ['validate']);
  assert.deepEqual(tasks({}, ['risk', 'ledger']), ['risk+ledger']);
  assert.deepEqual(tasks({}, ['validate', 'ledger']), ['validate', 'ledger']);
});
