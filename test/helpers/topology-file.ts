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

/**
 * A topology file of the test's own: `base` (the engine topology unless told) with `changes`,
 * which map dotted paths (stages.validate.batch) to new values.
 */
export function writeTopology(changes: Record<string, unknown>, base: string = ENGINE_TOPOLOGY): { path: string; topology: Topology } {
  const doc = parseDocument(readFileSync(base, 'utf8'));
  for (const [path, value] of Object.entries(changes)) doc.setIn(path.split('.'), value);
  const text = doc.toString();
  const path = join(mkdtempSync(join(tmpdir(), 'rill-topology-')), 'topology.yaml');
  writeFileSync(path, text);
  return { path, topology: parseTopology(text, path) };
}
