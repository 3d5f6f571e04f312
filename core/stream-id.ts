// Redis stream entry ids (`<ms>-<seq>`): parsed, compared and stepped exactly. Both parts are
// 64-bit, past what a JS number holds, so stepping uses BigInt; comparing canonical ids (as Redis
// writes them) needs no parsing at all, which keeps merging many streams cheap.

export const MAX_SEQ = 18446744073709551615n; // 2^64 - 1
const ID = /^(\d{1,20})-(\d{1,20})$/;

/** `<ms>-<seq>` with both parts within 64 bits. */
export function isEntryId(s: string): boolean {
  const m = ID.exec(s);
  return m !== null && BigInt(m[1]!) <= MAX_SEQ && BigInt(m[2]!) <= MAX_SEQ;
}

/** The two parts of an id; callers check user input with isEntryId first. */
export function idParts(id: string): [bigint, bigint] {
  const m = ID.exec(id);
  if (!m) throw new TypeError(`not a stream entry id: "${id}"`);
  return [BigInt(m[1]!), BigInt(m[2]!)];
}

/** `<ms>-<seq>` without leading zeros, as Redis writes ids. */
export function canonicalId(id: string): string {
  const [ms, seq] = idParts(id);
  return `${ms}-${seq}`;
}

/** Order of two canonical ids (as Redis returns them, or from canonicalId). */
export function compareIds(a: string, b: string): number {
  const ia = a.indexOf('-');
  const ib = b.indexOf('-');
  if (ia !== ib) return ia - ib; // a longer ms part is a larger number
  for (let i = 0; i < ia; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  const la = a.length - ia;
  const lb = b.length - ib;
  if (la !== lb) return la - lb;
  for (let i = ia + 1; i < a.length; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  return 0;
}

/** The largest id before `id` (0-0 stays 0-0): "read strictly after it" then starts at `id`. */
export function idBefore(id: string): string {
  const [ms, seq] = idParts(id);
  if (seq > 0n) return `${ms}-${seq - 1n}`;
  if (ms > 0n) return `${ms - 1n}-${MAX_SEQ}`;
  return '0-0';
}

/** The smallest id after `id`: XTRIM MINID with it removes `id` and everything before. */
export function nextId(id: string): string {
  const [ms, seq] = idParts(id);
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
  return Number(idParts(id)[0]);
}
