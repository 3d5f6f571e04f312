// One error class per kind, all of them here, so every layer can decide by `instanceof` (never by
// a name string) what to do.
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/** A processor failure worth retrying later (a dependency down, an event that arrived early). */
export class RetryableError extends Error {
  override name = 'RetryableError';
}

/** A refund or chargeback waiting for its payin to settle (parked, never dead-lettered for it). */
export class PayinPendingError extends RetryableError {
  override name = 'PayinPendingError';
}

/** A refund of a payin past the hot window waiting for the sink to write the merchant's earlier refunds. */
export class SinkBehindError extends RetryableError {
  override name = 'SinkBehindError';
}

/** A processor failure that no retry can fix (a poison event): dead-letter it at once. */
export class FatalError extends Error {
  override name = 'FatalError';
}

/** The system is over its limits; the caller should come back after `retryAfterSeconds`. */
export class BackpressureError extends Error {
  override name = 'BackpressureError';
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** Bad configuration or usage: reported as one line, exit 1, never a stack trace. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** One problem of a topology file, at its 1-based line and column. */
export interface TopologyProblem {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
  message: string;
}

export function formatProblem(p: TopologyProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.message}`;
}

/** A topology that can't be used; `message` holds one `file:line:col: message` line per problem. */
export class TopologyError extends ConfigError {
  override name = 'TopologyError';
  constructor(readonly problems: TopologyProblem[]) {
    super(problems.map(formatProblem).join('\n'));
  }
}

/** Bad tap input (a start, an end, a cursor): one line for the CLI, a 400 for HTTP. */
export class TapInputError extends ConfigError {
  override name = 'TapInputError';
}

/** The topic is not declared in the topology (HTTP: 404). */
export class UnknownTopicError extends TapInputError {
  override name = 'UnknownTopicError';
}

/** The start is before what Redis still holds, and the topic keeps no history: a 400 / one CLI line. */
export class TapHistoryUnavailableError extends TapInputError {
  override name = 'TapHistoryUnavailableError';
}

// The ingest edge's refusals: each becomes its own problem+json (ingest/app.ts).

/** A dependency (Redis) did not answer in time: the request gets a 503 it can retry. */
export class DependencyTimeoutError extends Error {
  override name = 'DependencyTimeoutError';
}

/** The merchant's rate-limit bucket is empty: nothing was appended (429). */
export class RateLimitedError extends Error {
  override name = 'RateLimitedError';
  constructor(
    readonly merchantId: string,
    /** Until the next token, as the script computed it. */
    readonly retryAfterMs: number,
    /** The merchant's limit (the topology's RateLimitConfig; named here by shape: errors.ts imports nothing). */
    readonly limit: { per_second: number; burst: number },
  ) {
    super(`merchant ${merchantId} is over its rate limit`);
  }

  /** Retry-After: whole seconds, rounded up, at least 1. */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.retryAfterMs / 1000));
  }
}

/** A refund or chargeback whose reference is no payin of its merchant accepted within the refund window (422). */
export class UnknownPayinError extends Error {
  override name = 'UnknownPayinError';
  constructor(
    readonly type: string,
    readonly reference: string,
  ) {
    super(`${type} references no accepted payin of its merchant`);
  }
}

// The sinks' delivery failures.

/** An alert webhook's delivery failed (sinks/alerts); the message names the webhook, never its URL. */
export class WebhookError extends Error {
  override name = 'WebhookError';
  constructor(
    message: string,
    /** No retry can fix it (4xx other than 429, a redirect). */
    readonly permanent: boolean,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** A merchant webhook's host resolves to an address the SSRF guard refuses (sinks/webhooks/guarded-connector.ts). */
export class RefusedAddressError extends Error {
  override name = 'RefusedAddressError';
  readonly code = 'ERR_WEBHOOK_REFUSED_ADDRESS';
}

/** One field's complaint in a problem answer. */
export interface FieldError {
  /** JSON Pointer (RFC 6901) into the request body; "" is the body itself. */
  path: string;
  message: string;
}

/** RFC 9457 problem details, as the edge (ingest, console) answers them. */
export interface Problem {
  type: string;
  title: string;
  status: ContentfulStatusCode;
  detail: string;
  errors?: FieldError[];
}

/** An error that already knows its HTTP answer; thrown by handlers and middleware (core/http/problem.ts builds them). */
export class ProblemError extends Error {
  override name = 'ProblemError';
  constructor(
    readonly problem: Problem,
    readonly headers: Record<string, string> = {},
  ) {
    super(problem.detail);
  }
}
