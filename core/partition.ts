// Partition of a key: FNV-1a (32-bit) of its UTF-8 bytes, mod the partition count. Stable across
// processes and versions: changing it would reorder merchants' events.
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const encoder = new TextEncoder();

export function fnv1a(key: string): number {
  let h = FNV_OFFSET;
  for (const byte of encoder.encode(key)) {
    h ^= byte;
    h = Math.imul(h, FNV_PRIME) >>> 0;
  }
  return h >>> 0;
}

export function partitionOf(key: string, partitions: number): number {
  return fnv1a(key) % partitions;
}
