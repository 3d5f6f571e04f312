// The OpenAPI 3.1 document of the ingest API, built from the zod schemas: request bodies from the
// schemas that validate them (../validation.ts, ../routes/webhooks.ts, ../routes/review.ts),
// responses from ./schemas.ts, problems from
// ../problem.ts's one shape. Served at GET /openapi.json (./routes.ts); the contract test checks
// real answers against it, and client/schema.d.ts is generated from it (npm run gen:client).
//
// A route joins the document by an entry in OPERATIONS (test/openapi-contract.test.ts fails for
// a route of the app that has none).
import { z } from 'zod';
import { BATCH_MAX_BYTES, BATCH_MAX_EVENTS } from '../batch-body.ts';
import { ReviewDecisionBodySchema } from '../routes/review.ts';
import {
  RECOVER_LIMIT,
  WEBHOOK_MAX_BODY,
  WebhookEndpointCreateSchema,
  WebhookEndpointPatchSchema,
  WebhookRecoverSchema,
  WebhookRedeliverSchema,
} from '../routes/webhooks.ts';
import { TransactionBodySchema } from '../validation.ts';
import {
  AcceptedSchema,
  BatchLineSchema,
  BatchResponseSchema,
  HealthSchema,
  ProblemSchema,
  ReadySchema,
  RedeliverQueuedSchema,
  ReviewDecisionSchema,
  ReviewListSchema,
  TransactionViewSchema,
  WalletsSchema,
  WebhookDeliveriesSchema,
  WebhookEndpointCreatedSchema,
  WebhookEndpointListSchema,
  WebhookEndpointRotatedSchema,
  WebhookEndpointSchema,
  WebhookRecoverQueuedSchema,
  WebhookTestQueuedSchema,
} from './schemas.ts';

type JsonSchema = Record<string, unknown>;
type Security = 'merchantKey' | 'tapKey' | 'operatorKey';

interface Param {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  description: string;
  schema: JsonSchema;
}

interface Operation {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** OpenAPI path template: /v1/transactions/{id}. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  security?: Security;
  parameters?: Param[];
  requestBody?: Record<string, unknown>;
  /** Success answers; the problem statuses go in `problems`. */
  responses: Record<string, Record<string, unknown>>;
  problems: number[];
}

/** Named schemas in components.schemas, as JSON Schema 2020-12 (OpenAPI 3.1's own dialect). */
const NAMED: Record<string, z.ZodType> = {
  TransactionRequest: TransactionBodySchema,
  BatchLine: BatchLineSchema,
  Accepted: AcceptedSchema,
  BatchResponse: BatchResponseSchema,
  Transaction: TransactionViewSchema,
  Wallets: WalletsSchema,
  ReviewDecisionRequest: ReviewDecisionBodySchema,
  ReviewList: ReviewListSchema,
  ReviewDecision: ReviewDecisionSchema,
  WebhookEndpointRequest: WebhookEndpointCreateSchema,
  WebhookEndpointPatch: WebhookEndpointPatchSchema,
  WebhookRecoverRequest: WebhookRecoverSchema,
  RedeliverRequest: WebhookRedeliverSchema,
  WebhookEndpoint: WebhookEndpointSchema,
  WebhookEndpointCreated: WebhookEndpointCreatedSchema,
  WebhookEndpointRotated: WebhookEndpointRotatedSchema,
  WebhookEndpointList: WebhookEndpointListSchema,
  WebhookTestQueued: WebhookTestQueuedSchema,
  WebhookDeliveries: WebhookDeliveriesSchema,
  WebhookRecoverQueued: WebhookRecoverQueuedSchema,
  RedeliverQueued: RedeliverQueuedSchema,
  Problem: ProblemSchema,
  Health: HealthSchema,
  Ready: ReadySchema,
};

/**
 * As zod reads them: request objects closed where the schema is strict (an unknown field is a 400),
 * answers open, so a field can be added without breaking a client.
 */
function jsonSchema(schema: z.ZodType): JsonSchema {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

const ref = (name: keyof typeof NAMED) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: keyof typeof NAMED) => ({ 'application/json': { schema: ref(name) } });

const RETRY_AFTER = { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 1 } };

