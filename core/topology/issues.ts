// Turns zod issues into messages a person editing topology.yaml can act on: what was expected
// (read from the schema itself, so the text never drifts from the rules) and what was found.
import { z } from 'zod';
import { formatPath } from './source.ts';
import type { PathProblem, TopologyPath } from './source.ts';

type Issue = z.core.$ZodIssue;

export function explainIssues(issues: readonly Issue[], data: unknown, schema: z.ZodType): PathProblem[] {
  const problems = issues.flatMap((issue) => explain(issue, data, schema));
  // `partitons: 8` also leaves `partitions` missing; the typo is the one thing to fix, so the
  // missing key it nearly spells isn't reported again.
  const typos = new Set(problems.flatMap((p) => (p.typoOf ? [slot(p.path.slice(0, -1), p.typoOf)] : [])));
  return problems.filter((p) => !(p.missing && typos.has(slot(p.path, p.missing)))).map(({ path, at, message }) => ({ path, at, message }));
}

interface Explained extends PathProblem {
  /** An unknown key: the known key it nearly spells. */
  typoOf?: string;
  /** A missing-key problem: the key that is missing. */
  missing?: string;
}

const slot = (path: TopologyPath, name: string) => JSON.stringify([...path, name]);

function explain(issue: Issue, data: unknown, root: z.ZodType): Explained[] {
  const path = issue.path.map((p) => (typeof p === 'number' ? p : String(p)));
  const value = valueAt(data, path);
  const schema = schemaAt(root, path, data);
  const prefix = path.length ? `${formatPath(path)}: ` : '';
  const found = (expected: string): PathProblem[] => [{ path, at: 'value', message: `${prefix}expected ${expected}, got ${show(value)}` }];

  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
      return issue.keys.map((k) => {
        const near = nearest(k, known);
        const hint = near ? ` (did you mean "${near}"?)` : known.length ? ` (allowed: ${known.join(', ')})` : '';
        return { path: [...path, k], at: 'key' as const, message: `${prefix}unknown key "${k}"${hint}`, ...(near ? { typoOf: near } : {}) };
      });
    }
    case 'invalid_key': {
      const parent = path.slice(0, -1);
      const inner = issue.issues[0]?.message ?? 'a valid name';
      return [
        { path, at: 'key', message: `${parent.length ? `${formatPath(parent)}: ` : ''}invalid name "${String(path[path.length - 1])}": expected ${inner}` },
      ];
    }
    case 'invalid_type': {
      const parent = path.slice(0, -1);
      const key = path[path.length - 1];
      if (value === undefined && typeof key === 'string' && isMapping(valueAt(data, parent))) {
        const where = parent.length ? `${formatPath(parent)}: ` : '';
        return [{ path: parent, at: 'mapping', message: `${where}missing required key "${key}"`, missing: key }];
      }
      if (!path.length && (value === null || value === undefined)) {
        return [{ path, at: 'value', message: `empty topology: expected a mapping with keys ${Object.keys(shapeOf(root)).join(', ')}` }];
      }
      return found(expectedOf(schema) ?? article(issue.expected));
    }
    case 'too_small':
    case 'too_big':
      if (issue.origin === 'number' || issue.origin === 'int') return found(bound(issue, schema));
      if (issue.origin === 'array')
        return found(`a list of ${issue.code === 'too_small' ? 'at least' : 'at most'} ${issue.code === 'too_small' ? issue.minimum : issue.maximum} item(s)`);
      if (issue.origin === 'string' && issue.code === 'too_small' && Number(issue.minimum) === 1) return found('a non-empty string');
      return found(issue.message);
    case 'invalid_value':
      return found(issue.values.length === 1 ? literal(issue.values[0]) : `one of ${issue.values.map(literal).join(', ')}`);
    case 'invalid_format':
      // Our regex checks carry their own description ("a topic name: lowercase letters, ...").
      return found(isDefaultMessage(issue.message) ? `a string matching ${issue.pattern ?? issue.format}` : issue.message);
    case 'invalid_union': {
      // a discriminated union (sinks: postgres | alerts) names its tags
      const tags = (issue as { options?: unknown[] }).options;
      if (Array.isArray(tags) && tags.length) {
        const parent = path.slice(0, -1);
        const key = path[path.length - 1];
        if (value === undefined && typeof key === 'string') {
          const where = parent.length ? `${formatPath(parent)}: ` : '';
          return [{ path: parent, at: 'mapping', message: `${where}missing required key "${key}" (one of ${tags.map(literal).join(', ')})`, missing: key }];
        }
        return found(`one of ${tags.map(literal).join(', ')}`);
      }
      return found(expectedOf(schema) ?? 'a value of another type');
    }
    case 'custom': {
      // a rule between fields (a refinement): the value is fine on its own, the message says why not here
      if (value !== undefined && schema?.safeParse(value).success) return [{ path, at: 'value', message: `${prefix}${issue.message}` }];
      const expected = expectedOf(schema) ?? /expected (.+)$/.exec(issue.message)?.[1];
      return expected ? found(expected) : [{ path, at: 'value', message: `${prefix}${issue.message}` }];
    }
    default:
      return [{ path, at: 'value', message: `${prefix}${issue.message}` }];
  }
}

/** `expected an integer >= 1`: the violated bound, worded for integers when the schema wants one. */
function bound(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig, schema: z.ZodType | undefined): string {
  const int = schema instanceof z.ZodNumber && schema.format === 'safeint';
  const kind = int ? 'an integer' : 'a number';
  let limit = Number(issue.code === 'too_small' ? issue.minimum : issue.maximum);
  let inclusive = issue.inclusive ?? true;
  if (int && !inclusive) {
    limit += issue.code === 'too_small' ? 1 : -1;
    inclusive = true;
  }
  const op = issue.code === 'too_small' ? (inclusive ? '>=' : '>') : inclusive ? '<=' : '<';
  return `${kind} ${op} ${limit}`;
}

