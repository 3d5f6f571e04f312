// Loads topology.yaml: YAML syntax, then the schema, then the cross-cutting rules. Every problem
// names file:line:col and what was expected, and all of them are reported at once.
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import type { YAMLError } from 'yaml';
import { TopologyError } from '../errors.ts';
import type { TopologyProblem } from '../errors.ts';
import { checkTopology } from './check.ts';
import { explainIssues } from './issues.ts';
import { TopologySchema } from './schema.ts';
import type { Topology } from './schema.ts';
import { SourceLocator } from './source.ts';
import type { PathProblem } from './source.ts';

export function loadTopology(path: string): Topology {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a file' : (err as Error).message;
    throw new TopologyError([{ file: path, line: 1, column: 1, message: `cannot read topology: ${why}` }]);
  }
  return parseTopology(text, path);
}

export function parseTopology(text: string, file: string): Topology {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, keepSourceTokens: true, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number, message: string): TopologyProblem => {
    const { line, col } = lines.linePos(offset);
    return { file, line, column: col, message };
  };

  // Warnings too (an unresolved tag, say): a value read differently than written is no better.
  const yamlProblems = [...doc.errors, ...doc.warnings].map((e: YAMLError) => at(e.pos[0], `invalid YAML: ${e.message}`));
  if (yamlProblems.length) throw new TopologyError(sortProblems(yamlProblems));

  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // Only an alias bomb (too many alias expansions) gets here.
    throw new TopologyError([at(0, `invalid YAML: ${(err as Error).message}`)]);
  }

  const locator = new SourceLocator(doc, lines);
  const locate = (p: PathProblem): TopologyProblem => ({ file, ...locator.position(p), message: p.message });

  const parsed = TopologySchema.safeParse(data);
  if (!parsed.success) {
    throw new TopologyError(sortProblems(explainIssues(parsed.error.issues, data, TopologySchema).map(locate)));
  }
  const semantic = checkTopology(parsed.data);
  if (semantic.length) throw new TopologyError(sortProblems(semantic.map(locate)));
  return parsed.data;
}

/** File order, as an editor would show them; the sort is stable for problems on one spot. */
function sortProblems(problems: TopologyProblem[]): TopologyProblem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.column - b.column);
}
