// Helpers the scenarios share: waiting (core/wait.ts), preloading a backlog through the HTTP API, draining,
// latency summaries and number formatting.
import { encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import { newHistogram, summarize } from '../lib/hdr.ts';
import type { LatencySummary, LoadJob, LoadResult, PayloadSpec } from '../load/protocol.ts';
import type { BenchInstance } from '../lib/instance.ts';
import type { Merchant, Mix } from '../lib/payload.ts';
import { outstanding } from '../lib/redis-stats.ts';
import type { RunContext } from './types.ts';

import { waitFor } from '../../core/index.ts';

export { waitFor };

export function singlePayload(merchants: Merchant[], seed: string, mix: Mix = 'default', refs?: Record<string, string[]>): PayloadSpec {
  return { kind: 'single', mix, merchants, idempotency: true, seed, refs };
}

/**
 * Does this build serve POST /v1/transactions/batch? An empty batch is refused (4xx) by a build
 * that has the route and answered 404 (or 405) by one that has not; nothing is appended either way.
 */
export async function batchAvailable(ctx: RunContext, url: string, merchant: Merchant): Promise<boolean> {
  const known = ctx.shared.get('batch-endpoint') as boolean | undefined;
  if (known !== undefined) return known;
  const res = await fetch(`${url}/v1/transactions/batch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${merchant.key}`, 'content-type': 'application/x-ndjson' },
    body: '',
  });
  await res.arrayBuffer();
  const available = res.status !== 404 && res.status !== 405;
  ctx.shared.set('batch-endpoint', available);
  return available;
}

const PRELOAD_BATCH = 500;

/**
 * Post `n` events and insist that every one was accepted: in batches of 500 when the batch
 * endpoint is there (a backlog is set-up, not what is measured), else one by one, 50 in flight.
 */
export async function preload(ctx: RunContext, url: string, merchants: Merchant[], n: number, seed: string, label: string): Promise<LoadResult> {
  const batch = n % PRELOAD_BATCH === 0 && (await batchAvailable(ctx, url, merchants[0]!));
  const job: LoadJob = batch
    ? {
        origin: url,
        path: '/v1/transactions/batch',
        mode: 'closed',
        concurrency: 4,
        maxRequests: n / PRELOAD_BATCH,
        payload: { kind: 'batch', mix: 'default', merchants, batchSize: PRELOAD_BATCH, idempotency: true, seed },
      }
    : { origin: url, path: '/v1/transactions', mode: 'closed', concurrency: 50, maxRequests: n, payload: singlePayload(merchants, seed) };
  const per = batch ? PRELOAD_BATCH : 1;
  const r = await ctx.loadgen.run(job, (done) =>
    ctx.progress.update(0, `${label}: ${(done * per).toLocaleString('en-US')}/${n.toLocaleString('en-US')} posted`),
  );
  if (r.events !== n) throw new Error(`${label}: ${r.events} of ${n} events accepted (${JSON.stringify(r.status)} ${r.errorSample ?? ''})`);
  return r;
}

/** Wait until the given readers (stages/sinks; all when omitted) have nothing left to do. */
export async function drain(
  ctx: RunContext,
  inst: BenchInstance,
  timeoutMs: number,
  readers?: readonly string[],
  onTick?: (left: number) => void,
): Promise<number> {
  const t0 = Date.now();
  await waitFor(
    'the pipeline to drain',
    async () => {
      const left = await outstanding(ctx.redis, inst.prefix, inst.topology.summary, readers);
      onTick?.(left);
      return left === 0;
    },
    timeoutMs,
    100,
  );
  return Date.now() - t0;
}

/** Latency summary (ms) of values in µs, through an HdrHistogram like the load generator's. */
export function summarizeUs(values: readonly number[]): { summary: LatencySummary; hdr: string } {
  const h = newHistogram();
  for (const v of values) h.recordValue(Math.max(1, Math.min(119_000_000, Math.round(v))));
  return { summary: summarize(h), hdr: encodeIntoCompressedBase64(h) };
}

export const int = (n: number | null | undefined): string =>
  n === null || n === undefined || !Number.isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US');
export const ms = (n: number | null | undefined): string =>
  n === null || n === undefined || !Number.isFinite(n) ? '–' : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US');
export const ratio = (n: number | null | undefined): string => (n === null || n === undefined || !Number.isFinite(n) ? '–' : `${n.toFixed(2)}×`);
export const pct = (n: number): string => `${Math.round(n * 100)} %`;

/** Status counts, e.g. "202: 1000, 503: 3". */
export function statusText(r: LoadResult): string {
  const parts = Object.entries(r.status).map(([k, v]) => `${k}: ${v}`);
  if (r.errors) parts.push(`errors: ${r.errors}`);
  if (r.dropped) parts.push(`not sent: ${r.dropped}`);
  return parts.join(', ');
}

/** Problems in a load run that mean something is wrong (not slow): non-2xx answers, errors. */
export function loadProblems(label: string, r: LoadResult): string[] {
  const bad = r.requests - r.ok;
  return bad > 0 ? [`${label}: ${bad} of ${r.requests} requests failed (${statusText(r)})${r.errorSample ? `; e.g. ${r.errorSample.slice(0, 200)}` : ''}`] : [];
}

/** CPU microseconds per unit of work: cores busy ÷ units per second (robust to a busy machine). */
export function usPer(cores: number | undefined, perSecond: number): string {
  if (cores === undefined || !Number.isFinite(perSecond) || perSecond <= 0) return '–';
  return String(Math.round((cores / perSecond) * 1e6));
}

/**
 * Open-loop single posts at `rate` in back-to-back one-second jobs until `phase` settles (the load
 * generator runs fixed-length jobs; a phase of unknown length gets as many as it lasts).
 */
export async function loadDuring(
  ctx: RunContext,
  origin: string,
  merchants: Merchant[],
  rate: number,
  seed: string,
  phase: Promise<unknown>,
  results: LoadResult[],
): Promise<void> {
  let done = false;
  void phase.then(
    () => (done = true),
    () => (done = true),
  );
  for (let chunk = 0; !done; chunk++) {
    results.push(
      await ctx.loadgen.run({
        origin,
        path: '/v1/transactions',
        mode: 'open',
        rate,
        concurrency: 64,
        durationMs: 1_000,
        warmupMs: 0,
        payload: singlePayload(merchants, `${seed}-${chunk}`, 'payin'),
      }),
    );
  }
  await phase;
}
