// The typed merchant client (`rill/client`): the ingest API's types are generated from its OpenAPI
// document (./schema.ts, `npm run docs`), the calls are plain fetch. What every integration would
// otherwise rewrite is built in:
//  - one Idempotency-Key per logical request (yours or a random UUID), the same on every retry,
//    so a retried POST can never append twice; batch events each get an idempotency_key;
//  - 429 and 503 (and network errors) are retried, waiting at least Retry-After, otherwise capped
//    exponential backoff with full jitter;
//  - batches are split at the API's limits (10,000 events, 5 MiB) and events a batch answer
//    rejected as rate-limited or unavailable are sent again;
//  - every other error is a RillProblemError carrying the RFC 9457 problem.
// No dependency besides the runtime's fetch (Node 18+, browsers, Deno, Bun).
import type { components, paths } from './schema.ts';

type Schemas = components['schemas'];
export type TransactionRequest = paths['/v1/transactions']['post']['requestBody']['content']['application/json'];
export type Accepted = Schemas['Accepted'];
export type BatchLine = Schemas['BatchLine'];
export type BatchResponse = Schemas['BatchResponse'];
export type BatchResult = BatchResponse['results'][number];
export type Transaction = Schemas['Transaction'];
export type Wallets = Schemas['Wallets'];
export type Problem = Schemas['Problem'];
export type { components, paths };

/** The API's batch limits (POST /v1/transactions/batch). */
export const BATCH_MAX_EVENTS = 10_000;
export const BATCH_MAX_BYTES = 5 * 1024 * 1024;

export interface RillClientOptions {
  /** Where ingest answers, e.g. http://localhost:8080. */
  baseUrl: string;
  /** A merchant key (`rill keys create --merchant ID`). */
  apiKey: string;
  /** Attempts after the first for 429, 503 and network errors (default 5). */
  maxRetries?: number;
  /** Backoff: base × 2^attempt, capped at maxDelayMs, times a random share (full jitter). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A Retry-After longer than this is not waited for: the error is thrown (default 60 s). */
  maxRetryAfterMs?: number;
  /** Batch limits, lower than the API's if you like. */
  batchMaxEvents?: number;
  batchMaxBytes?: number;
  fetch?: typeof fetch;
  /** For tests: the jitter's random source and the wait. */
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface RequestOptions {
  /** The logical request's key; default a random UUID. Reuse it to retry the same request yourself. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

export interface Submitted extends Accepted {
  /** True when the API answered an earlier request's answer again (same key, same body). */
  replayed: boolean;
}

/** An answer that is not a success: the API's problem details, typed. */
export class RillProblemError extends Error {
  override name = 'RillProblemError';
  readonly status: number;
  readonly type: string;
  readonly errors: Problem['errors'];
  /** Seconds, when the answer carried Retry-After. */
  readonly retryAfter: number | undefined;
  constructor(
    readonly problem: Problem,
    retryAfter?: number,
  ) {
    super(`${problem.status} ${problem.title}: ${problem.detail}`);
    this.status = problem.status;
    this.type = problem.type;
    this.errors = problem.errors;
    this.retryAfter = retryAfter;
  }
}

const RETRY_STATUSES = new Set([429, 503]);

export class RillClient {
  private readonly o: Required<Omit<RillClientOptions, 'fetch'>> & { fetch: typeof fetch };

  constructor(options: RillClientOptions) {
    this.o = {
      maxRetries: 5,
      baseDelayMs: 200,
      maxDelayMs: 10_000,
      maxRetryAfterMs: 60_000,
      batchMaxEvents: BATCH_MAX_EVENTS,
      batchMaxBytes: BATCH_MAX_BYTES,
      random: Math.random,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      ...options,
      baseUrl: options.baseUrl.replace(/\/+$/, ''),
      fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
    };
  }

