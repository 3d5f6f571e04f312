// A test's own topology file: the shipped topology.yaml with some settings changed.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { parseTopology } from '../../core/topology/load.ts';
import type { Topology } from '../../core/topology/schema.ts';

export const SHIPPED_TOPOLOGY = new URL('../../topology.yaml', import.meta.url).pathname;

/** `changes` maps dotted paths (stages.validate.batch) to new values. */
export function writeTopology(changes: Record<string, unknown>): { path: string; topology: Topology } {
  const doc = parseDocument(readFileSync(SHIPPED_TOPOLOGY, 'utf8'));
  for (const [path, value] of Object.entries(changes)) doc.setIn(path.split('.'), value);
  const text = doc.toString();
  const path = join(mkdtempSync(join(tmpdir(), 'rill-topology-')), 'topology.yaml');
  writeFileSync(path, text);
  return { path, topology: parseTopology(text, path) };
}
