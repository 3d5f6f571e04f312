// Operator endpoints: liveness, readiness (Redis and Postgres answer, not shedding load) and
// Prometheus metrics.
import { Hono } from 'hono';
import type { Registry } from '../../core/metrics.ts';
import type { PgPool } from '../../core/postgres.ts';
import type { RedisClient } from '../../core/redis.ts';
import type { LoadGate } from '../backpressure/shedder.ts';
import { problemResponse, problemType } from '../../core/http/problem.ts';
import { withTimeout } from '../timeout.ts';

export interface OpsDeps {
  redis: RedisClient;
  pool: PgPool;
  registry: Registry;
  timeoutMs: number;
  retryAfterSeconds: number;
  load?: LoadGate;
  /** True once the process was told to stop: /readyz fails so endpoints drop it before it closes. */
  stopping?: () => boolean;
}

export function opsRoutes(deps: OpsDeps): Hono {
  const app = new Hono();

  // alive = the event loop answers; dependencies are /readyz's business
  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
    if (deps.stopping?.()) {
      return problemResponse(
        { type: problemType('not-ready'), title: 'Not Ready', status: 503, detail: 'Shutting down: this instance takes no new traffic.' },
        { 'retry-after': String(deps.retryAfterSeconds) },
      );
    }
    const [redis, postgres] = await Promise.allSettled([
      withTimeout(deps.redis.ping(), deps.timeoutMs, 'Redis PING'),
      withTimeout(deps.pool.query('SELECT 1'), deps.timeoutMs, 'Postgres SELECT 1'),
    ]);
    const down = [redis.status === 'rejected' ? 'redis' : '', postgres.status === 'rejected' ? 'postgres' : ''].filter(Boolean);
    const load = deps.load?.state;
    if (down.length === 0 && !load?.shedding) return c.json({ status: 'ready' });
    const why = [down.length ? `Unreachable: ${down.join(', ')}.` : '', load?.shedding ? `Shedding load: ${load.reasons.join('; ')}.` : ''];
    const retryAfter = down.length || !deps.load ? deps.retryAfterSeconds : deps.load.retryAfterSeconds;
    return problemResponse(
      { type: problemType('not-ready'), title: 'Not Ready', status: 503, detail: why.filter(Boolean).join(' ') },
      { 'retry-after': String(retryAfter) },
    );
  });

  app.get('/metrics', async (c) => {
    c.header('content-type', deps.registry.contentType);
    c.header('cache-control', 'no-store');
    return c.body(await deps.registry.metrics());
  });

  return app;
}