const PROBLEMS: Record<number, { description: string; retryAfter?: boolean }> = {
  400: { description: 'Invalid request: malformed JSON, a field error (`errors` lists them) or a bad parameter.' },
  401: { description: 'No API key, or a malformed, unknown or revoked one.' },
  403: { description: 'The key may not do this: wrong scope, or another merchant.' },
  404: { description: 'Nothing here (for transactions, webhook endpoints and events: none this merchant may see).' },
  409: { description: 'The Idempotency-Key was already used with a different body.' },
  413: { description: 'The body is too large (chunked bodies included) or the batch has too many events.' },
  415: { description: 'Wrong Content-Type, a non-UTF-8 charset or a compressed body.' },
  429: { description: "Over the merchant's rate limit (or too many open tap streams for this key).", retryAfter: true },
  503: { description: 'Overloaded (backpressure) or a dependency is unavailable.', retryAfter: true },
};

function problemResponse(status: number): Record<string, unknown> {
  const p = PROBLEMS[status];
  if (!p) throw new Error(`no problem description for status ${status}`);
  return {
    description: p.description,
    ...(p.retryAfter ? { headers: { 'Retry-After': RETRY_AFTER } } : {}),
    content: { 'application/problem+json': { schema: ref('Problem') } },
  };
}

const IDEMPOTENCY_KEY: Param = {
  name: 'Idempotency-Key',
  in: 'header',
  description:
    'One key per logical request, kept across retries: the same key and body answer the first answer again; another body answers 409. Keys live 24 h.',
  schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e](?:[\\x20-\\x7e]{0,253}[\\x21-\\x7e])?$' },
};

const NO_STORE = { 'Cache-Control': { description: '`no-store`: the answer may hold a secret or change at any moment.', schema: { type: 'string' } } };
const ENDPOINT_ID: Param = { name: 'id', in: 'path', required: true, description: 'The webhook endpoint id (we_…).', schema: { type: 'string' } };
const TX_ID: Param = { name: 'id', in: 'path', required: true, description: 'The held transaction id (tx_…).', schema: { type: 'string' } };
const REVIEW_NOTE_BODY = { required: false, content: json('ReviewDecisionRequest') };
const WEBHOOK_BODY_LIMIT = `Bodies up to ${WEBHOOK_MAX_BODY / 1024} KiB.`;

const REVIEW_OPERATIONS: Operation[] = [
  {
    method: 'get',
    path: '/v1/reviews',
    operationId: 'listReviews',
    summary: 'Transactions held for review',
    description:
      'For `operator`-scope keys. The transactions the risk stage holds (status `in_review`), oldest first. ' +
      'Served only when the topology has a `risk` stage.',
    tag: 'Reviews',
    security: 'operatorKey',
    parameters: [{ name: 'merchant_id', in: 'query', description: "Only this merchant's held transactions.", schema: { type: 'string' } }],
    responses: { 200: { description: 'The held transactions.', content: json('ReviewList') } },
    problems: [401, 403, 503],
  },
  ...(['approve', 'decline'] as const).map(
    (action): Operation => ({
      method: 'post',
      path: `/v1/reviews/{id}/${action}`,
      operationId: `${action}Review`,
      summary: action === 'approve' ? 'Approve a held transaction' : 'Decline a held transaction',
      description:
        (action === 'approve'
          ? 'The transaction goes on toward the ledger (status `accepted`, then `succeeded`). '
          : 'The transaction fails with failure_code `risk_declined`. ') +
        'A decision is made once: a transaction not (or no longer) held answers 404. The body is optional.',
      tag: 'Reviews',
      security: 'operatorKey',
      parameters: [TX_ID],
      requestBody: REVIEW_NOTE_BODY,
      responses: { 200: { description: 'Decided.', content: json('ReviewDecision') } },
      problems: [400, 401, 403, 404, 503],
    }),
  ),
];

