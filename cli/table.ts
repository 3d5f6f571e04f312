// A plain-text table for the terminal: columns padded to their widest cell, `right` columns
// right-aligned (numbers). One home for status, dlq and the dev demo.
export function table(head: readonly string[], rows: readonly (readonly string[])[], right: readonly number[] = []): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const cell = (c: string, i: number, last: boolean) => (right.includes(i) ? c.padStart(widths[i]!) : last ? c : c.padEnd(widths[i]!));
  const line = (cells: readonly string[]) => cells.map((c, i) => cell(c, i, i === cells.length - 1)).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}
