// Merchant webhook endpoints (design §3): /v1/webhook_endpoints CRUD, rotate_secret, test,
// deliveries, recover, and POST /v1/events/:id/redeliver. Merchant keys only; every lookup is
// scoped by the key's merchant, so another merchant's endpoint or event answers 404 like an
// unknown one. The signing secret is in the answer of create and rotate_secret only.
import { Hono } from 'hono';
import type { Context } from 'hono';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Keys } from '../../core/keys.ts';
import type { PgPool } from '../../core/postgres.ts';
import type { RedisClient } from '../../core/redis.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { WEBHOOK_EVENT_TYPES } from '../../core/webhooks/events.ts';
import { EndpointStore, view } from '../../core/webhooks/endpoints.ts';
import type { EndpointRow } from '../../core/webhooks/endpoints.ts';
import { WebhookEnqueuer } from '../../core/webhooks/enqueue.ts';
import { QueueKeys } from '../../core/webhooks/queue.ts';
import { deliveries } from '../../core/webhooks/deliveries.ts';
import { secretKey } from '../../core/webhooks/secrets.ts';
import { checkEndpointUrl, policyFromEnv } from '../../core/webhooks/url-guard.ts';
import type { GuardPolicy } from '../../core/webhooks/url-guard.ts';
import type { KeyStore } from '../../core/api-keys.ts';
import type { AuthEnv } from '../auth/index.ts';
import { bearerAuth } from '../auth/index.ts';
import { readBody, requireJson } from '../body.ts';
import { forbidden, malformedJson, notFound, validationFailed } from '../../core/http/problem.ts';
import { fieldErrors } from '../validation.ts';

export interface WebhookRoutesDeps {
  topology: Topology;
  keys: Keys;
  redis: RedisClient;
  pool: PgPool;
  keyStore: KeyStore;
  env?: NodeJS.ProcessEnv;
  policy?: GuardPolicy;
}

const eventType = z.enum(WEBHOOK_EVENT_TYPES);
/** Text Postgres can store: no NUL (text columns refuse U+0000, which would be a 5xx). */
const text = (min: number, max: number) =>
  z
    .string()
    .min(min)
    .max(max)
    .refine((v) => !v.includes('\u0000'), 'must not contain U+0000');
const url = text(1, 2048);

/** An id from the path: ids are made of these; anything else is an unknown id (404), never sent to Postgres. */
function idParam(c: Context): string {
  const id = c.req.param('id') ?? '';
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(id)) throw notFound('No such webhook endpoint or event.');
  return id;
}

// The request bodies; the OpenAPI document (../openapi/spec.ts) uses these very schemas.
export const WebhookEndpointCreateSchema = z
  .object({
    url: url.meta({ description: 'https:// (http:// only to a loopback host with RILL_WEBHOOKS_ALLOW_HTTP); no private or metadata addresses.' }),
    event_types: z.array(eventType).min(1).max(WEBHOOK_EVENT_TYPES.length).nullish().meta({ description: 'The event types it receives; null or absent: all.' }),
    description: text(0, 500).nullish(),
    enabled: z.boolean().optional(),
    max_in_flight: z.number().int().min(1).max(64).optional().meta({ description: 'Deliveries in flight at once (1, the default, keeps them in order).' }),
  })
  .strict();
export const WebhookEndpointPatchSchema = WebhookEndpointCreateSchema.partial().strict();
export const WebhookRecoverSchema = z
  .object({
    since: z.iso.datetime({ offset: true }).meta({ description: 'Queue every event of the merchant created at or after this time (RFC 3339).' }),
  })
  .strict();
export const WebhookRedeliverSchema = z
  .object({
    endpoint_id: text(1, 100)
      .optional()
      .meta({ description: 'Only to this endpoint, whatever types it receives (it must be enabled); absent: every enabled endpoint that receives the type.' }),
  })
  .strict();

export const RECOVER_LIMIT = 10_000;
/** The largest request body of these routes. */
export const WEBHOOK_MAX_BODY = 16 * 1024;