/** What a schema accepts, in words; undefined when there's nothing better than zod's own type name. */
function expectedOf(schema: z.ZodType | undefined): string | undefined {
  if (!schema) return undefined;
  if (schema instanceof z.ZodNumber) return numberRange(schema);
  if (schema instanceof z.ZodEnum) return `one of ${schema.options.map(literal).join(', ')}`;
  if (schema instanceof z.ZodLiteral) return [...schema.values].map(literal).join(' or ');
  if (schema instanceof z.ZodObject || schema instanceof z.ZodRecord) return 'a mapping';
  if (schema instanceof z.ZodArray) return 'a list';
  if (schema instanceof z.ZodBoolean) return 'true or false';
  if (schema instanceof z.ZodString || schema instanceof z.ZodPipe) {
    // Strings with a pattern and transformed values (durations) describe themselves in the issue
    // they raise; an empty string brings it out.
    const probe = schema.safeParse('');
    const first = probe.success ? undefined : probe.error.issues[0];
    if (first?.code === 'invalid_format' && !isDefaultMessage(first.message)) return first.message;
    if (first?.code === 'custom') return /expected (.+)$/.exec(first.message)?.[1];
    if (schema instanceof z.ZodString) return first?.code === 'too_small' ? 'a non-empty string' : 'a string';
  }
  return undefined;
}

function numberRange(schema: z.ZodNumber): string {
  const int = schema.format === 'safeint';
  let min: number | undefined;
  let max: number | undefined;
  for (const check of schema.def.checks ?? []) {
    const def: object = check._zod.def;
    if (!('value' in def) || typeof def.value !== 'number') continue;
    const inclusive = !('inclusive' in def) || def.inclusive !== false;
    const step = int && !inclusive ? 1 : 0;
    if (check._zod.def.check === 'greater_than') min = def.value + step;
    if (check._zod.def.check === 'less_than') max = def.value - step;
  }
  const kind = int ? 'an integer' : 'a number';
  if (min !== undefined && max !== undefined) return `${kind} from ${min} to ${max}`;
  if (min !== undefined) return `${kind} >= ${min}`;
  if (max !== undefined) return `${kind} <= ${max}`;
  return kind;
}

/** The schema that validates the value at `path`, looking through defaults, optionals and pipes. */
function schemaAt(root: z.ZodType, path: TopologyPath, data?: unknown): z.ZodType | undefined {
  let schema: z.ZodType | undefined = unwrap(root);
  for (const [i, seg] of path.entries()) {
    if (schema instanceof z.ZodDiscriminatedUnion) schema = optionFor(schema, valueAt(data, path.slice(0, i)));
    if (schema instanceof z.ZodObject) schema = typeof seg === 'string' ? (shapeOf(schema)[seg] as z.ZodType | undefined) : undefined;
    else if (schema instanceof z.ZodRecord) schema = schema.valueType as z.ZodType;
    else if (schema instanceof z.ZodArray) schema = schema.element as z.ZodType;
    else return undefined;
    schema = schema && unwrap(schema);
  }
  if (schema instanceof z.ZodDiscriminatedUnion) schema = optionFor(schema, valueAt(data, path));
  return schema;
}

/** The option of a discriminated union (sinks: postgres | alerts) that the value's discriminator picks. */
function optionFor(union: z.ZodDiscriminatedUnion, value: unknown): z.ZodType | undefined {
  const key = union.def.discriminator;
  const tag = isMapping(value) ? value[key] : undefined;
  return (union.options as z.ZodType[]).find((o) => {
    const d = shapeOf(o)[key];
    return d instanceof z.ZodLiteral && d.values.has(tag as never);
  });
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodPrefault) {
    s = s.unwrap() as z.ZodType;
  }
  return s;
}

function shapeOf(schema: z.ZodType): Record<string, z.ZodType> {
  const s = unwrap(schema);
  return s instanceof z.ZodObject ? (s.shape as Record<string, z.ZodType>) : {};
}

function valueAt(data: unknown, path: TopologyPath): unknown {
  let v = data;
  for (const seg of path) {
    if (Array.isArray(v) && typeof seg === 'number') v = v[seg];
    else if (isMapping(v)) v = Object.hasOwn(v, seg) ? v[seg] : undefined;
    else return undefined;
  }
  return v;
}

function isMapping(v: unknown): v is Record<string | number, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The value as found in the file, short. */
function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  if (Array.isArray(value)) return value.length ? `a list of ${value.length}` : 'an empty list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

function literal(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function article(type: string): string {
  const names: Record<string, string> = {
    object: 'a mapping',
    record: 'a mapping',
    array: 'a list',
    int: 'an integer',
    boolean: 'true or false',
  };
  return names[type] ?? `a ${type}`;
}

// zod's built-in messages start "Invalid ..."; ours describe the expected value.
function isDefaultMessage(message: string): boolean {
  return /^Invalid\b/.test(message);
}

/** The known key an unknown one nearly spells (`partitons` → `partitions`), if any. */
function nearest(key: string, known: readonly string[]): string | undefined {
  return known
    .map((k) => ({ k, d: distance(key.toLowerCase(), k) }))
    .filter(({ k, d }) => d <= Math.max(1, Math.floor(k.length / 3)))
    .sort((a, b) => a.d - b.d)[0]?.k;
}

/** Levenshtein distance; keys are short, so the plain O(n·m) table is fine. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
