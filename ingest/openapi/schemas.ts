// The response bodies of the ingest API as zod schemas: the OpenAPI document describes them
// (spec.ts) and the contract test validates real answers against that document. Request bodies
// are NOT redefined here: the spec uses the very schemas that validate them (../validation.ts,
// and the route modules' exported schemas: ../routes/webhooks.ts, ../routes/review.ts).
import { z } from 'zod';
import { TRANSACTION_TYPES } from '../../core/event.ts';
import type { TransactionEvent } from '../../core/event.ts';
import { FAILURE_CODES } from '../../core/failure-codes.ts';
import { WEBHOOK_EVENT_TYPES } from '../../core/webhooks/events.ts';
import type { DeliveryView } from '../../core/webhooks/deliveries.ts';
import type { EndpointView } from '../../core/webhooks/endpoints.ts';
import type { Problem } from '../../core/errors.ts';
import type { BatchResult } from '../routes/batch.ts';
import type { ReviewDecision } from '../routes/review.ts';
import type { TransactionView } from '../../core/transaction-view.ts';
import type { WalletView } from '../routes/wallets.ts';
import { TransactionBodySchema } from '../validation.ts';

export const FieldErrorSchema = z.object({
  path: z.string().meta({ description: 'JSON Pointer (RFC 6901) into the request body; "" is the body itself.' }),
  message: z.string(),
});

export const ProblemSchema = z
  .object({
    type: z.string().meta({ description: 'A stable URN clients switch on, e.g. urn:problem-type:rill:validation-failed.' }),
    title: z.string(),
    status: z.int().min(400).max(599),
    detail: z.string(),
    errors: z.array(FieldErrorSchema).optional(),
  })
  .meta({ description: 'RFC 9457 problem details; every error of the API has this shape.' });

export const AcceptedSchema = z.object({
  id: z.string().regex(/^tx_/).meta({ description: 'The transaction id (tx_ + ULID): the same on an idempotent replay.' }),
  status: z.literal('accepted'),
});

/** A batch line: the single endpoint's body plus its own idempotency key. */
export const BatchLineSchema = TransactionBodySchema.extend({
  idempotency_key: z
    .string()
    .min(1)
    .max(255)
    .optional()
    .meta({ description: 'Works like the Idempotency-Key header of POST /v1/transactions (same key space, 24 h).' }),
});

export const LineErrorSchema = z.object({
  type: z.string(),
  status: z.int().meta({ description: 'What the single endpoint would have answered for this event.' }),
  path: z.string(),
  message: z.string(),
});

export const BatchResponseSchema = z.object({
  results: z.array(
    z.union([
      z.object({ index: z.int().min(0), id: z.string(), status: z.enum(['accepted', 'duplicate']) }),
      z.object({ index: z.int().min(0), status: z.literal('rejected'), errors: z.array(LineErrorSchema) }),
    ]),
  ),
});

/** What GET /v1/transactions/:id may say; routes/transaction-status.ts documents each. */
export const TRANSACTION_STATUSES = ['accepted', 'processing', 'in_review', 'succeeded', 'failed', 'dead_lettered'] as const;

const nullable = <T extends z.ZodType>(s: T) => s.nullable();

export const TransactionViewSchema = z.object({
  id: z.string(),
  merchant_id: z.string(),
  type: z.string(),
  amount: z.int(),
  currency: z.string(),
  reference: nullable(z.string()),
  metadata: nullable(z.record(z.string(), z.string())),
  status: z.enum(TRANSACTION_STATUSES).meta({
    description:
      'accepted (in Redis, not yet picked up), processing, in_review (held by the risk stage for an operator), succeeded, failed (see failure_code) or dead_lettered.',
  }),
  failure_code: nullable(z.string()).meta({
    description: `Set when status is failed: a stable code, one of ${Object.keys(FAILURE_CODES).join(', ')}.`,
  }),
  failure_reason: nullable(z.string()),
  risk_score: nullable(z.number()),
  risk_reasons: nullable(z.array(z.string())).meta({
    description: "The risk stage's top reasons, in words (`code: text`); null before it scored the transaction.",
  }),
  occurred_at: nullable(z.string()),
  ingested_at: z.string(),
  processed_at: nullable(z.string()),
});

export const WalletsSchema = z.object({
  wallets: z.array(
    z.object({
      currency: z.string(),
      balance: z.int().meta({ description: 'Minor units; may be negative after a chargeback.' }),
      updated_at: z.string(),
    }),
  ),
});

/** A transaction the risk stage holds for review: the event as it travels the pipeline. */
export const HeldTransactionSchema = z.object({
  id: z.string(),
  merchant_id: z.string(),
  type: z.enum(TRANSACTION_TYPES),
  amount: z.int(),
  currency: z.string(),
  reference: z.string().optional(),
  occurred_at: z.string().optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  ingested_at: z.int().meta({ description: 'Unix milliseconds when ingest accepted it.' }),
  status: z.enum(TRANSACTION_STATUSES).optional().meta({ description: 'in_review while held.' }),
  risk_score: z.number().optional(),
  risk_reasons: z.array(z.string()).optional(),
  risk_rules_version: z.int().optional().meta({ description: "The version of the risk rules it was held under (0: topology.yaml's)." }),
});

