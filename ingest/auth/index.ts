// Bearer authentication for Hono routes: resolves `Authorization: Bearer rk_…` to a Principal
// through the cached KeyStore (core/api-keys.ts: no Postgres round trip on the hot path) and
// checks its scope.
import type { MiddlewareHandler } from 'hono';
import { forbidden, unauthorized } from '../../core/http/problem.ts';
import type { KeyStore, Principal } from '../../core/api-keys.ts';

export type AuthEnv = { Variables: { principal: Principal } };

const BEARER = /^Bearer +(\S+) *$/i;
const CHALLENGE = 'Bearer realm="rill"';

/** Require a live key of `scope`; the route reads it with `c.get('principal')`. */
export function bearerAuth(store: KeyStore, scope: Principal['scope']): MiddlewareHandler<AuthEnv> {
  return async (c, next) => {
    const header = c.req.header('authorization');
    if (!header) {
      throw unauthorized('An API key is required: Authorization: Bearer <key>.', { headers: { 'www-authenticate': CHALLENGE } });
    }
    const token = BEARER.exec(header)?.[1];
    const principal = token === undefined ? undefined : await store.authenticate(token);
    if (!principal) {
      throw unauthorized('The API key is malformed, unknown or revoked.', {
        headers: { 'www-authenticate': `${CHALLENGE}, error="invalid_token"` },
      });
    }
    if (principal.scope !== scope) throw forbidden(`This key has the "${principal.scope}" scope; this route needs "${scope}".`);
    c.set('principal', principal);
    await next();
  };
}
