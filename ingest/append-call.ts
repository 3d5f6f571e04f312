// One call of scripts/append-events.lua: the single endpoint's one event and each chunk of a
// batch go through the same script, built and read here.
import { readScripts } from '../core/redis.ts';
import type { ScriptSource } from '../core/redis.ts';
import type { Keys } from '../core/keys.ts';
import { payinBucket, payinTier } from '../core/payins.ts';
import { txIdTime } from '../core/tx-id.ts';
import type { RateLimitConfig, RefundsConfig } from '../core/topology/schema.ts';
import { bucketArgs } from './rate-limit.ts';

const SCRIPTS = readScripts(new URL('./scripts/', import.meta.url));
export const APPEND_EVENTS: ScriptSource = SCRIPTS.find((s) => s.name === 'appendEvents') ?? missing();
export const INGEST_SCRIPTS: readonly ScriptSource[] = SCRIPTS;

function missing(): never {
  throw new Error('ingest Lua script appendEvents is missing');
}

export interface EventToAppend {
  stream: string;
  /** The Idempotency-Key's record key, and the request's fingerprint, when there is a key. */
  record?: { key: string; fingerprint: string };
  txId: string;
  /** The stream entry's `ev`: the event as JSON. */
  ev: string;
  traceparent?: string;
  /** A payin registered as accepted, or the payin a refund or chargeback requires (core/payins.ts). */
  payin?: PayinCheck;
}

export type PayinCheck = { op: 'register'; bucket: string; expiresAt: number } | { op: 'require'; bucket: string; payinId: string };

/**
 * What an event asks of the refundable-payins record: payins register, refunds and chargebacks
 * require theirs, except one of a payin past the hot window (the ledger checks it in Postgres).
 */
export function payinCheck(
  keys: Keys,
  partition: number,
  body: { type: string; merchant_id: string; reference?: string | undefined },
  txId: string,
  refunds: RefundsConfig,
): PayinCheck | undefined {
  if (body.type === 'payin') {
    const b = payinBucket(txId, refunds.hot);
    return { op: 'register', bucket: keys.payins(partition, body.merchant_id, b.name), expiresAt: b.expiresAt };
  }
  if ((body.type === 'refund' || body.type === 'chargeback') && body.reference) {
    if (payinTier(body.reference, refunds, txIdTime(txId) ?? Date.now()) === 'cold') return undefined;
    return { op: 'require', bucket: keys.payins(partition, body.merchant_id, payinBucket(body.reference, refunds.hot).name), payinId: body.reference };
  }
  return undefined;
}

/** Keys and arguments of one call over one merchant's events (their bucket is `bucket`). */
export function appendCall(
  bucket: string,
  events: readonly EventToAppend[],
  limit: RateLimitConfig,
  idempotencyTtlMs: number,
  now: number,
): { keys: string[]; args: (string | number)[] } {
  const streams = new Map<string, number>();
  for (const e of events) if (!streams.has(e.stream)) streams.set(e.stream, streams.size + 1);
  const keys = [bucket, ...streams.keys()];
  const args: (string | number)[] = [...bucketArgs(limit, now), idempotencyTtlMs, streams.size];
  for (const e of events) {
    const record = e.record ? keys.push(e.record.key) : 0;
    args.push(streams.get(e.stream)!, record, e.record?.fingerprint ?? '', e.txId, e.ev, e.traceparent ?? '');
    const p = e.payin;
    if (!p) args.push(0, '', '');
    else {
      let at = keys.indexOf(p.bucket) + 1;
      if (!at) at = keys.push(p.bucket);
      args.push(at, p.op === 'register' ? 'p' : 'r', p.op === 'register' ? p.expiresAt : p.payinId);
    }
  }
  return { keys, args };
}

export type AppendReply =
  | { kind: 'accepted' | 'replayed' | 'conflict'; value: string }
  /** A refund or chargeback naming no accepted payin of its merchant: `value` is the id it named. */
  | { kind: 'orphan'; value: string }
  | { kind: 'limited'; waitMs: number }
  /** Redis refused this event's XADD, or answered something else than the script does. */
  | { kind: 'failed'; error: Error };

/** The call's reply: one outcome per event, in order. */
export function parseAppendReply(reply: unknown, events: number): AppendReply[] {
  if (!Array.isArray(reply) || reply.length !== events * 2) {
    const error = new Error(`unexpected reply from the append script: ${JSON.stringify(reply)?.slice(0, 200)}`);
    return Array.from({ length: events }, () => ({ kind: 'failed', error }));
  }
  return Array.from({ length: events }, (_, j): AppendReply => {
    const kind: unknown = reply[2 * j];
    const value: unknown = reply[2 * j + 1];
    if (typeof value === 'string' && (kind === 'accepted' || kind === 'replayed' || kind === 'conflict' || kind === 'orphan')) return { kind, value };
    if (kind === 'limited' && typeof value === 'number') return { kind, waitMs: value };
    if (kind === 'failed') return { kind, error: new Error(`Redis refused the append: ${String(value)}`) };
    return { kind: 'failed', error: new Error(`unexpected reply from the append script: ${JSON.stringify([kind, value])}`) };
  });
}
