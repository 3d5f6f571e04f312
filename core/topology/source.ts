// Maps a path in the parsed topology (["stages", "validate", "retry"]) back to a line and column
// of the YAML source, so every problem can name the place to fix.
import { isAlias, isMap, isNode, isScalar, isSeq } from 'yaml';
import type { Document, LineCounter, Node } from 'yaml';

export type TopologyPath = readonly (string | number)[];

/**
 * A problem found in the parsed data, before it has a position. `at` says what to point at:
 * the value at `path`, the key that names it (an unknown key, a duplicate name), or the mapping
 * at `path` itself (a key missing from it).
 */
export interface PathProblem {
  path: TopologyPath;
  at: 'value' | 'key' | 'mapping';
  message: string;
}

export interface Position {
  line: number;
  column: number;
}

const PLAIN_SEGMENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `stages.validate.retry.attempts`, `priorities[1].types[0]`; odd keys are quoted. */
export function formatPath(path: TopologyPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_SEGMENT.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

interface Step {
  key: Node | null;
  value: Node | null;
}

export class SourceLocator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  position(problem: PathProblem): Position {
    const steps = this.walk(problem.path);
    const reached = steps.length === problem.path.length + 1;
    const last = steps[steps.length - 1]!;
    if (reached) {
      if (problem.at === 'key' && last.key) return this.at(last.key);
      // An empty value (`dead_letter:` and nothing after) has no extent of its own: name its key.
      if (last.value && !isEmpty(last.value)) return this.at(last.value);
      if (last.key) return this.at(last.key);
    }
    // Fall back to the nearest ancestor the source has, by the key that names it.
    for (let i = steps.length - (reached ? 2 : 1); i >= 0; i--) {
      const step = steps[i]!;
      if (step.key) return this.at(step.key);
      if (step.value && !isEmpty(step.value)) return this.at(step.value);
    }
    return { line: 1, column: 1 };
  }

  /** The source nodes along `path`, as far as they exist; the first step is the document root. */
  private walk(path: TopologyPath): Step[] {
    const root = isNode(this.doc.contents) ? this.doc.contents : null;
    const steps: Step[] = [{ key: null, value: root }];
    let node: Node | null = root;
    for (const seg of path) {
      const current: Node | null | undefined = node && isAlias(node) ? node.resolve(this.doc) : node;
      let next: Step | undefined;
      if (isMap(current)) {
        const pair = current.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (pair) next = { key: isNode(pair.key) ? pair.key : null, value: isNode(pair.value) ? pair.value : null };
      } else if (isSeq(current) && typeof seg === 'number') {
        const item: unknown = current.items[seg];
        if (item !== undefined) next = { key: null, value: isNode(item) ? item : null };
      }
      if (!next) break;
      steps.push(next);
      node = next.value;
    }
    return steps;
  }

  private at(node: Node): Position {
    const { line, col } = this.lines.linePos(node.range?.[0] ?? 0);
    return { line, column: col };
  }
}

function isEmpty(node: Node): boolean {
  return !node.range || node.range[0] === node.range[1];
}
