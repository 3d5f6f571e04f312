// The risk review queue over HTTP, for `operator` keys:
//   GET  /v1/reviews[?merchant_id=]      transactions held by the risk stage (status in_review)
//   POST /v1/reviews/:id/approve         on toward the ledger
//   POST /v1/reviews/:id/decline         failed, failure_code risk_declined
// approve/decline take an optional JSON body { "note": string }. 404 when the id is not (or no
// longer) held: a decision is made once (core/review-queue.ts).
import { Hono } from 'hono';
import { z } from 'zod';
import type { TransactionEvent } from '../../core/event.ts';
import type { AuthEnv } from '../auth/index.ts';
import { badRequest, notFound } from '../../core/http/problem.ts';
import type { ReviewAction, ReviewQueue } from '../../core/review-queue.ts';

const MAX_NOTE = 1_000;

/** The optional body of approve and decline (the OpenAPI document uses this very schema). */
export const ReviewDecisionBodySchema = z.object({
  note: z.string().max(MAX_NOTE).optional().meta({ description: 'Why: recorded with the decision (and, on a decline, in failure_reason).' }),
});

/** What approve and decline answer. */
export interface ReviewDecision {
  id: string;
  status: 'accepted' | 'failed';
  failure_code: string | null;
  review: NonNullable<TransactionEvent['review']>;
}

export function reviewRoutes(queue: ReviewQueue): Hono<AuthEnv> {
  const app = new Hono<AuthEnv>();
  app.get('/v1/reviews', async (c) => {
    const merchant = c.req.query('merchant_id');
    return c.json({ data: await queue.list(merchant || undefined) });
  });
  const decide = (action: ReviewAction) =>
    app.post(`/v1/reviews/:id/${action}`, async (c) => {
      const note = await noteOf(c.req.raw);
      const principal = c.get('principal');
      const decided = await queue.decide(c.req.param('id'), action, `operator key ${principal.keyId}`, note);
      if (!decided) throw notFound(`Transaction ${c.req.param('id').slice(0, 100)} is not held for review (unknown, or already decided).`);
      const answer: ReviewDecision = {
        id: decided.id,
        status: decided.status === 'failed' ? 'failed' : 'accepted',
        failure_code: decided.failure_code ?? null,
        review: decided.review!,
      };
      return c.json(answer);
    });
  decide('approve');
  decide('decline');
  return app;
}

async function noteOf(req: Request): Promise<string | undefined> {
  const text = await req.text();
  if (!text.trim()) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw badRequest('The body must be JSON: { "note": string } or empty.');
  }
  const parsed = ReviewDecisionBodySchema.safeParse(body);
  if (!parsed.success) throw badRequest(`The body must be { "note": string } (at most ${MAX_NOTE} characters) or empty.`);
  return parsed.data.note;
}
