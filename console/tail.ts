// The console's live tail: a topic's new events as HTML rows over SSE, read with core/tap (the
// reader behind GET /v1/streams/:topic/tail and `rill tap`: no consumer group, nothing written).
// Rows are batched: at most one message per `flushMs` (4 a second), at most `maxRows` rows in one
// (the newest; a busy topic shows a sample, and says how many it skipped). Each stream holds a
// Redis connection of its own (a blocking read holds it), closed when the browser goes away.
// Each message carries the tap cursor of its newest row as its SSE id, so the browser's
// EventSource, reconnecting, sends it back as Last-Event-ID and the tail resumes right after it.
import type { Handler } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Redis } from 'ioredis';
import type { RillEnv } from '../core/config.ts';
import type { Keys } from '../core/keys.ts';
import type { Logger } from '../core/logger.ts';
import { connectRedis } from '../core/redis.ts';
import { TapInputError } from '../core/errors.ts';
import { openTap } from '../core/tap/reader.ts';
import type { TapReader } from '../core/tap/reader.ts';
import type { Topology } from '../core/topology/schema.ts';
import { badRequest, notFound, serviceUnavailable } from '../core/http/problem.ts';
import { MERCHANT_ID_PATTERN } from '../core/event.ts';
import { TailRow } from './views/pages.tsx';

const TYPE = /^[A-Za-z0-9_.:-]{1,64}$/;

export interface TailOptions {
  env: RillEnv;
  topology: Topology;
  keys: Keys;
  logger: Logger;
  flushMs?: number;
  maxRows?: number;
  /** Open tails per console process; 503 past it. */
  maxOpen?: number;
}

export function tailStream(o: TailOptions): Handler {
  const flushMs = o.flushMs ?? 250;
  const maxRows = o.maxRows ?? 50;
  const maxOpen = o.maxOpen ?? 20;
  let open = 0;
  return async (c) => {
    const topic = c.req.query('topic') ?? '';
    if (!o.topology.topics[topic]) throw notFound(`No topic named "${topic.slice(0, 100)}".`);
    const merchant = c.req.query('merchant') || undefined;
    const type = c.req.query('type') || undefined;
    if (merchant !== undefined && !MERCHANT_ID_PATTERN.test(merchant)) throw badRequest(`merchant must match ${MERCHANT_ID_PATTERN}.`);
    if (type !== undefined && !TYPE.test(type)) throw badRequest(`type must match ${TYPE}.`);
    if (open >= maxOpen) throw serviceUnavailable(`Too many open tails (${maxOpen}); close one and retry.`, { headers: { 'retry-after': '5' } });

    const redis = connectRedis(o.env, { name: 'rill:console:tail', lazyConnect: true, offlineQueue: false, retriesPerRequest: 0 }) as Redis;
    redis.on('error', (err: Error) => o.logger.debug({ err }, 'tail connection error'));
    const abort = new AbortController();
    const resume = c.req.header('last-event-id')?.trim() || undefined;
    let reader: TapReader;
    try {
      await redis.connect();
      reader = await openTap({
        redis,
        keys: o.keys,
        topology: o.topology,
        topic,
        from: 'now',
        follow: true,
        ...(resume ? { cursor: resume } : {}),
        filter: { ...(merchant ? { merchantId: merchant } : {}), ...(type ? { type } : {}) },
        batch: 200,
        blockMs: 2_000,
        signal: abort.signal,
      });
    } catch (err) {
      redis.disconnect();
      if (err instanceof TapInputError) throw badRequest(`Last-Event-ID: ${err.message}`);
      throw err;
    }
    open++;
    const close = () => {
      abort.abort();
      redis.disconnect();
    };
    return streamSSE(c, async (stream) => {
      stream.onAbort(close);
      let rows: string[] = [];
      let cursor = '';
      let skipped = 0;
      let seen = 0;
      const flush = async () => {
        if (!rows.length) return;
        const batch = rows.slice(-maxRows).reverse().join('');
        skipped += Math.max(0, rows.length - maxRows);
        rows = [];
        await stream.writeSSE({ event: 'events', data: batch, id: cursor });
        await stream.writeSSE({
          event: 'state',
          data: escapeHtml(`Tailing ${topic}: ${seen} events so far${skipped ? ` (${skipped} not shown: more than ${(maxRows * 1000) / flushMs}/s)` : ''}.`),
        });
      };
      const timer = setInterval(() => void flush().catch(() => undefined), flushMs);
      try {
        const filters = [merchant && `merchant ${merchant}`, type && `type ${type}`].filter(Boolean).join(', ');
        await stream.writeSSE({
          event: 'state',
          data: escapeHtml(`Tailing ${topic} ${resume ? 'from where it left off' : 'from now'}${filters ? ` (${filters})` : ''}; waiting for events…`),
        });
        for await (const ev of reader) {
          if (stream.aborted) break;
          seen++;
          cursor = ev.cursor();
          rows.push(String(TailRow({ id: ev.id, partition: ev.partition, lane: ev.lane, tx: ev.tx, event: ev.event })));
        }
      } catch (err) {
        if (!abort.signal.aborted) o.logger.warn({ err, topic }, 'console tail failed');
      } finally {
        clearInterval(timer);
        await flush().catch(() => undefined);
        close();
        open--;
      }
    });
  };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
