// Shared by the security tests: calling the ingest app in-process, merchants that share a partition,
// and filling a route pattern with someone else's identifiers.
import { partitionOf } from '../../core/partition.ts';
import type { IngestApp } from '../../ingest/app.ts';
import type { LoadGate } from '../../ingest/backpressure/shedder.ts';
import type { RouteInfo } from '../fuzz/harness.ts';

/** A load gate that never sheds: authorization tests must not see a 503 from load. */
export const NEVER_SHED: LoadGate = { state: { shedding: false, reasons: [] }, retryAfterSeconds: 1 };

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json(): unknown;
}

export interface CallOptions {
  key?: string;
  /** A raw Authorization value (wins over key). */
  authorization?: string;
  body?: string | Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
}

/** One request through app.fetch; event streams are cancelled after their headers. */
export async function call(app: IngestApp, method: string, path: string, o: CallOptions = {}): Promise<Answer> {
  const headers = new Headers(o.headers);
  if (o.authorization !== undefined) headers.set('authorization', o.authorization);
  else if (o.key !== undefined) headers.set('authorization', `Bearer ${o.key}`);
  let body: Uint8Array<ArrayBuffer> | undefined;
  if (o.body !== undefined && method !== 'GET' && method !== 'HEAD') {
    body = (typeof o.body === 'string' ? new TextEncoder().encode(o.body) : o.body) as Uint8Array<ArrayBuffer>;
    headers.set('content-type', o.contentType ?? 'application/json');
    headers.set('content-length', String(body.byteLength));
  }
  const res = await app.fetch(new Request(`http://ingest.test${path}`, { method, headers, ...(body ? { body } : {}) }));
  let text = '';
  if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream') || method === 'HEAD') await res.body?.cancel();
  else text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as unknown };
}

/** A merchant id other than `of` that hashes to the same partition (so partition-level reads meet both). */
export function samePartitionMerchant(of: string, partitions: number, prefix: string): string {
  const want = partitionOf(of, partitions);
  for (let i = 0; i < 100_000; i++) {
    const m = `${prefix}${i}`;
    if (m !== of && partitionOf(m, partitions) === want) return m;
  }
  throw new Error('no merchant id found in the same partition');
}

export function otherPartitionMerchant(of: string, partitions: number, prefix: string): string {
  const not = partitionOf(of, partitions);
  for (let i = 0; i < 100_000; i++) {
    const m = `${prefix}${i}`;
    if (partitionOf(m, partitions) !== not) return m;
  }
  throw new Error('no merchant id found in another partition');
}

/** A route pattern with its parameters filled: `:id` by `ids.id`, `:topic` by `ids.topic`, anything else by `ids.other`. */
export function fillPath(route: RouteInfo, ids: { id: string; topic: string; other: string }): string {
  return route.path
    .split('/')
    .map((p) => (p === ':id' ? ids.id : p === ':topic' ? ids.topic : p.startsWith(':') ? ids.other : p))
    .join('/');
}
