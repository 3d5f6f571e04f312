// SQL only through parameters or COPY: a static scan of every non-test *.ts under ingest/, sinks/,
// core/ and cli/. For each `.query(…)` call, and each SQL sink below (COPY streams and the helpers
// that take SQL), the SQL argument must be built from constants only: string literals, template
// literals and `+` concatenations whose every part is a literal, a number, a constant declared with
// a constant initializer (in the file or imported from a project file, `ARRAY.join(', ')` of a
// literal array included), or an identifier quoted with ident() from core/postgres.ts. Values go in
// $n parameters. Anything else must be on the documented ALLOWLIST below, with its reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;
const DIRS = ['ingest', 'sinks', 'core', 'cli'];

/**
 * SQL arguments that are not constant but are safe, and why. Keyed "file::expression".
 * Identifiers need no entry: quote them with ident() (core/postgres.ts) and they pass.
 */
const ALLOWLIST: Record<string, string> = {
  'sinks/postgres/migrate.ts::m.sql': 'the text of a migration file shipped in sinks/postgres/migrations/*.sql, read from disk; never built from input',
  'sinks/postgres/batch-writer.ts::sql': "copyIn(client, sql, text)'s parameter: every copyIn(…) call site is checked as a SQL sink (argument 2)",
};

/** Calls whose argument N (0-based) is SQL, besides `.query(` (argument 0). */
const SQL_SINKS: { pattern: RegExp; arg: number }[] = [
  { pattern: /\bcopyStreams\.(?:from|to)\s*\(/g, arg: 0 },
  { pattern: /(?<!function\s+)(?<![.\w])copyIn\s*\(/g, arg: 1 },
];

interface File {
  rel: string;
  code: string;
}

function walk(dir: string, out: string[]): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
}

/** The source with comments blanked out (strings and templates kept as they are). */
function stripComments(src: string): string {
  let out = '';
  let i = 0;
  const stack: ('tpl' | 'brace')[] = [];
  while (i < src.length) {
    const c = src[i]!;
    const n = src[i + 1];
    const inTpl = stack[stack.length - 1] === 'tpl';
    if (inTpl) {
      if (c === '\\') {
        out += c + (n ?? '');
        i += 2;
      } else if (c === '`') {
        stack.pop();
        out += c;
        i++;
      } else if (c === '$' && n === '{') {
        stack.push('brace');
        out += '${';
        i += 2;
      } else {
        out += c;
        i++;
      }
      continue;
    }
    if (c === '/' && n === '/') {
      while (i < src.length && src[i] !== '\n') {
        out += ' ';
        i++;
      }
    } else if (c === '/' && n === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
    } else if (c === '`') {
      stack.push('tpl');
      out += c;
      i++;
    } else if (c === '{') {
      if (stack.length) stack.push('brace');
      out += c;
      i++;
    } else if (c === '}') {
      if (stack[stack.length - 1] === 'brace') stack.pop();
      out += c;
      i++;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Index just past the string, template or bracketed group that starts at `i`. */
function skip(code: string, i: number): number {
  const c = code[i]!;
  if (c === "'" || c === '"') {
    let j = i + 1;
    while (j < code.length && code[j] !== c) j += code[j] === '\\' ? 2 : 1;
    return j + 1;
  }
  if (c === '`') {
    let j = i + 1;
    while (j < code.length && code[j] !== '`') {
      if (code[j] === '\\') j += 2;
      else if (code[j] === '$' && code[j + 1] === '{') j = skip(code, j + 1);
      else j++;
    }
    return j + 1;
  }
  const close = ({ '(': ')', '[': ']', '{': '}' } as Record<string, string>)[c];
  if (close) {
    let j = i + 1;
    while (j < code.length && code[j] !== close) j = /['"`([{]/.test(code[j]!) ? skip(code, j) : j + 1;
    return j + 1;
  }
  return i + 1;
}

/** The top-level comma-separated arguments of the call whose "(" is at `open`. */
function args(code: string, open: number): string[] {
  const out: string[] = [];
  let start = open + 1;
  let j = open + 1;
  const end = skip(code, open) - 1;
  while (j < end) {
    if (code[j] === ',') {
      out.push(code.slice(start, j).trim());
      start = j + 1;
      j++;
    } else j = /['"`([{]/.test(code[j]!) ? skip(code, j) : j + 1;
  }
  const last = code.slice(start, end).trim();
  if (last) out.push(last);
  return out;
}

/** Splits `expr` at top-level occurrences of `sep` (a single character). */
function splitTop(expr: string, sep: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let j = 0;
  while (j < expr.length) {
    if (expr[j] === sep) {
      parts.push(expr.slice(start, j));
      start = j + 1;
      j++;
    } else j = /['"`([{]/.test(expr[j]!) ? skip(expr, j) : j + 1;
  }
  parts.push(expr.slice(start));
  return parts.map((p) => p.trim());
}

/** The `${…}` expressions of a template literal (backticks included in `tpl`). */
function interpolations(tpl: string): string[] {
  const out: string[] = [];
  let j = 1;
  while (j < tpl.length - 1) {
    if (tpl[j] === '\\') j += 2;
    else if (tpl[j] === '$' && tpl[j + 1] === '{') {
      const end = skip(tpl, j + 1);
      out.push(tpl.slice(j + 2, end - 1).trim());
      j = end;
    } else j++;
  }
  return out;
}

const files = new Map<string, File>();
function load(abs: string): File | undefined {
  const rel = relative(ROOT, abs);
  if (!files.has(rel)) {
    if (!existsSync(abs)) return undefined;
    files.set(rel, { rel, code: stripComments(readFileSync(abs, 'utf8')) });
  }
  return files.get(rel);
}

/** The initializer of `const name = …;` in `file`, or through a relative import. */
function resolveConst(file: File, name: string, depth: number): { file: File; init: string } | undefined {
  if (depth > 8) return undefined;
  const decl = new RegExp(`(?:^|[\\n;])\\s*(?:export\\s+)?const\\s+${name}\\b\\s*(?::[^=]+)?=\\s*`).exec(file.code);
  if (decl) {
    let j = decl.index + decl[0].length;
    const start = j;
    while (j < file.code.length && file.code[j] !== ';') j = /['"`([{]/.test(file.code[j]!) ? skip(file.code, j) : j + 1;
    return { file, init: file.code.slice(start, j).trim() };
  }
  for (const m of file.code.matchAll(/import\s*\{([^}]*)\}\s*from\s*'([^']+)'/g)) {
    if (!m[2]!.startsWith('.')) continue;
    for (const spec of m[1]!.split(',').map((s) => s.trim())) {
      const [orig, alias] = spec.replace(/^type\s+/, '').split(/\s+as\s+/);
      if ((alias ?? orig) === name) {
        const target = load(resolve(dirname(join(ROOT, file.rel)), m[2]!));
        return target ? resolveConst(target, orig!, depth + 1) : undefined;
      }
    }
  }
  return undefined;
}

/** Why `expr` (SQL text in `file`) is not provably constant; [] when it is. */
function problems(file: File, expr: string, depth = 0): string[] {
  let e = expr.trim().replace(/\s+as\s+const$/, '');
  while (e.startsWith('(') && skip(e, 0) === e.length) e = e.slice(1, -1).trim();
  if (ALLOWLIST[`${file.rel}::${e}`]) return [];
  if (depth > 10) return [`too deep: ${e.slice(0, 60)}`];
  if (/^'(?:[^'\\]|\\.)*'$/.test(e) || /^"(?:[^"\\]|\\.)*"$/.test(e) || /^-?\d+(\.\d+)?$/.test(e)) return [];
  if (e.startsWith('`') && skip(e, 0) === e.length) {
    return interpolations(e).flatMap((x) => (/^ident\(/.test(x) && skip(x, x.indexOf('(')) === x.length ? [] : problems(file, x, depth + 1)));
  }
  const plus = splitTop(e, '+');
  if (plus.length > 1) return plus.flatMap((p) => problems(file, p, depth + 1));
  if (e.startsWith('[') && skip(e, 0) === e.length) {
    return splitTop(e.slice(1, -1), ',')
      .filter(Boolean)
      .flatMap((x) => problems(file, x, depth + 1));
  }
  const join = /^([A-Za-z_$][\w$]*)\.join\((.*)\)$/s.exec(e);
  if (join) return [...problems(file, join[1]!, depth + 1), ...problems(file, join[2]! || "''", depth + 1)];
  const copy = /^copyStreams\.(?:from|to)\((.*)\)$/s.exec(e);
  if (copy) return problems(file, copy[1]!, depth + 1);
  if (e.startsWith('{') && skip(e, 0) === e.length) {
    const text = /\btext\s*:\s*([^,}]+)/.exec(e)?.[1];
    return text ? problems(file, text, depth + 1) : [`a query config without text: ${e.slice(0, 80)}`];
  }
  if (/^[A-Za-z_$][\w$]*$/.test(e)) {
    const found = resolveConst(file, e, 0);
    if (!found) return [`${e} is not a constant (declare it const with a constant value, quote identifiers with ident(), pass values as $n parameters)`];
    return problems(found.file, found.init, depth + 1).map((p) => (found.file === file ? p : `${p} (in ${found.file.rel})`));
  }
  return [`${e.slice(0, 80)} is built at run time`];
}

interface Site {
  file: string;
  line: number;
  sql: string;
  problems: string[];
}

function scan(): Site[] {
  const paths: string[] = [];
  for (const d of DIRS) walk(join(ROOT, d), paths);
  const sites: Site[] = [];
  for (const p of paths.sort()) {
    const file = load(p)!;
    const { code } = file;
    const lineOf = (i: number) => code.slice(0, i).split('\n').length;
    const at = (open: number, n: number, from: number) => {
      const a = args(code, open)[n];
      if (a === undefined) return;
      sites.push({ file: file.rel, line: lineOf(from), sql: a.replace(/\s+/g, ' ').slice(0, 120), problems: problems(file, a) });
    };
    // (not Hono's c.req.query('name'): that reads the URL)
    for (const m of code.matchAll(/(?<!\breq)\.query\s*(?=[<(])/g)) {
      let j = m.index + m[0].length;
      if (code[j] === '<') {
        let depth = 0;
        for (; j < code.length; j++) {
          if (code[j] === '<') depth++;
          else if (code[j] === '>' && code[j - 1] !== '=' && --depth === 0) break;
        }
        j++;
        while (/\s/.test(code[j]!)) j++;
      }
      if (code[j] === '(') at(j, 0, m.index);
    }
    for (const { pattern, arg } of SQL_SINKS) for (const m of code.matchAll(pattern)) at(m.index + m[0].length - 1, arg, m.index);
  }
  return sites;
}

test('SQL is built from constants only: values go in $n parameters or COPY, identifiers through ident()', (t) => {
  const sites = scan();
  t.diagnostic(`${sites.length} SQL call sites in ${new Set(sites.map((s) => s.file)).size} files under ${DIRS.join(', ')}/`);
  if (process.env.SQL_SCAN_VERBOSE) for (const s of sites) t.diagnostic(`${s.problems.length ? '✗' : '✓'} ${s.file}:${s.line} ${s.sql}`);
  assert.ok(sites.length >= 10, `the scan found only ${sites.length} query calls: is it still finding them?`);
  assert.ok(
    sites.some((s) => s.file === 'core/api-keys.ts'),
    'the key store queries were seen',
  );
  const bad = sites.filter((s) => s.problems.length).map((s) => `${s.file}:${s.line}  ${s.sql}\n    ${s.problems.join('\n    ')}`);
  assert.deepEqual(bad, [], `SQL built from non-constant parts (${bad.length}):\n${bad.join('\n')}`);
});

test('the scanner catches what it is for (self-check on inline samples)', () => {
  const sample = (code: string) => {
    const rel = `__sample_${files.size}.ts`;
    files.set(rel, { rel, code: stripComments(code) });
    const file = files.get(rel)!;
    const open = file.code.indexOf('.query(') + '.query'.length;
    return problems(file, args(file.code, open)[0]!);
  };
  assert.deepEqual(sample(`const T = 'x'; db.query(\`SELECT \${T}\`, [])`), []);
  assert.deepEqual(sample(`db.query(\`CREATE SCHEMA \${ident(name)}\`)`), []);
  assert.deepEqual(sample(`const C = ['a', 'b'] as const; const COLS = C.join(', '); db.query(\`SELECT \${COLS} FROM t WHERE id = $1\`, [id])`), []);
  assert.notDeepEqual(sample("db.query(`SELECT * FROM t WHERE id = '${id}'`)"), []);
  assert.notDeepEqual(sample('db.query("SELECT * FROM t WHERE id = " + id)'), []);
  assert.notDeepEqual(sample('db.query(`ALTER TABLE t DETACH PARTITION "${name}"`)'), []);
  assert.notDeepEqual(sample('let q = "SELECT 1"; q += x; db.query(q)'), []);
  assert.notDeepEqual(sample('db.query({ text: `SELECT ${x}`, values: [] })'), []);
});
