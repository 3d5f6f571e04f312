// Transaction ids: `tx_` + a ULID (48-bit ms timestamp, 80 random bits, Crockford base32).
// Sorting ids sorts by acceptance time (to the ms), which keeps Postgres index inserts local.
import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const RANDOM_BYTES = 10;

// One getrandom() call per ~400 ids instead of one per id.
const pool = Buffer.alloc(4096);
let offset = pool.length;

function randomBytes10(): Buffer {
  if (offset + RANDOM_BYTES > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = pool.subarray(offset, offset + RANDOM_BYTES);
  offset += RANDOM_BYTES;
  return out;
}

export function newTxId(now: number = Date.now()): string {
  return `tx_${encodeTime(now)}${encodeRandom(randomBytes10())}`;
}

export const TX_ID_PATTERN = /^tx_[0-9A-HJKMNP-TV-Z]{26}$/;

function encodeTime(ms: number): string {
  let t = ms;
  let s = '';
  for (let i = 0; i < 10; i++) {
    s = ALPHABET[t % 32]! + s;
    t = Math.floor(t / 32);
  }
  return s;
}

// 80 bits → 16 symbols of 5 bits, most significant first.
function encodeRandom(bytes: Buffer): string {
  let s = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      s += ALPHABET[(acc >> bits) & 31]!;
    }
    acc &= (1 << bits) - 1;
  }
  return s;
}

/** The accept time (unix ms) a tx id encodes, or undefined for a malformed id. */
export function txIdTime(id: string): number | undefined {
  if (!TX_ID_PATTERN.test(id)) return undefined;
  let ms = 0;
  for (const ch of id.slice(3, 13)) ms = ms * 32 + ALPHABET.indexOf(ch);
  return ms <= 2 ** 48 - 1 ? ms : undefined;
}

/** Bytes of a tx id's ULID in binary: 6 of time, 10 random. */
export const TX_ID_BYTES = 16;

const VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) VALUE[ALPHABET.charCodeAt(i)] = i;

function symbol(id: string, i: number): number {
  const v = VALUE[id.charCodeAt(i)] ?? -1;
  if (v < 0) throw new Error(`not a tx id: ${id}`);
  return v;
}

/** The tx id's ULID as its 16 bytes, written into `out` at `at` (the compact idempotency record). */
export function txIdBytes(txId: string, out: Buffer, at: number): void {
  if (txId.length !== 29 || !txId.startsWith('tx_')) throw new Error(`not a tx id: ${txId}`);
  let ms = 0;
  for (let i = 3; i < 13; i++) ms = ms * 32 + symbol(txId, i);
  out.writeUIntBE(ms, at, 6);
  let acc = 0;
  let bits = 0;
  let o = at + 6;
  for (let i = 13; i < 29; i++) {
    acc = (acc << 5) | symbol(txId, i);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
}

/** The tx id whose 16 ULID bytes are given as 32 hex digits (how the append script answers them). */
export function txIdFromHex(hex: string): string {
  const bytes = Buffer.from(hex, 'hex');
  if (bytes.length !== TX_ID_BYTES) throw new Error(`not a ULID: ${hex}`);
  return `tx_${encodeTime(bytes.readUIntBE(0, 6))}${encodeRandom(bytes.subarray(6))}`;
}
