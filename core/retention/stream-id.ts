// Stream entry ids (`<ms>-<seq>`) compared and stepped exactly: both parts are 64-bit, past what
// a JS number holds, so BigInt.
const ID = /^(\d+)-(\d+)$/;
const MAX_SEQ = (1n << 64n) - 1n;

function parts(id: string): [bigint, bigint] {
  const m = ID.exec(id);
  if (!m) throw new Error(`not a stream entry id: "${id}"`);
  return [BigInt(m[1]!), BigInt(m[2]!)];
}

export function compareIds(a: string, b: string): number {
  const [am, as] = parts(a);
  const [bm, bs] = parts(b);
  return am < bm ? -1 : am > bm ? 1 : as < bs ? -1 : as > bs ? 1 : 0;
}

/** The smallest id after `id`: XTRIM MINID with it removes `id` and everything before. */
export function nextId(id: string): string {
  const [ms, seq] = parts(id);
  return seq === MAX_SEQ ? `${ms + 1n}-0` : `${ms}-${seq + 1n}`;
}

export function minId(a: string, b: string): string {
  return compareIds(a, b) <= 0 ? a : b;
}

export function maxId(a: string, b: string): string {
  return compareIds(a, b) >= 0 ? a : b;
}

/** The entry's time (unix ms). */
export function idMs(id: string): number {
  return Number(parts(id)[0]);
}
