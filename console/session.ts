// Console sessions: the operator gives the key once; the browser then holds only a random session
// id in an HttpOnly, SameSite=Strict cookie. Redis keeps, under the id's SHA-256 (a Redis reader
// cannot replay a session), the key id and the session's CSRF token, with a TTL, so sessions
// survive a console restart and work across console replicas. Every request checks that the key
// is still a live operator key (KeyStore cache: a revoked key is locked out within its TTL).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Keys } from '../core/keys.ts';
import type { RedisClient } from '../core/redis.ts';
import type { KeyStore } from '../core/api-keys.ts';

export const SESSION_COOKIE = 'rill_console';
export const CSRF_HEADER = 'x-csrf-token';
export const CSRF_FIELD = '_csrf';

export interface Session {
  keyId: string;
  csrf: string;
  createdAt: number;
}

export type LoginResult = { ok: true; sid: string; session: Session } | { ok: false; reason: string; status: 401 | 403 };

export class Sessions {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly keyStore: KeyStore,
    readonly ttlSeconds = 8 * 3600,
  ) {}

  private redisKey(sid: string): string {
    return this.keys.global('console', 'session', createHash('sha256').update(sid).digest('hex'));
  }

  /** Check a full key; an operator key opens a session, any other scope is refused. */
  async login(key: string): Promise<LoginResult> {
    const principal = await this.keyStore.authenticate(key.trim());
    if (!principal) return { ok: false, status: 401, reason: 'That key is malformed, unknown or revoked.' };
    if (principal.scope !== 'operator') {
      return { ok: false, status: 403, reason: `That is a ${principal.scope} key; the console needs an operator key (rill keys create --scope operator).` };
    }
    const sid = randomBytes(32).toString('base64url');
    const session: Session = { keyId: principal.keyId, csrf: randomBytes(32).toString('base64url'), createdAt: Date.now() };
    await this.redis.set(this.redisKey(sid), JSON.stringify(session), 'EX', this.ttlSeconds);
    return { ok: true, sid, session };
  }

  /** The session of a cookie value, if it exists and its key is still a live operator key. */
  async get(sid: string | undefined): Promise<Session | undefined> {
    if (!sid || !/^[A-Za-z0-9_-]{43}$/.test(sid)) return undefined;
    const raw = await this.redis.get(this.redisKey(sid));
    if (!raw) return undefined;
    let s: Session;
    try {
      s = JSON.parse(raw) as Session;
    } catch {
      return undefined;
    }
    const principal = await this.keyStore.live(s.keyId);
    return principal?.scope === 'operator' ? s : undefined;
  }

  async logout(sid: string | undefined): Promise<void> {
    if (sid) await this.redis.del(this.redisKey(sid));
  }
}

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfMatches(session: Session, presented: string | undefined): boolean {
  if (!presented) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}
