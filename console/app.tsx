/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
// The console's HTTP app: server-rendered pages (Hono JSX), htmx for actions and live fragments
// (SSE, at most one update a second per view), all assets from this origin. Access: an operator
// key opens a session (session.ts); every mutation needs the session's CSRF token; headers forbid
// inline scripts and framing. Reads go through core and `rill status`'s code; redrive and purge
// through core/dead-letter/dead-letters.ts, like `rill dlq`.
import type { Context, MiddlewareHandler } from 'hono';
import { Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { secureHeaders } from 'hono/secure-headers';
import { streamSSE } from 'hono/streaming';
import type { Child } from 'hono/jsx';
import type { RillEnv } from '../core/config.ts';
import { DeadLetters } from '../core/dead-letter/dead-letters.ts';
import { Keys } from '../core/keys.ts';
import type { Logger } from '../core/logger.ts';
import { readWorkers } from '../core/observability/heartbeat.ts';
import { collectPartitionStats, readLeases } from '../core/observability/partition-stats.ts';
import type { PgPool } from '../core/postgres.ts';
import type { RedisClient } from '../core/redis.ts';
import type { Topology } from '../core/topology/schema.ts';
import type { KeyStore } from '../core/api-keys.ts';
import { ProblemError } from '../core/errors.ts';
import { forbidden, notFound, problemResponse, serviceUnavailable, unauthorized } from '../core/http/problem.ts';
import { assetRoutes } from './assets.ts';
import { AuditLog } from './audit.ts';
import { latestBench, latestBenchChart } from './data/bench.ts';
import { TransactionTrails } from './data/transaction.ts';
import { listWallets, recentAlerts } from './data/wallets.ts';
import { StatusSampler } from './live.ts';
import { csrfMatches, CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Sessions } from './session.ts';
import { tailStream } from './tail.ts';
import { Live, page, render } from './page.tsx';
import type { ConsoleEnv } from './page.tsx';
import { deadLetterRoutes } from './routes/dead-letters.tsx';
import { Flash } from './views/layout.tsx';
import { BenchView, LoginForm, TailForm, TailTable, TransactionSearch, TransactionView, WalletsView } from './views/pages.tsx';
import { PartitionPicker, PartitionTable, WorkerTable } from './views/runtime.tsx';
import { StageTable, TopologyGraph } from './views/topology.tsx';

export interface ConsoleDeps {
  env: RillEnv;
  topology: Topology;
  redis: RedisClient;
  pool: PgPool;
  keyStore: KeyStore;
  logger: Logger;
  /** Live fragments: one update per this many ms per view (default 1000). */
  liveIntervalMs?: number;
}

const PAGE = 50;

export function createConsoleApp(deps: ConsoleDeps): Hono<ConsoleEnv> {
  const keys = new Keys(deps.env.prefix);
  const log = deps.logger.child({ component: 'console' });
  const sessions = new Sessions(deps.redis, keys, deps.keyStore);
  const dlq = new DeadLetters(deps.redis, keys, deps.topology);
  const audit = new AuditLog(deps.redis, keys, log);
  const trails = new TransactionTrails(deps.redis, deps.pool, keys, deps.topology);
  const sampler = new StatusSampler(deps.redis, keys, deps.topology);
  const every = deps.liveIntervalMs ?? 1_000;
  const app = new Hono<ConsoleEnv>();

  app.use(
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
      xFrameOptions: 'DENY',
      // not no-referrer: that makes browsers send `Origin: null` on same-origin form posts
      referrerPolicy: 'same-origin',
      crossOriginResourcePolicy: 'same-origin',
    }),
  );
  app.route('/assets', assetRoutes());
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/favicon.ico', (c) => c.body(null, 204));

  // a cross-site form post (login CSRF) or a page framed elsewhere never gets this far
  app.use(async (c, next) => {
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const origin = c.req.header('origin');
      const site = c.req.header('sec-fetch-site');
      if ((origin && origin !== new URL(c.req.url).origin) || (site && site !== 'same-origin' && site !== 'none'))
        throw forbidden('Cross-site requests are refused.');
    }
    await next();
  });

  app.get('/login', (c) => page(c, 'Log in', '/login', undefined, <LoginForm />));
  app.post('/login', async (c) => {
    const body = await c.req.parseBody();
    const key = typeof body.key === 'string' ? body.key : '';
    const res = await sessions.login(key);
    if (!res.ok) {
      log.warn({ reason: res.reason }, 'console login refused');
      return c.html(render('Log in', '/login', undefined, <LoginForm error={res.reason} />), res.status);
    }
    setCookie(c, SESSION_COOKIE, res.sid, {
      httpOnly: true,
      sameSite: 'Strict',
      path: '/',
      secure: new URL(c.req.url).protocol === 'https:',
      maxAge: sessions.ttlSeconds,
    });
    log.info({ audit: true, actor: res.session.keyId, action: 'login' }, 'console login');
    return c.redirect('/', 303);
  });

  // everything below needs a session; mutations also its CSRF token
  const requireSession: MiddlewareHandler<ConsoleEnv> = async (c, next) => {
    const session = await sessions.get(getCookie(c, SESSION_COOKIE));
    if (!session) {
      if (c.req.method === 'GET' && !c.req.header('hx-request') && (c.req.header('accept') ?? '').includes('text/html')) return c.redirect('/login', 303);
      throw unauthorized('Log in with an operator key first.');
    }
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      let token = c.req.header(CSRF_HEADER);
      if (!token && (c.req.header('content-type') ?? '').includes('form')) {
        const body = await c.req.parseBody();
        token = typeof body[CSRF_FIELD] === 'string' ? body[CSRF_FIELD] : undefined;
      }
      if (!csrfMatches(session, token)) {
        log.warn({ actor: session.keyId, path: c.req.path }, 'console request without a valid CSRF token refused');
        throw forbidden('The CSRF token is missing or wrong; reload the page and try again.');
      }
    }
    c.set('session', session);
    await next();
  };
  app.use(requireSession);

  app.post('/logout', async (c) => {
    await sessions.logout(getCookie(c, SESSION_COOKIE));
    deleteCookie(c, SESSION_COOKIE, { path: '/' });
    return c.redirect('/login', 303);
  });

  // ----- topology
  const topologyLive = async () => {
    const report = await sampler.report();
    return (
      <>
        <TopologyGraph topology={deps.topology} report={report} />
        <StageTable report={report} />
      </>
    );
  };
  app.get('/', async (c) => page(c, 'Topology', '/', c.get('session').csrf, <Live view="/live/topology">{await topologyLive()}</Live>));

  // ----- partitions
  const partitionsLive = async (topic: string, group: string | undefined) => (
    <PartitionTable stats={await collectPartitionStats(deps.redis, keys, deps.topology, topic, group)} />
  );
  const partitionQuery = (c: Context) => {
    const topic = c.req.query('topic') || deps.topology.ingest.topic;
    if (!deps.topology.topics[topic]) throw notFound(`No topic named "${topic.slice(0, 100)}".`);
    return { topic, group: c.req.query('group') || undefined };
  };
  app.get('/partitions', async (c) => {
    const { topic, group } = partitionQuery(c);
    const stats = await collectPartitionStats(deps.redis, keys, deps.topology, topic, group);
    const live = `/live/partitions?${new URLSearchParams({ topic, group: stats.group ?? '' }).toString()}`;
    return page(
      c,
      'Partitions',
      '/partitions',
      c.get('session').csrf,
      <>
        <PartitionPicker topology={deps.topology} stats={stats} />
        <Live view={live}>
          <PartitionTable stats={stats} />
        </Live>
      </>,
    );
  });

  // ----- workers
  const workersLive = async () => {
    const [workers, leases] = await Promise.all([readWorkers(deps.redis, keys), readLeases(deps.redis, keys, deps.topology)]);
    return <WorkerTable workers={workers} leases={leases} now={Date.now()} />;
  };
  app.get('/workers', async (c) => page(c, 'Workers', '/workers', c.get('session').csrf, <Live view="/live/workers">{await workersLive()}</Live>));

  // ----- live fragments (SSE), throttled per connection
  app.get('/live/:view', (c) => {
    const view = c.req.param('view');
    let produce: () => Promise<Child>;
    if (view === 'topology') produce = topologyLive;
    else if (view === 'workers') produce = workersLive;
    else if (view === 'partitions') {
      const { topic, group } = partitionQuery(c);
      produce = () => partitionsLive(topic, group);
    } else throw notFound(`No live view "${view.slice(0, 50)}".`);
    return streamSSE(c, async (stream) => {
      while (!stream.aborted && !stream.closed) {
        let html: string;
        try {
          html = String(await produce());
        } catch (err) {
          log.warn({ err, view }, 'live view failed');
          html = String(<Flash kind="error" text="Reading from Redis failed; retrying." />);
        }
        await stream.writeSSE({ event: 'update', data: html });
        await stream.sleep(view === 'partitions' ? every * 2 : every);
      }
    });
  });
  deadLetterRoutes(app, dlq, audit);

  // ----- transactions
  app.get('/transactions', async (c) => {
    const id = (c.req.query('id') ?? '').trim();
    const csrf = c.get('session').csrf;
    if (!id) return page(c, 'Transactions', '/transactions', csrf, <TransactionSearch id="" />);
    const t = await trails.find(id);
    return page(
      c,
      'Transactions',
      '/transactions',
      csrf,
      <>
        <TransactionSearch id={id} />
        {t ? (
          <TransactionView t={t} />
        ) : (
          <Flash kind="error" text={`No transaction ${id.slice(0, 100)} in Postgres or Redis (a malformed id, or trimmed from every stream).`} />
        )}
      </>,
      t ? 200 : 404,
    );
  });

  // ----- live tail
  app.get('/tail', (c) => {
    const topic = c.req.query('topic') || deps.topology.ingest.topic;
    if (!deps.topology.topics[topic]) throw notFound(`No topic named "${topic.slice(0, 100)}".`);
    const merchant = c.req.query('merchant') ?? '';
    const type = c.req.query('type') ?? '';
    const url = `/tail/stream?${new URLSearchParams({ topic, merchant, type }).toString()}`;
    return page(
      c,
      'Live tail',
      '/tail',
      c.get('session').csrf,
      <>
        <TailForm topology={deps.topology} topic={topic} merchant={merchant} type={type} />
        <TailTable streamUrl={url} topic={topic} />
      </>,
    );
  });
  app.get('/tail/stream', tailStream({ env: deps.env, topology: deps.topology, keys, logger: log }));

  // ----- wallets
  app.get('/wallets', async (c) => {
    const merchant = (c.req.query('merchant') ?? '').trim();
    const lowOnly = c.req.query('low') === '1';
    const offset = Math.max(0, Math.min(1_000_000, Number(c.req.query('offset')) || 0));
    const [w, alerts] = await Promise.all([
      listWallets(deps.pool, deps.topology, { merchant: merchant || undefined, lowOnly, limit: PAGE, offset }),
      recentAlerts(deps.redis, keys, deps.topology),
    ]);
    return page(
      c,
      'Wallets',
      '/wallets',
      c.get('session').csrf,
      <WalletsView rows={w.rows} alerts={alerts} merchant={merchant} lowOnly={lowOnly} offset={offset} more={w.more} limit={PAGE} />,
    );
  });

  // ----- bench
  app.get('/bench', async (c) => page(c, 'Bench report', '/bench', c.get('session').csrf, <BenchView bench={await latestBench()} />));
  app.get('/bench/chart.svg', async (c) => {
    const svg = await latestBenchChart();
    if (!svg) throw notFound('No bench chart yet.');
    return c.body(svg, 200, { 'content-type': 'image/svg+xml', 'cache-control': 'no-cache' });
  });

  app.notFound((c) => problemResponse(notFound(`No page ${c.req.method} ${c.req.path.slice(0, 200)}.`).problem));
  app.onError((err, c) => {
    const problem = err instanceof ProblemError ? err.problem : undefined;
    if (!problem) log.error({ err, path: c.req.path }, 'console request failed');
    const p = problem ?? serviceUnavailable('A dependency is unavailable; retry later.').problem;
    // htmx swaps the fragment where the action was; anything else gets problem+json
    if (c.req.header('hx-request')) return c.html(String(<Flash kind="error" text={p.detail} />), p.status);
    return problemResponse(p, err instanceof ProblemError ? err.headers : {});
  });
  return app;
}
