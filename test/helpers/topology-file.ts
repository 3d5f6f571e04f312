// A test's own topology file: the shipped topology.yaml with some settings changed.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { parseTopology } from '../../core/topology/load.ts';
import type { Topology } from '../../core/topology/schema.ts';

/** The payments pipeline: validate → risk → ledger → sink. */
export const SHIPPED_TOPOLOGY = new URL('../../topology.yaml', import.meta.url).pathname;
/** The engine alone: validate → sink (engine tests: any mix of events flows through). */
export const ENGINE_TOPOLOGY = new URL('../fixtures/engine-topology.yaml', import.meta.url).pathname;

/** A change that removes the key (writeTopology). */
export const REMOVE: unique symbol = Symbol('remove');

/** The shipped file's merchant webhooks parts (two stages, their topic, the sink), for tests about something else. */
export const WITHOUT_WEBHOOKS: Record<string, unknown> = {
  'stages.webhook-events': REMOVE,
  'stages.webhook-alerts': REMOVE,
  'sinks.webhooks': REMOVE,
  'topics.webhook_events': REMOVE,
};

/**
 * A topology file of the test's own: `base` (the engine topology unless told) with `changes`,
 * which map dotted paths (stages.validate.batch) to new values.
 */
export function writeTopology(changes: Record<string, unknown>, base: string = ENGINE_TOPOLOGY): { path: string; topology: Topology } {
  const doc = parseDocument(readFileSync(base, 'utf8'));
  for (const [path, value] of Object.entries(changes)) {
    if (value === REMOVE) doc.deleteIn(path.split('.'));
    else doc.setIn(path.split('.'), value);
  }
  const text = doc.toString();
  const path = join(mkdtempSync(join(tmpdir(), 'rill-topology-')), 'topology.yaml');
  writeFileSync(path, text);
  return { path, topology: parseTopology(text, path) };
}

/** The flaky test processor (test/fixtures/processors/flaky.ts): fails events as their metadata.fail says. */
export const FLAKY_PROCESSOR = new URL('../fixtures/processors/flaky.ts', import.meta.url).pathname;

/**
 * Changes for writeTopology on the engine topology: a stage `flaky` between validate and the
 * sink (validate → validated → flaky → checked → postgres). An event with metadata.fail = "fatal"
 * is dead-lettered by it (FatalError); metadata.fail = N fails its first N tries (counted across
 * processes), so with N ≥ `attempts` it is dead-lettered and a redrive then goes through: a dead
 * letter whose cause is gone. Merchant mistakes no longer make dead letters (they end `failed`).
 */
export function flakyStage(attempts = 2): Record<string, unknown> {
  return {
    'topics.checked': { partitions: 8, retention: { max_age: '7d', max_len: 1_000_000 } },
    'stages.flaky': {
      input: 'validated',
      processor: FLAKY_PROCESSOR,
      output: 'checked',
      ordering: 'none',
      concurrency: 1,
      batch: 100,
      retry: { attempts, base: '10ms', factor: 2, max: '50ms', jitter: 'none' },
      visibility_timeout: '30s',
      dead_letter: { max_len: 100_000 },
    },
    'sinks.postgres.input': 'checked',
  };
}
