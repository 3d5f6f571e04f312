// The ingest HTTP app (design §3): wiring only. Each concern lives in its own module: auth/,
// body.ts (415/413), validation.ts (400), append/ (Redis, and the rate limit: 429),
// backpressure/ (load shedding: 503), core/http/problem.ts (every error's shape).
import { STATUS_CODES } from 'node:http';
import { Hono } from 'hono';
import type { Context, MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { methodNotAllowed as allowOnly } from 'hono/method-not-allowed';
import type { RillEnv } from '../core/config.ts';
import { BackpressureError, ProblemError, RateLimitedError, UnknownPayinError } from '../core/errors.ts';
import { Keys } from '../core/keys.ts';
import type { Logger } from '../core/logger.ts';
import type { Registry } from '../core/metrics.ts';
import type { PgPool } from '../core/postgres.ts';
import type { RedisClient } from '../core/redis.ts';
import type { Topology } from '../core/topology/schema.ts';
import { EventAppender } from './append/index.ts';
import { shedLoad } from './backpressure/middleware.ts';
import type { LoadGate } from './backpressure/shedder.ts';
import { bearerAuth } from './auth/index.ts';
import type { AuthEnv } from './auth/index.ts';
import type { KeyStore } from '../core/api-keys.ts';
import { closeAfterUnreadUpload, requireJson } from './body.ts';
import { ingestMetrics, recordRequests } from './metrics.ts';
import {
  methodNotAllowed,
  notFound,
  overloaded,
  problemResponse,
  problemType,
  serviceUnavailable,
  tooManyRequests,
  unknownPayin,
} from '../core/http/problem.ts';
import { BatchAppender } from './append/batch.ts';
import { postTransactionBatch } from './routes/batch.ts';
import { opsRoutes } from './routes/ops.ts';
import { openApiRoutes } from './openapi/routes.ts';
import { getTransaction, TransactionLookup } from './routes/transaction-status.ts';
import { getWallets } from './routes/wallets.ts';
import { postTransaction } from './routes/transactions.ts';
import { tapRoute } from './routes/tap.ts';
import { reviewRoutes } from './routes/review.ts';
import { ReviewQueue } from '../core/review-queue.ts';
import { webhookRoutes } from './routes/webhooks.ts';

export interface IngestLimits {
  /** Largest accepted body of POST /v1/transactions. */
  maxBodyBytes: number;
  /** Longest wait for Redis or Postgres before answering 503. */
  dependencyTimeoutMs: number;
  /** Retry-After on 503s that carry no better estimate. */
  retryAfterSeconds: number;
  /** Tap (SSE): a keep-alive comment this often, and open streams allowed per API key. */
  tapKeepAliveMs: number;
  tapMaxStreamsPerKey: number;
}

export const DEFAULT_LIMITS: IngestLimits = {
  maxBodyBytes: 64 * 1024,
  dependencyTimeoutMs: 2_000,
  retryAfterSeconds: 1,
  tapKeepAliveMs: 15_000,
  tapMaxStreamsPerKey: 5,
};

export interface IngestDeps {
  env: RillEnv;
  topology: Topology;
  /**
   * The connection appends go through. Give ingest its own connection that fails fast while Redis
   * is down (enableOfflineQueue: false); with an offline queue a command could still run after
   * its request was answered 503 (the timeout bounds the wait either way).
   */
  redis: RedisClient;
  pool: PgPool;
  registry: Registry;
  logger: Logger;
  keyStore: KeyStore;
  limits?: Partial<IngestLimits>;
  /** Load shedding (backpressure/): startIngest runs a LoadShedder unless one is given here. */
  load?: LoadGate;
  /** True once the process is stopping (startIngest sets it): /readyz fails. */
  stopping?: () => boolean;
}

export type IngestApp = Hono<AuthEnv>;

export function createIngestApp(deps: IngestDeps): IngestApp {
  const limits: IngestLimits = { ...DEFAULT_LIMITS, ...deps.limits };
  const log = deps.logger.child({ component: 'ingest' });
  const metrics = ingestMetrics(deps.registry);
  const keys = new Keys(deps.env.prefix);
  const appender = new EventAppender(deps.redis, deps.topology, keys, { timeoutMs: limits.dependencyTimeoutMs });
  const batchAppender = new BatchAppender(appender, deps.redis, { timeoutMs: limits.dependencyTimeoutMs });
  const lookup = new TransactionLookup({ redis: deps.redis, pool: deps.pool, topology: deps.topology, keys, timeoutMs: limits.dependencyTimeoutMs });

  const app = new Hono<AuthEnv>();
  app.use(recordRequests(metrics));
  app.use(closeAfterUnreadUpload(limits.maxBodyBytes));
  app.use(
    allowOnly({
      app,
      onMethodNotAllowed: (c, allowed) =>
        problemResponse(methodNotAllowed(`${c.req.method} is not allowed here; use ${allowed.join(', ')}.`).problem, {
          allow: allowed.join(', '),
        }),
    }),
  );

  const shed: MiddlewareHandler = deps.load ? shedLoad(deps.load) : (_c, next) => next();
  app.post(
    '/v1/transactions',
    shed, // first: an overloaded ingest spends nothing on a request it will refuse
    bearerAuth(deps.keyStore, 'merchant'),
    requireJson(),
    postTransaction(appender, metrics, limits.maxBodyBytes),
  );
  app.post(
    '/v1/transactions/batch',
    shed, // a shedding ingest refuses the whole batch (503) before reading it
    bearerAuth(deps.keyStore, 'merchant'),
    postTransactionBatch(batchAppender, metrics, deps.registry, { logger: log }), // 415, 413 and 400 are checked inside
  );
  app.get('/v1/transactions/:id', bearerAuth(deps.keyStore, 'merchant'), getTransaction(lookup));
  app.get('/v1/wallets', bearerAuth(deps.keyStore, 'merchant'), getWallets(deps.pool, limits.dependencyTimeoutMs));
  const tap = tapRoute({
    env: deps.env,
    topology: deps.topology,
    registry: deps.registry,
    logger: deps.logger,
    pool: deps.pool,
    options: { keepAliveMs: limits.tapKeepAliveMs, maxPerKey: limits.tapMaxStreamsPerKey, connectTimeoutMs: limits.dependencyTimeoutMs },
  });
  app.get('/v1/streams/:topic/tail', bearerAuth(deps.keyStore, 'tap'), tap.handler);
  if (deps.topology.stages.risk) {
    // the risk stage's review queue, for operators
    app.use('/v1/reviews', bearerAuth(deps.keyStore, 'operator'));
    app.use('/v1/reviews/*', bearerAuth(deps.keyStore, 'operator'));
    app.route('/', reviewRoutes(new ReviewQueue(deps.redis, keys, deps.topology)));
  }
  app.route('/', webhookRoutes({ topology: deps.topology, keys, redis: deps.redis, pool: deps.pool, keyStore: deps.keyStore }));
  app.route(
    '/',
    opsRoutes({
      redis: deps.redis,
      pool: deps.pool,
      registry: deps.registry,
      timeoutMs: limits.dependencyTimeoutMs,
      retryAfterSeconds: limits.retryAfterSeconds,
      ...(deps.load ? { load: deps.load } : {}),
      ...(deps.stopping ? { stopping: deps.stopping } : {}),
    }),
  );

  app.route('/', openApiRoutes());

  app.notFound((c) => problemResponse(notFound(`No route for ${c.req.method} ${c.req.path.slice(0, 200)}.`).problem));
  app.onError((err, c) => toProblem(err, c, log, limits));
  return app;
}

/** Every thrown error becomes problem+json. Anything unexpected is a 503 the client can retry. */
function toProblem(err: Error, c: Context, log: Logger, limits: IngestLimits): Response {
  if (err instanceof ProblemError) return problemResponse(err.problem, err.headers);
  if (err instanceof HTTPException) {
    const status = err.status;
    // hono's own rejections (none on our routes today): keep their 4xx, in our shape
    if (status >= 400 && status < 500) {
      const title = STATUS_CODES[status] ?? 'Client Error';
      return problemResponse({ type: problemType('http-error'), title, status, detail: err.message || `${title}.` });
    }
  }
  if (err instanceof UnknownPayinError) return problemResponse(unknownPayin(err.type, err.reference).problem);
  if (err instanceof RateLimitedError) {
    const { per_second, burst } = err.limit;
    const wait = err.retryAfterSeconds;
    return problemResponse(
      tooManyRequests(`Merchant ${err.merchantId} is over its rate limit (${per_second}/s, burst ${burst}); retry in ${wait} s.`).problem,
      { 'retry-after': String(wait) },
    );
  }
  if (err instanceof BackpressureError) {
    // one line per refused request would flood the logs exactly when it hurts: the shedder logs
    // when shedding starts and stops
    log.debug({ reason: err.message }, 'load shed');
    return problemResponse(overloaded('The service is over capacity; retry later.').problem, {
      'retry-after': String(Math.max(1, Math.ceil(err.retryAfterSeconds))),
    });
  }
  log.error({ err, method: c.req.method, path: c.req.path }, 'request failed');
  return problemResponse(serviceUnavailable('A dependency is unavailable; retry later.').problem, {
    'retry-after': String(limits.retryAfterSeconds),
  });
}
