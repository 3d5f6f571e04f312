// API keys (design §3): `rk_<key id>_<secret>`. Postgres keeps only SHA-256(secret); the id finds
// the row and the hashes are compared in constant time. A secret is 256 random bits, so a plain
// (unsalted, fast) hash is enough: there is nothing to brute-force.
//
// The hot path must not query Postgres per request, so rows are cached for `ttlMs` (unknown ids
// for `negativeTtlMs`), concurrent misses for one id share one query, and when Postgres is down a
// known key keeps working for `maxStaleMs`. The price: a revoked key may work for up to `ttlMs`
// on each ingest process (call `invalidate` where the revocation happens in-process).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { QueryResult, QueryResultRow } from 'pg';
import { MERCHANT_ID_PATTERN } from './event.ts';

/** The minimal part of a pg Pool used here (a test can count or fail queries). */
export interface SqlRunner {
  query<R extends QueryResultRow>(text: string, values: unknown[]): Promise<QueryResult<R>>;
}

export type Principal = { keyId: string; scope: 'merchant'; merchantId: string } | { keyId: string; scope: 'tap' } | { keyId: string; scope: 'operator' };

/** A merchant's key, or a key of a scope no merchant owns: tap (read-only SSE) or operator (the console). */
export type KeySpec = { merchantId: string } | { scope: 'tap' | 'operator' };

const KEY_ID_BYTES = 8;
const SECRET_BYTES = 32;
// hex id (no "_"), then base64url secret (which may contain "_")
const API_KEY = /^rk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export function parseApiKey(token: string): { keyId: string; secret: string } | undefined {
  const m = API_KEY.exec(token);
  return m ? { keyId: m[1]!, secret: m[2]! } : undefined;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Create a key and return its plaintext: the only time it exists outside the caller's hands. */
export async function createApiKey(db: SqlRunner, spec: KeySpec): Promise<string> {
  const merchantId = 'merchantId' in spec ? spec.merchantId : null;
  if (merchantId !== null && !MERCHANT_ID_PATTERN.test(merchantId)) {
    throw new Error(`merchant id must match ${MERCHANT_ID_PATTERN}, got "${merchantId}"`);
  }
  const keyId = randomBytes(KEY_ID_BYTES).toString('hex');
  const secret = randomBytes(SECRET_BYTES).toString('base64url');
  await db.query('INSERT INTO api_keys (key_id, secret_hash, merchant_id, scope) VALUES ($1, $2, $3, $4)', [
    keyId,
    sha256(secret),
    merchantId,
    'scope' in spec ? spec.scope : 'merchant',
  ]);
  return `rk_${keyId}_${secret}`;
}

/** Revoke by id (or a full key); true when a live key was revoked. */
export async function revokeApiKey(db: SqlRunner, keyIdOrKey: string): Promise<boolean> {
  const keyId = parseApiKey(keyIdOrKey)?.keyId ?? keyIdOrKey;
  const res = await db.query('UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL', [keyId]);
  return (res.rowCount ?? 0) > 0;
}

interface KeyRow extends QueryResultRow {
  secret_hash: Buffer;
  merchant_id: string | null;
  scope: string;
  revoked: boolean;
}

type KeyRecord = { hash: Buffer; principal: Principal; revoked: boolean } | null;

interface CacheEntry {
  record: KeyRecord;
  fetchedAt: number;
  expiresAt: number;
}

export interface KeyStoreOptions {
  ttlMs?: number;
  negativeTtlMs?: number;
  /** How long a cached key may still be used while Postgres cannot be reached. */
  maxStaleMs?: number;
  /** Bound on cached ids, so random ids cannot grow memory without limit. */
  maxEntries?: number;
  now?: () => number;
}

export class KeyStore {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<KeyRecord>>();
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly maxStaleMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly db: SqlRunner,
    opts: KeyStoreOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.negativeTtlMs = opts.negativeTtlMs ?? 5_000;
    this.maxStaleMs = opts.maxStaleMs ?? 300_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /**
   * The principal of a bearer token, or undefined for a malformed, unknown, revoked or wrong key.
   * Rejects only when the key cannot be checked (Postgres down and nothing usable cached).
   */
  async authenticate(token: string): Promise<Principal | undefined> {
    const parsed = parseApiKey(token);
    if (!parsed) return undefined;
    const record = await this.lookup(parsed.keyId);
    if (!record || record.revoked) return undefined;
    const presented = sha256(parsed.secret);
    if (presented.length !== record.hash.length || !timingSafeEqual(presented, record.hash)) return undefined;
    return record.principal;
  }

  /**
   * The principal of a key id that is still live (not revoked), from the same cache: for a session
   * that authenticated with the full key once and keeps only its id (the console).
   */
  async live(keyId: string): Promise<Principal | undefined> {
    const record = await this.lookup(keyId);
    return record && !record.revoked ? record.principal : undefined;
  }

  /** Forget one id (after revoking it here) or everything. */
  invalidate(keyId?: string): void {
    if (keyId === undefined) this.cache.clear();
    else this.cache.delete(keyId);
  }

  private async lookup(keyId: string): Promise<KeyRecord> {
    const now = this.now();
    const hit = this.cache.get(keyId);
    if (hit && hit.expiresAt > now) return hit.record;
    let pending = this.inflight.get(keyId);
    if (!pending) {
      pending = this.fetch(keyId).finally(() => this.inflight.delete(keyId));
      this.inflight.set(keyId, pending);
    }
    try {
      return await pending;
    } catch (err) {
      // stale-if-error: a Postgres outage must not lock out every merchant at once
      if (hit?.record && now - hit.fetchedAt <= this.maxStaleMs) return hit.record;
      throw err;
    }
  }

  private async fetch(keyId: string): Promise<KeyRecord> {
    const res = await this.db.query<KeyRow>('SELECT secret_hash, merchant_id, scope, revoked_at IS NOT NULL AS revoked FROM api_keys WHERE key_id = $1', [
      keyId,
    ]);
    const row = res.rows[0];
    const record = row ? toRecord(keyId, row) : null;
    this.remember(keyId, record);
    return record;
  }

  private remember(keyId: string, record: KeyRecord): void {
    const now = this.now();
    this.cache.delete(keyId); // re-insert: Map order is then oldest-fetched first
    if (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(keyId, { record, fetchedAt: now, expiresAt: now + (record ? this.ttlMs : this.negativeTtlMs) });
  }
}

function toRecord(keyId: string, row: KeyRow): KeyRecord {
  const principal: Principal | undefined =
    row.scope === 'tap' || row.scope === 'operator'
      ? { keyId, scope: row.scope }
      : row.scope === 'merchant' && row.merchant_id
        ? { keyId, scope: 'merchant', merchantId: row.merchant_id }
        : undefined;
  // a row we do not understand authenticates nobody
  return principal ? { hash: row.secret_hash, principal, revoked: row.revoked } : null;
}
