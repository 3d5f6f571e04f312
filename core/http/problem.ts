// RFC 9457 problem details. Every error the edge answers goes through here, so each one has the
// same shape and content type, and nothing from an exception (message, stack) leaks by accident.
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ProblemError } from '../errors.ts';
import type { FieldError, Problem } from '../errors.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Stable, non-dereferenceable type URIs (RFC 9457 §3.1.1): clients switch on these. */
export const problemType = (slug: string): string => `urn:problem-type:rill:${slug}`;

export function problemResponse(problem: Problem, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(problem), {
    status: problem.status,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': 'no-store', ...headers },
  });
}

// One constructor per status the API documents (design §3), so titles and types never drift.
const make =
  (status: ContentfulStatusCode, slug: string, title: string) =>
  (detail: string, extra: { errors?: FieldError[]; headers?: Record<string, string> } = {}): ProblemError =>
    new ProblemError({ type: problemType(slug), title, status, detail, ...(extra.errors ? { errors: extra.errors } : {}) }, extra.headers);

export const badRequest = make(400, 'invalid-request', 'Invalid request');
export const malformedJson = make(400, 'malformed-json', 'Malformed JSON');
export const validationFailed = make(400, 'validation-failed', 'Validation failed');
export const unauthorized = make(401, 'unauthorized', 'Unauthorized');
export const forbidden = make(403, 'forbidden', 'Forbidden');
export const notFound = make(404, 'not-found', 'Not Found');
export const methodNotAllowed = make(405, 'method-not-allowed', 'Method Not Allowed');
export const idempotencyConflict = make(409, 'idempotency-conflict', 'Idempotency-Key reused');
const unprocessable = make(422, 'unknown-payin', 'Unknown payin');

/** 422: a refund or chargeback whose reference is not a payin of the merchant that Rill accepted. */
export function unknownPayin(type: string, reference: string): ProblemError {
  return unprocessable(
    `A ${type} must reference a payin of the same merchant accepted within the refund window; ${JSON.stringify(reference.slice(0, 100))} is not one. Nothing was appended.`,
    {
      errors: [{ path: '/reference', message: 'not a payin of this merchant accepted within the refund window' }],
    },
  );
}
export const payloadTooLarge = make(413, 'payload-too-large', 'Payload Too Large');
export const unsupportedMediaType = make(415, 'unsupported-media-type', 'Unsupported Media Type');
export const tooManyRequests = make(429, 'rate-limited', 'Too Many Requests');
export const serviceUnavailable = make(503, 'service-unavailable', 'Service Unavailable');
export const overloaded = make(503, 'overloaded', 'Service Overloaded');