const WEBHOOK_OPERATIONS: Operation[] = [
  {
    method: 'post',
    path: '/v1/webhook_endpoints',
    operationId: 'createWebhookEndpoint',
    summary: 'Register a webhook endpoint',
    description: `The answer carries the signing secret, once. ${WEBHOOK_BODY_LIMIT}`,
    tag: 'Webhooks',
    security: 'merchantKey',
    requestBody: { required: true, content: json('WebhookEndpointRequest') },
    responses: {
      201: {
        description: 'Created.',
        headers: { Location: { description: "The endpoint's URL.", schema: { type: 'string' } }, ...NO_STORE },
        content: json('WebhookEndpointCreated'),
      },
    },
    problems: [400, 401, 403, 413, 415, 503],
  },
  {
    method: 'get',
    path: '/v1/webhook_endpoints',
    operationId: 'listWebhookEndpoints',
    summary: "The merchant's webhook endpoints",
    tag: 'Webhooks',
    security: 'merchantKey',
    responses: { 200: { description: 'Oldest first (never a secret).', headers: NO_STORE, content: json('WebhookEndpointList') } },
    problems: [401, 403, 503],
  },
  {
    method: 'get',
    path: '/v1/webhook_endpoints/{id}',
    operationId: 'getWebhookEndpoint',
    summary: 'A webhook endpoint',
    tag: 'Webhooks',
    security: 'merchantKey',
    parameters: [ENDPOINT_ID],
    responses: { 200: { description: 'The endpoint (never its secret).', headers: NO_STORE, content: json('WebhookEndpoint') } },
    problems: [401, 403, 404, 503],
  },
  {
    method: 'patch',
    path: '/v1/webhook_endpoints/{id}',
    operationId: 'updateWebhookEndpoint',
    summary: 'Change a webhook endpoint',
    description: `Only the fields given change. Enabling a disabled endpoint clears its failure state. ${WEBHOOK_BODY_LIMIT}`,
    tag: 'Webhooks',
    security: 'merchantKey',
    parameters: [ENDPOINT_ID],
    requestBody: { required: true, content: json('WebhookEndpointPatch') },
    responses: { 200: { description: 'The endpoint as changed.', content: json('WebhookEndpoint') } },
    problems: [400, 401, 403, 404, 413, 415, 503],
  },
  {
    method: 'delete',
    path: '/v1/webhook_endpoints/{id}',
    operationId: 'deleteWebhookEndpoint',
    summary: 'Delete a webhook endpoint',
    description: 'It receives nothing more: what was still queued for it is dropped.',
    tag: 'Webhooks',
    security: 'merchantKey',
    parameters: [ENDPOINT_ID],
    responses: { 204: { description: 'Deleted.' } },
    problems: [401, 403, 404, 503],
  },
  {
    method: 'post',
    path: '/v1/webhook_endpoints/{id}/rotate_secret',
    operationId: 'rotateWebhookSecret',
    summary: "Rotate a webhook endpoint's signing secret",
    description: 'The answer carries the new secret, once. The previous one keeps signing (a second signature) until previous_secret_expires_at.',
    tag: 'Webhooks',
    security: 'merchantKey',
    parameters: [ENDPOINT_ID],
    responses: { 200: { description: 'The new secret.', headers: NO_STORE, content: json('WebhookEndpointRotated') } },
    problems: [401, 403, 404, 503],
  },
  {
    method: 'post',
    path: '/v1/webhook_endpoints/{id}/test',
    operationId: 'testWebhookEndpoint',
    summary: 'Send a webhook.test event',
    description: 'Queues a `webhook.test` event for this endpoint (whatever types it receives); it can be redelivered like any event.',
    tag: 'Webhooks',
    security: 'merchantKey',
    parameters: [ENDPOINT_ID],
    responses: { 202: { description: 'Queued.', content: json('WebhookTestQueued') } },
    problems: [401, 403, 404, 503],
  },
  {
    method: 'get',
    path: '/v1/webhook_endpoints/{id}/deliveries',
    operationId: 'listWebhookDeliveries',
    summary: "A webhook endpoint's deliveries",
    description: 'What waits in its queue, then the latest attempted events with each attempt.',
    tag: 'Webhooks',
    security: 'merchantKey',
    parameters: [
      ENDPOINT_ID,
      {
        name: 'limit',
        in: 'query',
        description: 'At most this many events (1-100, default 50).',
        schema: { type: 'integer', minimum: 1, maximum: 100, default: 50 },
      },
    ],
    responses: { 200: { description: 'Newest first.', headers: NO_STORE, content: json('WebhookDeliveries') } },
    problems: [401, 403, 404, 503],
  },
  {
    method: 'post',
    path: '/v1/webhook_endpoints/{id}/recover',
    operationId: 'recoverWebhookEndpoint',
    summary: 'Queue past events again for an endpoint',
    description:
      `Queues the merchant's events created since \`since\` (at most ${RECOVER_LIMIT.toLocaleString('en-US')}, oldest first) ` +
      `that this endpoint receives, e.g. after it was down past the retries. ${WEBHOOK_BODY_LIMIT}`,
    tag: 'Webhooks',
    security: 'merchantKey',
    parameters: [ENDPOINT_ID],
    requestBody: { required: true, content: json('WebhookRecoverRequest') },
    responses: { 202: { description: 'Queued.', content: json('WebhookRecoverQueued') } },
    problems: [400, 401, 403, 404, 413, 415, 503],
  },
  {
    method: 'post',
    path: '/v1/events/{id}/redeliver',
    operationId: 'redeliverEvent',
    summary: 'Deliver a webhook event again',
    description: `To one endpoint (\`endpoint_id\`) or every enabled endpoint that receives its type. The body is optional. ${WEBHOOK_BODY_LIMIT}`,
    tag: 'Webhooks',
    security: 'merchantKey',
    parameters: [
      { name: 'id', in: 'path', required: true, description: 'The event id (evt_…, the webhook-id header of a delivery).', schema: { type: 'string' } },
    ],
    requestBody: { required: false, content: json('RedeliverRequest') },
    responses: { 202: { description: 'Queued.', content: json('RedeliverQueued') } },
    problems: [400, 401, 403, 404, 413, 503],
  },
];

