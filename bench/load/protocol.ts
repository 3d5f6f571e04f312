// The load generator's job and result, exchanged over IPC between the runner and load/loadgen.ts.
import type { Merchant, Mix } from '../lib/payload.ts';

export interface LoadJob {
  /** e.g. http://127.0.0.1:8123 */
  origin: string;
  /** /v1/transactions or /v1/transactions/batch */
  path: string;
  /**
   * closed: `concurrency` requests in flight, each sent when the previous one answered (max throughput)
   * open:   `rate` requests per second on a fixed schedule, whatever the answers (latency at a rate;
   *         measured from the scheduled send time, so queueing in the generator counts: no coordinated omission)
   */
  mode: 'closed' | 'open';
  /** closed: requests in flight; open: connections (requests beyond them queue). */
  concurrency: number;
  rate?: number;
  durationMs?: number;
  /** Stop after this many requests (closed mode; e.g. to preload a backlog). */
  maxRequests?: number;
  /** Not recorded: the first part of the run (JIT, caches, connections). */
  warmupMs?: number;
  payload: PayloadSpec;
}

export interface PayloadSpec {
  kind: 'single' | 'batch';
  mix: Mix;
  merchants: Merchant[];
  /** Events per batch request. */
  batchSize?: number;
  /** An Idempotency-Key per request (single) or idempotency_key per event (batch). */
  idempotency: boolean;
  /** Makes this job's idempotency keys and references unique within the run. */
  seed: string;
  /** Refund mix: payin ids per merchant id. */
  refs?: Record<string, string[]>;
}

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export interface LoadResult {
  /** Requests sent (warm-up excluded). */
  requests: number;
  /** 2xx answers among them. */
  ok: number;
  status: Record<string, number>;
  /** Connection errors and timeouts. */
  errors: number;
  errorSample?: string;
  /** Open mode: scheduled sends skipped because too many were already waiting. */
  dropped: number;
  /** Events accepted (batch: counted in the answers; single: = ok). */
  events: number;
  /** The recorded window, ms. */
  measuredMs: number;
  /** 2xx answers per second over the recorded window. */
  rps: number;
  eventsPerSec: number;
  offeredRate?: number;
  /** Request latency in milliseconds (HdrHistogram, µs resolution). */
  latencyMs: LatencySummary;
  /** The HdrHistogram of latencies in µs, compressed base64 (hdr-histogram-js). */
  hdr: string;
  /** 2xx answers per second, second by second. */
  perSecond: number[];
  /** CPU the generator used over the run (user + system, ms). */
  cpuMs: number;
}

export type ToLoadgen = { type: 'run'; id: number; job: LoadJob } | { type: 'exit' };
export type FromLoadgen =
  | { type: 'ready' }
  | { type: 'progress'; id: number; done: number; ok: number; elapsedMs: number }
  | { type: 'result'; id: number; result: LoadResult }
  | { type: 'error'; id: number; message: string };
