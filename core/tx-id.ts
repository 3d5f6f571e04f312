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
