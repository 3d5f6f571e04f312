// GET /v1/streams/:topic/tail: a topic's events as Server-Sent Events, for `tap`-scope keys only
// (runs after bearerAuth(store, 'tap'), so merchant keys get 403 and no key 401). Read-only: no
// consumer group, nothing written to Redis.
//
//   ?from=now|earliest|<unix ms>|<entry id>   where to start (default now); Last-Event-ID wins.
//                                             Before the Redis window: a postgres sink's input
//                                             topic is read from Postgres first, others get a 400
//   &merchant_id=…&type=…                     filters, applied after decoding the event
//
// Each event: `id: <cursor>` (resume exactly after it with Last-Event-ID; EventSource does that
// by itself), `event: <type>`, `data: <event JSON>`. A `: ping` comment every keepAliveMs keeps
// proxies from closing an idle stream; when filtered-out entries moved the position since the last
// event, the ping carries the new cursor too (an id-only message), so a reconnect does not scan
// them again.
//
// Each client gets a Redis connection of its own (a blocking read holds it), named
// `rill:tap:<key id>` in CLIENT LIST and closed as soon as the client goes away. Open streams
// are limited per key (429 past it) and in all (503 past it).
import type { Handler } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Redis } from 'ioredis';
import type { RillEnv } from '../../core/config.ts';
import { Keys } from '../../core/keys.ts';
import type { Logger } from '../../core/logger.ts';
import type { PgPool } from '../../core/postgres.ts';
import { gauge } from '../../core/metrics.ts';
import type { Registry } from '../../core/metrics.ts';
import { connectRedis } from '../../core/redis.ts';
import { postgresHistory } from '../../core/tap/history.ts';
import { parseTapStart } from '../../core/tap/position.ts';
import { TapInputError, UnknownTopicError } from '../../core/errors.ts';
import type { TapStart } from '../../core/tap/position.ts';
import { openTap } from '../../core/tap/reader.ts';
import type { TapReader } from '../../core/tap/reader.ts';
import type { Topology } from '../../core/topology/schema.ts';
import type { AuthEnv } from '../auth/index.ts';
import { badRequest, notFound, serviceUnavailable, tooManyRequests } from '../../core/http/problem.ts';
import { withTimeout } from '../timeout.ts';
import { MERCHANT_ID_PATTERN } from '../../core/event.ts';

export interface TapRouteOptions {
  /** A `: ping` comment this often (default 15 s). */
  keepAliveMs: number;
  /** Open streams per API key (default 5); 429 past it. */
  maxPerKey: number;
  /** Open streams per ingest process (default 100); 503 past it. */
  maxTotal: number;
  /** Longest wait for Redis while opening a stream (default 2 s); 503 past it. */
  connectTimeoutMs: number;
  /** Longest single blocking read (default 5 s). */
  blockMs: number;
  /** Entries per stream per read (default 200). */
  batch: number;
  /** EventSource reconnect delay sent to clients (default 2 s). */
  retryMs: number;
}

export const DEFAULT_TAP_OPTIONS: TapRouteOptions = {
  keepAliveMs: 15_000,
  maxPerKey: 5,
  maxTotal: 100,
  connectTimeoutMs: 2_000,
  blockMs: 5_000,
  batch: 200,
  retryMs: 2_000,
};

export interface TapRouteDeps {
  env: RillEnv;
  topology: Topology;
  registry: Registry;
  logger: Logger;
  /** Reads history beyond the Redis window (without it, a start before the window is a 400). */
  pool?: PgPool;
  options?: Partial<TapRouteOptions>;
}

export interface TapRoute {
  handler: Handler<AuthEnv>;
  /** Open streams by key id. */
  open(): ReadonlyMap<string, number>;
}

const TYPE = /^[A-Za-z0-9_.:-]{1,64}$/;

