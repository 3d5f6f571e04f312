// COPY ... FROM STDIN (FORMAT text) encoding: tab-separated columns, \N for null, and backslash,
// tab, newline and carriage return escaped. Built as one string per batch: one write, no per-row stream.
export type CopyValue = string | number | null | undefined;

const SPECIAL = /[\\\t\n\r]/;
const SPECIAL_ALL = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

export function copyField(v: CopyValue): string {
  if (v === null || v === undefined) return '\\N';
  const s = typeof v === 'number' ? String(v) : v;
  return SPECIAL.test(s) ? s.replace(SPECIAL_ALL, (c) => ESCAPES[c]!) : s;
}

export function copyRows(rows: readonly (readonly CopyValue[])[]): string {
  let out = '';
  for (const row of rows) {
    out += row.map(copyField).join('\t');
    out += '\n';
  }
  return out;
}