async function jsonBody<T>(c: Context, schema: z.ZodType<T>, optional = false): Promise<T> {
  const bytes = await readBody(c, WEBHOOK_MAX_BODY);
  let raw: unknown = {};
  if (bytes.length || !optional) {
    try {
      raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch (err) {
      throw malformedJson('The request body is not valid JSON.', { errors: [{ path: '', message: err instanceof SyntaxError ? err.message : 'not UTF-8' }] });
    }
  }
  const res = schema.safeParse(raw);
  if (!res.success) throw validationFailed('The request body does not match the schema.', { errors: fieldErrors(res.error.issues) });
  return res.data;
}

function merchantOf(c: Context<AuthEnv>): string {
  const p = c.get('principal');
  if (p.scope !== 'merchant') throw forbidden('Webhook endpoints need a merchant key.');
  return p.merchantId;
}

export function webhookRoutes(d: WebhookRoutesDeps): Hono<AuthEnv> {
  const env = d.env ?? process.env;
  const policy = d.policy ?? policyFromEnv(env);
  const store = new EndpointStore(d.pool, secretKey(env));
  const sink = Object.values(d.topology.sinks).find((s) => s.type === 'webhooks');
  const partitions = d.topology.topics[sink?.input ?? d.topology.ingest.topic]?.partitions ?? 1;
  const graceMs = sink?.type === 'webhooks' ? sink.secret_grace : 86_400_000;
  const enqueuer = new WebhookEnqueuer(d.redis, d.pool, d.keys, partitions);
  const qk = new QueueKeys(d.keys);

  const checkUrl = (u: string | undefined) => {
    if (u === undefined) return;
    const why = checkEndpointUrl(u, policy);
    if (why) throw validationFailed('The endpoint URL is not allowed.', { errors: [{ path: '/url', message: why }] });
  };
  const mine = async (c: Context<AuthEnv>): Promise<EndpointRow> => {
    const row = await store.get(merchantOf(c), idParam(c));
    if (!row) throw notFound('No such webhook endpoint.');
    return row;
  };

  const app = new Hono<AuthEnv>();
  const auth = bearerAuth(d.keyStore, 'merchant');
  const base = '/v1/webhook_endpoints';
  app.post(base, auth, requireJson(), async (c) => {
    const merchant = merchantOf(c);
    const body = await jsonBody(c, WebhookEndpointCreateSchema);
    checkUrl(body.url);
    const { row, secret } = await store.create(merchant, body);
    return c.json({ ...view(row), secret }, 201, { location: `${base}/${row.id}`, 'cache-control': 'no-store' });
  });
  app.get(base, auth, async (c) => c.json({ data: (await store.list(merchantOf(c))).map(view) }, 200, { 'cache-control': 'no-store' }));
  app.get(`${base}/:id`, auth, async (c) => c.json(view(await mine(c)), 200, { 'cache-control': 'no-store' }));
  app.patch(`${base}/:id`, auth, requireJson(), async (c) => {
    const merchant = merchantOf(c);
    await mine(c);
    const body = await jsonBody(c, WebhookEndpointPatchSchema);
    checkUrl(body.url);
    const row = await store.update(merchant, idParam(c), body);
    if (!row) throw notFound('No such webhook endpoint.');
    return c.json(view(row), 200);
  });
  app.delete(`${base}/:id`, auth, async (c) => {
    if (!(await store.remove(merchantOf(c), idParam(c)))) throw notFound('No such webhook endpoint.');
    return c.body(null, 204);
  });
  app.post(`${base}/:id/rotate_secret`, auth, async (c) => {
    const r = await store.rotate(merchantOf(c), idParam(c), graceMs);
    if (!r) throw notFound('No such webhook endpoint.');
    return c.json({ ...view(r.row), secret: r.secret, previous_secret_expires_at: r.row.previous_expires_at?.toISOString() ?? null }, 200, {
      'cache-control': 'no-store',
    });
  });
  app.post(`${base}/:id/test`, auth, async (c) => {
    const row = await mine(c);
    const e = await enqueuer.test(row, `evt_test_${randomBytes(12).toString('base64url')}`);
    return c.json({ event_id: e.id, type: e.type, status: 'queued' }, 202);
  });
  app.post(`${base}/:id/recover`, auth, requireJson(), async (c) => {
    const row = await mine(c);
    const { since } = await jsonBody(c, WebhookRecoverSchema);
    const events = await enqueuer.since(row.merchant_id, new Date(since), RECOVER_LIMIT);
    const queued = await enqueuer.toEndpoint(row, events);
    return c.json({ queued, limit: RECOVER_LIMIT }, 202);
  });
  app.get(`${base}/:id/deliveries`, auth, async (c) => {
    const row = await mine(c);
    const limit = Math.min(100, Math.max(1, Number(c.req.query('limit') ?? 50) || 50));
    return c.json({ data: await deliveries(d.redis, d.pool, qk, row, partitions, limit) }, 200, { 'cache-control': 'no-store' });
  });
  app.post('/v1/events/:id/redeliver', auth, async (c) => {
    const merchant = merchantOf(c);
    const { endpoint_id } = await jsonBody(c, WebhookRedeliverSchema, true);
    const event = await enqueuer.event(merchant, idParam(c));
    if (!event) throw notFound('No such event.');
    const targets = endpoint_id ? [await store.get(merchant, endpoint_id)] : await store.list(merchant);
    if (endpoint_id && !targets[0]) throw notFound('No such webhook endpoint.');
    let queued = 0;
    for (const t of targets) if (t && t.enabled) queued += await enqueuer.toEndpoint(t, [event], !endpoint_id);
    return c.json({ event_id: event.id, queued }, 202);
  });
  return app;
}
