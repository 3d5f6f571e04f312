// Byte sizes in topology.yaml: an integer of bytes, or a string like "512kb", "64mb", "2gb"
// (binary multiples: 1kb = 1024 bytes, as Redis's own maxmemory reads them).
const UNIT_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
export const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)$/i;

export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  const m = SIZE_PATTERN.exec(value.trim());
  if (!m) return undefined;
  const bytes = Math.round(Number(m[1]) * UNIT_BYTES[m[2]!.toLowerCase()]!);
  return bytes > 0 ? bytes : undefined;
}

export function formatSize(bytes: number): string {
  for (const [unit, size] of [
    ['gb', 1024 ** 3],
    ['mb', 1024 ** 2],
    ['kb', 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}b`;
}