export const OPERATIONS: readonly Operation[] = [
  {
    method: 'post',
    path: '/v1/transactions',
    operationId: 'createTransaction',
    summary: 'Submit one transaction',
    description: "Appends the transaction to its merchant's partition and lane. Amounts are integers in minor units.",
    tag: 'Transactions',
    security: 'merchantKey',
    parameters: [IDEMPOTENCY_KEY],
    requestBody: { required: true, content: json('TransactionRequest') },
    responses: {
      202: {
        description: 'Accepted: the event is in Redis.',
        headers: {
          Location: { description: "The transaction's status URL.", schema: { type: 'string' } },
          'Idempotent-Replayed': { description: '"true" when this is the first answer again.', schema: { type: 'string', enum: ['true'] } },
        },
        content: json('Accepted'),
      },
    },
    problems: [400, 401, 403, 409, 413, 415, 429, 503],
  },
  {
    method: 'post',
    path: '/v1/transactions/batch',
    operationId: 'createTransactionBatch',
    summary: 'Submit a batch of transactions',
    description:
      `Up to ${BATCH_MAX_EVENTS.toLocaleString('en-US')} events and ${BATCH_MAX_BYTES / 1024 / 1024} MiB, as NDJSON or a JSON array. ` +
      'Each event is checked on its own: one bad line rejects that line only. Give each event an `idempotency_key` ' +
      '(the Idempotency-Key header is refused here). The answer is 202 even when every event was rejected; ' +
      'when some were rate-limited it carries Retry-After.',
    tag: 'Transactions',
    security: 'merchantKey',
    requestBody: {
      required: true,
      content: {
        'application/json': { schema: { type: 'array', minItems: 1, maxItems: BATCH_MAX_EVENTS, items: ref('BatchLine') } },
        'application/x-ndjson': {
          schema: { type: 'string', description: 'One BatchLine JSON object per line; blank lines are ignored.' },
        },
      },
    },
    responses: {
      202: {
        description: 'One result per event, in order.',
        headers: { 'Retry-After': { ...RETRY_AFTER, description: 'Present when some events were over the rate limit.' } },
        content: json('BatchResponse'),
      },
    },
    problems: [400, 401, 403, 413, 415, 503],
  },
  {
    method: 'get',
    path: '/v1/transactions/{id}',
    operationId: 'getTransaction',
    summary: 'A transaction and its current status',
    tag: 'Transactions',
    security: 'merchantKey',
    parameters: [{ name: 'id', in: 'path', required: true, description: 'The id ingest answered (tx_…).', schema: { type: 'string' } }],
    responses: { 200: { description: 'The transaction as its merchant sees it.', content: json('Transaction') } },
    problems: [401, 403, 404, 503],
  },
  {
    method: 'get',
    path: '/v1/wallets',
    operationId: 'getWallets',
    summary: "The merchant's balances per currency",
    tag: 'Wallets',
    security: 'merchantKey',
    responses: { 200: { description: 'Balances, ordered by currency.', content: json('Wallets') } },
    problems: [401, 403, 503],
  },
  {
    method: 'get',
    path: '/v1/streams/{topic}/tail',
    operationId: 'tailTopic',
    summary: "Tail a topic's events (Server-Sent Events)",
    description:
      'For `tap`-scope keys (read-only). Each event: `id` (a cursor; resume after it with Last-Event-ID), `event` (the transaction type) ' +
      'and `data` (the event JSON); a `: ping` comment keeps idle streams open.',
    tag: 'Tap',
    security: 'tapKey',
    parameters: [
      { name: 'topic', in: 'path', required: true, description: 'A topic of the topology.', schema: { type: 'string' } },
      {
        name: 'from',
        in: 'query',
        description:
          '`now` (default), `earliest` (the oldest entry still in Redis), unix milliseconds or an entry id. A start before the Redis window ' +
          "reads a postgres sink's input topic from Postgres first, then goes on live without a gap or a duplicate; other topics answer 400.",
        schema: { type: 'string' },
      },
      { name: 'merchant_id', in: 'query', description: "Only this merchant's events.", schema: { type: 'string' } },
      { name: 'type', in: 'query', description: 'Only events of this type.', schema: { type: 'string' } },
      { name: 'Last-Event-ID', in: 'header', description: 'Resume exactly after this cursor (wins over `from`).', schema: { type: 'string' } },
    ],
    responses: { 200: { description: 'An event stream.', content: { 'text/event-stream': { schema: { type: 'string' } } } } },
    problems: [400, 401, 403, 404, 429, 503],
  },
  ...REVIEW_OPERATIONS,
  ...WEBHOOK_OPERATIONS,
  {
    method: 'get',
    path: '/healthz',
    operationId: 'health',
    summary: 'Liveness',
    tag: 'Operations',
    responses: { 200: { description: 'The process answers.', content: json('Health') } },
    problems: [],
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'ready',
    summary: 'Readiness',
    tag: 'Operations',
    responses: { 200: { description: 'Redis and Postgres answer and no load is being shed.', content: json('Ready') } },
    problems: [503],
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    summary: 'Prometheus metrics',
    tag: 'Operations',
    responses: { 200: { description: 'Prometheus text exposition.', content: { 'text/plain': { schema: { type: 'string' } } } } },
    problems: [],
  },
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'openapi',
    summary: 'This document',
    tag: 'Operations',
    responses: { 200: { description: 'OpenAPI 3.1.', content: { 'application/json': { schema: { type: 'object' } } } } },
    problems: [],
  },
  {
    method: 'get',
    path: '/docs',
    operationId: 'docs',
    summary: 'The API reference page (Swagger UI, served locally)',
    tag: 'Operations',
    responses: { 200: { description: 'HTML.', content: { 'text/html': { schema: { type: 'string' } } } } },
    problems: [],
  },
];

