// The OpenAPI 3.1 document of the ingest API, built from the zod schemas: request bodies from the
// schemas that validate them (../validation.ts), responses from ./schemas.ts, problems from
// ../problem.ts's one shape. Served at GET /openapi.json (./routes.ts); the contract test checks
// real answers against it, and client/schema.d.ts is generated from it (npm run gen:client).
//
// A route joins the document by an entry in OPERATIONS (test/openapi-contract.test.ts fails for
// a route of the app that has none).
import { z } from 'zod';
import { BATCH_MAX_BYTES, BATCH_MAX_EVENTS } from '../batch/parse.ts';
import { TransactionBodySchema } from '../validation.ts';
import {
  AcceptedSchema,
  BatchLineSchema,
  BatchResponseSchema,
  HealthSchema,
  ProblemSchema,
  ReadySchema,
  TransactionViewSchema,
  WalletsSchema,
} from './schemas.ts';

type JsonSchema = Record<string, unknown>;
type Security = 'merchantKey' | 'tapKey';

interface Param {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  description: string;
  schema: JsonSchema;
}

interface Operation {
  method: 'get' | 'post';
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
  404: { description: 'Nothing here (for transactions: none this merchant may see).' },
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
  description: 'One key per logical request, kept across retries: the same key and body answer the first answer again; another body answers 409. Keys live 24 h.',
  schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e](?:[\\x20-\\x7e]{0,253}[\\x21-\\x7e])?$' },
};

export const OPERATIONS: readonly Operation[] = [
  {
    method: 'post',
    path: '/v1/transactions',
    operationId: 'createTransaction',
    summary: 'Submit one transaction',
    description: 'Appends the transaction to its merchant\'s partition and lane. Amounts are integers in minor units.',
    tag: 'Transactions',
    security: 'merchantKey',
    parameters: [IDEMPOTENCY_KEY],
    requestBody: { required: true, content: json('TransactionRequest') },
    responses: {
      202: {
        description: 'Accepted: the event is in Redis.',
        headers: {
          Location: { description: 'The transaction\'s status URL.', schema: { type: 'string' } },
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
    summary: "A transaction and its current status",
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
      { name: 'from', in: 'query', description: '`now` (default), `earliest`, unix milliseconds or an entry id.', schema: { type: 'string' } },
      { name: 'merchant_id', in: 'query', description: 'Only this merchant\'s events.', schema: { type: 'string' } },
      { name: 'type', in: 'query', description: 'Only events of this type.', schema: { type: 'string' } },
      { name: 'Last-Event-ID', in: 'header', description: 'Resume exactly after this cursor (wins over `from`).', schema: { type: 'string' } },
    ],
    responses: { 200: { description: 'An event stream.', content: { 'text/event-stream': { schema: { type: 'string' } } } } },
    problems: [400, 401, 403, 404, 429, 503],
  },
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
      { name: 'Tap', description: 'Read-only event streams for the data team.' },
      { name: 'Operations', description: 'Health, readiness, metrics and this document.' },
    ],
    paths,
    components: {
      schemas,
      securitySchemes: {
        merchantKey: { type: 'http', scheme: 'bearer', description: 'A merchant key: `rill keys create --merchant ID`.' },
        tapKey: { type: 'http', scheme: 'bearer', description: 'A key with the tap scope: `rill keys create --scope tap`.' },
      },
    },
  };
}
