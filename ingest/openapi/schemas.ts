// The response bodies of the ingest API as zod schemas: the OpenAPI document describes them
// (spec.ts) and the contract test validates real answers against that document. Request bodies
// are NOT redefined here: the spec uses the very schemas that validate them (../validation.ts).
import { z } from 'zod';
import type { Problem } from '../problem.ts';
import type { BatchResult } from '../routes/batch.ts';
import type { TransactionView } from '../routes/transaction-status.ts';
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
  status: z.enum(TRANSACTION_STATUSES),
  failure_reason: nullable(z.string()),
  risk_score: nullable(z.number()),
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
];