export type OpenApiDocument = Record<string, unknown> & { paths: Record<string, Record<string, Record<string, unknown>>> };

/** The API's version (the /v1 routes), not the package's: the document changes only with the API. */
export const API_VERSION = '1.0.0';

export function openApiDocument(): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  for (const op of OPERATIONS) {
    const responses: Record<string, unknown> = { ...op.responses };
    for (const s of op.problems) responses[String(s)] = problemResponse(s);
    const item = (paths[op.path] ??= {});
    item[op.method] = {
      operationId: op.operationId,
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      tags: [op.tag],
      security: op.security ? [{ [op.security]: [] }] : [],
      ...(op.parameters ? { parameters: op.parameters } : {}),
      ...(op.requestBody ? { requestBody: op.requestBody } : {}),
      responses,
    };
  }
  const schemas: Record<string, JsonSchema> = {};
  for (const [name, s] of Object.entries(NAMED)) schemas[name] = jsonSchema(s);
  return {
    openapi: '3.1.0',
    info: {
      title: 'Rill ingest API',
      version: API_VERSION,
      description:
        'Payment events in, over HTTP. Errors are application/problem+json (RFC 9457). 429 and 503 carry Retry-After: ' +
        'retry with the same Idempotency-Key (or per-event idempotency_key) and nothing is appended twice.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: '/' }],
    tags: [
      { name: 'Transactions' },
      { name: 'Wallets' },
      { name: 'Webhooks', description: "The merchant's webhook endpoints and deliveries (Standard Webhooks signatures)." },
      { name: 'Tap', description: 'Read-only event streams for the data team.' },
      { name: 'Reviews', description: 'The risk review queue, for operators.' },
      { name: 'Operations', description: 'Health, readiness, metrics and this document.' },
    ],
    paths,
    components: {
      schemas,
      securitySchemes: {
        merchantKey: { type: 'http', scheme: 'bearer', description: 'A merchant key: `rill keys create --merchant ID`.' },
        tapKey: { type: 'http', scheme: 'bearer', description: 'A key with the tap scope: `rill keys create --scope tap`.' },
        operatorKey: { type: 'http', scheme: 'bearer', description: 'A key with the operator scope: `rill keys create --scope operator`.' },
      },
    },
  };
}