export const ReviewListSchema = z.object({
  data: z.array(HeldTransactionSchema).meta({ description: 'Held transactions, oldest id first.' }),
});

export const ReviewDecisionSchema = z.object({
  id: z.string(),
  status: z.enum(['accepted', 'failed']).meta({ description: 'accepted: on toward the ledger; failed: declined (failure_code risk_declined).' }),
  failure_code: nullable(z.string()),
  review: z.object({
    decision: z.enum(['approved', 'declined']),
    by: z.string().meta({ description: 'Who decided: "operator key <key id>".' }),
    at: z.string(),
    note: z.string().optional(),
  }),
});

export const WebhookEndpointSchema = z.object({
  id: z.string().regex(/^we_/),
  url: z.string(),
  description: nullable(z.string()),
  event_types: nullable(z.array(z.string())).meta({ description: `The event types it receives (${WEBHOOK_EVENT_TYPES.join(', ')}); null: every type.` }),
  enabled: z.boolean(),
  max_in_flight: z.int(),
  disabled_reason: nullable(z.string()).meta({ description: 'Why Rill disabled it (failing for too long); null when enabled or disabled by the merchant.' }),
  failing_since: nullable(z.string()),
  created_at: z.string(),
  updated_at: z.string(),
});

const SECRET = z
  .string()
  .regex(/^whsec_/)
  .meta({ description: 'The signing secret (Standard Webhooks): shown here only, never again.' });

export const WebhookEndpointCreatedSchema = WebhookEndpointSchema.extend({ secret: SECRET });

export const WebhookEndpointRotatedSchema = WebhookEndpointSchema.extend({
  secret: SECRET,
  previous_secret_expires_at: nullable(z.string()).meta({ description: 'Until then deliveries carry a second signature, by the previous secret.' }),
});

export const WebhookEndpointListSchema = z.object({ data: z.array(WebhookEndpointSchema) });

export const WebhookTestQueuedSchema = z.object({
  event_id: z.string(),
  type: z.literal('webhook.test'),
  status: z.literal('queued'),
});

const WebhookAttemptSchema = z.object({
  attempt: z.int().min(1),
  status_code: nullable(z.int()),
  latency_ms: z.number(),
  error: nullable(z.string()),
  outcome: z.string(),
  next_retry_at: nullable(z.string()),
  attempted_at: z.string(),
});

export const WebhookDeliveriesSchema = z.object({
  data: z
    .array(
      z.object({
        event_id: z.string(),
        event_type: z.string(),
        status: z.string().meta({ description: 'pending (queued, not yet tried), retrying, delivered or failed.' }),
        next_retry_at: nullable(z.string()),
        attempts: z.array(WebhookAttemptSchema),
      }),
    )
    .meta({ description: 'Waiting deliveries, then the latest attempted ones, newest first.' }),
});

export const WebhookRecoverQueuedSchema = z.object({
  queued: z.int().min(0).meta({ description: 'Deliveries queued (events of types the endpoint does not receive are skipped).' }),
  limit: z.int().meta({ description: 'At most this many events are queued per call (the oldest first).' }),
});

export const RedeliverQueuedSchema = z.object({
  event_id: z.string(),
  queued: z.int().min(0).meta({ description: 'Deliveries queued (0: no enabled endpoint takes it).' }),
});

export const HealthSchema = z.object({ status: z.literal('ok') });
export const ReadySchema = z.object({ status: z.literal('ready') });

// What the handlers answer must fit what the document says (checked by tsc; the contract test
// checks real answers): each handler's own type is assignable to its schema's.
type Fits<Actual extends Documented, Documented> = Actual;
export type DocumentedAnswers = [
  Fits<TransactionView, z.input<typeof TransactionViewSchema>>,
  Fits<{ wallets: WalletView[] }, z.input<typeof WalletsSchema>>,
  Fits<{ results: BatchResult[] }, z.input<typeof BatchResponseSchema>>,
  Fits<Problem, z.input<typeof ProblemSchema>>,
  Fits<{ data: TransactionEvent[] }, z.input<typeof ReviewListSchema>>,
  Fits<ReviewDecision, z.input<typeof ReviewDecisionSchema>>,
  Fits<{ data: EndpointView[] }, z.input<typeof WebhookEndpointListSchema>>,
  Fits<EndpointView & { secret: string }, z.input<typeof WebhookEndpointCreatedSchema>>,
  Fits<EndpointView & { secret: string; previous_secret_expires_at: string | null }, z.input<typeof WebhookEndpointRotatedSchema>>,
  Fits<{ data: DeliveryView[] }, z.input<typeof WebhookDeliveriesSchema>>,
];