  /** POST /v1/transactions, retried with the same Idempotency-Key until accepted or refused. */
  async createTransaction(body: TransactionRequest, opts: RequestOptions = {}): Promise<Submitted> {
    const key = opts.idempotencyKey ?? crypto.randomUUID();
    const res = await this.send('/v1/transactions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const accepted = (await res.json()) as Accepted;
    return { ...accepted, replayed: res.headers.get('idempotent-replayed') === 'true' };
  }

  /**
   * Any number of events through POST /v1/transactions/batch: split at the limits, each event with
   * an idempotency_key (its own or a random one), events rejected as rate-limited or unavailable
   * sent again after the answer's Retry-After. One result per event, `index` into `events`.
   */
  async createTransactions(events: readonly BatchLine[], opts: { signal?: AbortSignal } = {}): Promise<BatchResult[]> {
    const lines = events.map((e) => (e.idempotency_key ? e : { ...e, idempotency_key: crypto.randomUUID() }));
    const results: BatchResult[] = new Array(lines.length);
    for (const chunk of this.chunks(lines)) {
      let pending = chunk;
      for (let attempt = 0; ; attempt++) {
        const res = await this.send('/v1/transactions/batch', {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body: pending.map((i) => JSON.stringify(lines[i])).join('\n'),
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        const answer = (await res.json()) as BatchResponse;
        const again: number[] = [];
        for (const r of answer.results) {
          const index = pending[r.index]!;
          results[index] = { ...r, index };
          if (r.status === 'rejected' && r.errors.every((e) => RETRY_STATUSES.has(e.status))) again.push(index);
        }
        if (again.length === 0 || attempt >= this.o.maxRetries) break;
        const wait = this.delay(attempt, retryAfterOf(res));
        if (wait === undefined) break;
        await this.o.sleep(wait);
        pending = again;
      }
    }
    return results;
  }

  /** GET /v1/transactions/{id}. */
  async getTransaction(id: string, opts: { signal?: AbortSignal } = {}): Promise<Transaction> {
    const res = await this.send(`/v1/transactions/${encodeURIComponent(id)}`, opts.signal ? { signal: opts.signal } : {});
    return (await res.json()) as Transaction;
  }

  /** GET /v1/wallets. */
  async getWallets(opts: { signal?: AbortSignal } = {}): Promise<Wallets['wallets']> {
    const res = await this.send('/v1/wallets', opts.signal ? { signal: opts.signal } : {});
    return ((await res.json()) as Wallets).wallets;
  }

  /** Indexes of `lines`, grouped so each group's NDJSON body is within both limits. */
  private *chunks(lines: readonly BatchLine[]): Generator<number[]> {
    let group: number[] = [];
    let bytes = 0;
    for (let i = 0; i < lines.length; i++) {
      const size = utf8Length(JSON.stringify(lines[i])) + 1; // and its newline
      if (size > this.o.batchMaxBytes) throw new RangeError(`event ${i} alone is larger than a batch may be (${this.o.batchMaxBytes} bytes)`);
      if (group.length === this.o.batchMaxEvents || bytes + size > this.o.batchMaxBytes) {
        yield group;
        group = [];
        bytes = 0;
      }
      group.push(i);
      bytes += size;
    }
    if (group.length) yield group;
  }

  /** One logical request: the same init (and so the same Idempotency-Key) on every attempt. */
  private async send(path: string, init: RequestInit): Promise<Response> {
    const headers = { accept: 'application/json', authorization: `Bearer ${this.o.apiKey}`, ...(init.headers as Record<string, string>) };
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.o.fetch(`${this.o.baseUrl}${path}`, { ...init, headers });
      } catch (err) {
        // the request may or may not have arrived: safe to send again, it carries its key
        if (init.signal?.aborted || attempt >= this.o.maxRetries) throw err;
        await this.o.sleep(this.delay(attempt, undefined)!);
        continue;
      }
      if (res.ok) return res;
      const retryAfter = retryAfterOf(res);
      const wait = RETRY_STATUSES.has(res.status) && attempt < this.o.maxRetries ? this.delay(attempt, retryAfter) : undefined;
      if (wait === undefined) throw new RillProblemError(await problemOf(res), retryAfter);
      await res.body?.cancel();
      await this.o.sleep(wait);
    }
  }

  /** Full-jitter backoff, never shorter than Retry-After; undefined when Retry-After is too long to wait. */
  private delay(attempt: number, retryAfterSeconds: number | undefined): number | undefined {
    const backoff = Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** attempt) * this.o.random();
    if (retryAfterSeconds === undefined) return backoff;
    const floor = retryAfterSeconds * 1000;
    if (floor > this.o.maxRetryAfterMs) return undefined;
    // past the server's hint, a little jitter so clients told the same second do not come back together
    return floor + Math.min(backoff, this.o.baseDelayMs);
  }
}

function retryAfterOf(res: Response): number | undefined {
  const v = res.headers.get('retry-after');
  if (v === null) return undefined;
  const s = Number(v);
  if (Number.isFinite(s) && s >= 0) return s;
  const at = Date.parse(v); // an HTTP date
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

async function problemOf(res: Response): Promise<Problem> {
  const text = await res.text();
  try {
    const p = JSON.parse(text) as Partial<Problem>;
    if (typeof p.type === 'string' && typeof p.title === 'string') {
      return { status: res.status, detail: '', ...p } as Problem;
    }
  } catch {
    // not problem+json (a proxy's page): described below
  }
  return { type: 'about:blank', title: res.statusText || 'Error', status: res.status, detail: text.slice(0, 200) };
}

const encoder = new TextEncoder();
const utf8Length = (s: string): number => encoder.encode(s).byteLength;
