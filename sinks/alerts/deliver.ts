// POST one JSON body to one webhook, retrying what can succeed later: network errors, timeouts,
// 5xx and 429 (waiting at least its Retry-After). Any other answer outside 2xx (4xx, 3xx) is
// permanent. Every request has its own timeout, and nothing (attempt or wait) runs past the
// alert's deadline, so one broken webhook holds an alert for at most delivery_timeout.
// Errors name the webhook, never its URL (it carries a token).
import { setTimeout as sleep } from 'node:timers/promises';
import { WebhookError } from '../../core/errors.ts';
import { backoffMs } from '../../core/retry.ts';
import type { RetryConfig } from '../../core/topology/schema.ts';

export interface AttemptReport {
  attempt: number;
  /** HTTP status, when there was an answer. */
  status?: number;
  /** 'ok'; 'retryable' (network error, timeout, 5xx, 429); 'permanent' (other 4xx, 3xx). */
  result: 'ok' | 'retryable' | 'permanent';
  /** Why it failed: "HTTP 503", "timeout", "network error: ECONNREFUSED". */
  reason?: string;
  /** The wait before the next attempt, when there is one. */
  waitMs?: number;
  durationMs: number;
}

export interface DeliverOptions {
  retry: RetryConfig;
  requestTimeoutMs: number;
  /** Unix ms: no attempt starts, no wait ends, after this. */
  deadline: number;
  /** Aborts the delivery (the sink is stopping): the result is `aborted`. */
  signal?: AbortSignal;
  random?: () => number;
  onAttempt?: (r: AttemptReport) => void;
  /** Shown in errors. */
  label: string;
}

export type DeliveryResult =
  | { outcome: 'delivered'; attempts: number; status: number }
  | { outcome: 'failed'; attempts: number; error: WebhookError }
  | { outcome: 'aborted'; attempts: number };

/** Retry-After: delta-seconds or an HTTP-date (RFC 9110 §10.2.3); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

interface Answer {
  status: number;
  statusText: string;
  retryAfterMs?: number;
  /** A short, single-line excerpt of the body (Telegram's description when it sends one). */
  detail: string;
}

async function readAnswer(res: Response): Promise<Answer> {
  let body = '';
  try {
    body = await res.text();
  } catch {
    // the body timed out or broke off: the status is what counts
  }
  let detail = body.replace(/\s+/g, ' ').trim().slice(0, 300);
  let retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
  if (body.startsWith('{')) {
    try {
      const j = JSON.parse(body) as { description?: unknown; parameters?: { retry_after?: unknown } };
      if (typeof j.description === 'string') detail = j.description.slice(0, 300);
      // Telegram says how long to wait in the body as well
      const ra = j.parameters?.retry_after;
      if (typeof ra === 'number' && retryAfterMs === undefined) retryAfterMs = ra * 1000;
    } catch {
      // not JSON after all
    }
  }
  return { status: res.status, statusText: res.statusText, ...(retryAfterMs === undefined ? {} : { retryAfterMs }), detail };
}

function networkReason(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return 'timeout';
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `network error: ${cause ?? e?.message ?? String(err)}`;
}

export async function postJson(url: string, body: unknown, o: DeliverOptions): Promise<DeliveryResult> {
  const payload = JSON.stringify(body);
  const max = o.retry.attempts;
  let last = 'not attempted';
  for (let attempt = 1; attempt <= max; attempt++) {
    if (o.signal?.aborted) return { outcome: 'aborted', attempts: attempt - 1 };
    const remaining = o.deadline - Date.now();
    if (remaining <= 0) {
      return {
        outcome: 'failed',
        attempts: attempt - 1,
        error: new WebhookError(`${o.label}: gave up after ${attempt - 1} attempt(s), delivery_timeout reached; last: ${last}`, false),
      };
    }
    const started = Date.now();
    // one controller per request: the timeout and a stop both abort it (no AbortSignal.any on the
    // sink-long stop signal, which would collect one dependant per request)
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new DOMException('request timed out', 'TimeoutError')), Math.max(1, Math.min(o.requestTimeoutMs, remaining)));
    const onStop = () => ac.abort(o.signal?.reason);
    o.signal?.addEventListener('abort', onStop, { once: true });
    let answer: Answer | undefined;
    let reason: string;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'rill-alerts' },
        body: payload,
        // a redirect would carry the body (and maybe the token) somewhere else: not followed
        redirect: 'manual',
        signal: ac.signal,
      });
      answer = await readAnswer(res);
      reason = `HTTP ${answer.status}${answer.detail ? ` ${answer.detail}` : answer.statusText ? ` ${answer.statusText}` : ''}`;
    } catch (err) {
      if (o.signal?.aborted) return { outcome: 'aborted', attempts: attempt };
      reason = networkReason(err);
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onStop);
    }
    const durationMs = Date.now() - started;
    const status = answer?.status;
    if (status !== undefined && status >= 200 && status < 300) {
      o.onAttempt?.({ attempt, status, result: 'ok', durationMs });
      return { outcome: 'delivered', attempts: attempt, status };
    }
    last = reason;
    const retryable = status === undefined || status === 429 || status >= 500;
    if (!retryable) {
      o.onAttempt?.({ attempt, status, result: 'permanent', reason, durationMs });
      return { outcome: 'failed', attempts: attempt, error: new WebhookError(`${o.label}: ${reason} (permanent, attempt ${attempt})`, true, status) };
    }
    if (attempt === max) {
      o.onAttempt?.({ attempt, ...(status === undefined ? {} : { status }), result: 'retryable', reason, durationMs });
      break;
    }
    const waitMs = Math.max(backoffMs(attempt, o.retry, o.random), answer?.retryAfterMs ?? 0);
    o.onAttempt?.({ attempt, ...(status === undefined ? {} : { status }), result: 'retryable', reason, waitMs, durationMs });
    if (Date.now() + waitMs >= o.deadline) {
      return {
        outcome: 'failed',
        attempts: attempt,
        error: new WebhookError(
          `${o.label}: gave up after ${attempt} attempt(s): the next one (in ${waitMs} ms) would start past delivery_timeout; last: ${reason}`,
          false,
          status,
        ),
      };
    }
    try {
      await sleep(waitMs, undefined, o.signal ? { signal: o.signal } : {});
    } catch {
      return { outcome: 'aborted', attempts: attempt };
    }
  }
  return { outcome: 'failed', attempts: max, error: new WebhookError(`${o.label}: gave up after ${max} attempt(s); last: ${last}`, false) };
}
