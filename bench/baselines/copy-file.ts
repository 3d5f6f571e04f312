// Reading a COPY text-format file (tab-separated, \N for null, backslash escapes): what psql's
// \copy TO writes, and the rows the INSERT baseline sends.
const UNESCAPE: Record<string, string> = { '\\': '\\', t: '\t', n: '\n', r: '\r', b: '\b', f: '\f', v: '\v' };

export function parseCopyLine(line: string): (string | null)[] {
  return line.split('\t').map((f) => (f === '\\N' ? null : f.includes('\\') ? f.replace(/\\(.)/g, (_, c: string) => UNESCAPE[c] ?? c) : f));
}

export function parseCopyText(text: string): (string | null)[][] {
  const out: (string | null)[][] = [];
  for (const line of text.split('\n')) if (line) out.push(parseCopyLine(line));
  return out;
}