export function tapRoute(deps: TapRouteDeps): TapRoute {
  const o: TapRouteOptions = { ...DEFAULT_TAP_OPTIONS, ...deps.options };
  const log = deps.logger.child({ component: 'tap' });
  const keys = new Keys(deps.env.prefix);
  const openStreams = gauge(deps.registry, 'rill_tap_streams', 'Open tap (SSE) streams, by topic', ['topic']);
  const byKey = new Map<string, number>();
  let total = 0;

  const release = (keyId: string, topic: string) => {
    const n = (byKey.get(keyId) ?? 1) - 1;
    if (n > 0) byKey.set(keyId, n);
    else byKey.delete(keyId);
    total--;
    openStreams.dec({ topic });
  };

  const handler: Handler<AuthEnv> = async (c) => {
    // Hono answers HEAD by running this handler and dropping the body unclosed: never open a stream for it
    if (c.req.method === 'HEAD') return c.body(null, 200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const principal = c.get('principal');
    const topic = c.req.param('topic') ?? '';
    if (!deps.topology.topics[topic]) throw notFound(`No topic named "${topic.slice(0, 100)}".`);
    const query = parseQuery(c.req.query('from'), c.req.query('merchant_id'), c.req.query('type'));
    const lastEventId = c.req.header('last-event-id')?.trim() || undefined;

    const held = byKey.get(principal.keyId) ?? 0;
    if (held >= o.maxPerKey) {
      throw tooManyRequests(`This key already has ${held} open tap streams (at most ${o.maxPerKey}); close one or retry later.`, {
        headers: { 'retry-after': '5' },
      });
    }
    if (total >= o.maxTotal) throw serviceUnavailable('Too many open tap streams on this server; retry later.', { headers: { 'retry-after': '5' } });
    byKey.set(principal.keyId, held + 1);
    total++;
    openStreams.inc({ topic });

    // set up before answering: a bad cursor is a 400 and a Redis outage a 503, not a broken stream
    const redis = connectRedis(deps.env, { name: `rill:tap:${principal.keyId}`, lazyConnect: true, offlineQueue: false, retriesPerRequest: 0 }) as Redis;
    redis.on('error', (err: Error) => log.debug({ err }, 'tap connection error'));
    const abort = new AbortController();
    const history = deps.pool ? postgresHistory(deps.pool, deps.topology, topic) : undefined;
    let reader: TapReader;
    try {
      await withTimeout(redis.connect(), o.connectTimeoutMs, 'Redis connect');
      reader = await withTimeout(
        openTap({
          redis,
          keys,
          topology: deps.topology,
          topic,
          from: query.from,
          ...(lastEventId !== undefined ? { cursor: lastEventId } : {}),
          follow: true,
          filter: query.filter,
          batch: o.batch,
          blockMs: o.blockMs,
          signal: abort.signal,
          ...(history ? { history } : {}),
        }),
        o.connectTimeoutMs,
        'Redis tap start',
      );
    } catch (err) {
      redis.disconnect();
      release(principal.keyId, topic);
      if (err instanceof UnknownTopicError) throw notFound(err.message);
      if (err instanceof TapInputError) throw badRequest(lastEventId !== undefined ? `Last-Event-ID: ${err.message}` : err.message);
      throw err;
    }

    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      abort.abort();
      redis.disconnect(); // ends a blocking read at once
    };
    c.req.raw.signal.addEventListener('abort', close, { once: true });

    c.header('x-accel-buffering', 'no'); // proxies (nginx) must not buffer the stream
    return streamSSE(c, async (stream) => {
      stream.onAbort(close);
      let sent = reader.cursor();
      const ping = setInterval(() => {
        const now = reader.cursor();
        const moved = now !== sent;
        sent = now;
        void stream.write(moved ? `: ping\nid: ${now}\n\n` : ': ping\n\n');
      }, o.keepAliveMs);
      try {
        await stream.write(`: tap ${topic}\nretry: ${o.retryMs}\n\n`);
        for await (const ev of reader) {
          if (closed || stream.aborted) break;
          const id = ev.cursor();
          const type = typeof ev.event.type === 'string' && TYPE.test(ev.event.type) ? ev.event.type : 'event';
          await stream.writeSSE({ id, event: type, data: JSON.stringify(ev.event) });
          sent = id;
        }
      } catch (err) {
        if (!closed) log.warn({ err, topic }, 'tap stream failed; the client may resume with Last-Event-ID');
      } finally {
        clearInterval(ping);
        close();
        c.req.raw.signal.removeEventListener('abort', close);
        release(principal.keyId, topic);
      }
    });
  };

  return { handler, open: () => byKey };
}

interface TapQuery {
  from: TapStart;
  filter: { merchantId?: string; type?: string };
}

function parseQuery(from: string | undefined, merchantId: string | undefined, type: string | undefined): TapQuery {
  let start: TapStart;
  try {
    start = parseTapStart(from ?? 'now', Date.now(), 'from');
  } catch (err) {
    throw badRequest((err as Error).message);
  }
  if (merchantId !== undefined && !MERCHANT_ID_PATTERN.test(merchantId)) throw badRequest(`merchant_id must match ${MERCHANT_ID_PATTERN}.`);
  if (type !== undefined && !TYPE.test(type)) throw badRequest(`type must match ${TYPE}.`);
  return {
    from: start,
    filter: { ...(merchantId !== undefined ? { merchantId } : {}), ...(type !== undefined ? { type } : {}) },
  };
}
