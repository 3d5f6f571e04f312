// One call of scripts/append-events-var.lua: the single endpoint's coalesced requests of a partition
// and each chunk of a batch go through the same script, built and read here.
import type { ScriptSource } from '../../core/redis.ts';
import { loadScripts } from '../../core/scripts.ts';
import type { Keys } from '../../core/keys.ts';
import { payinBucket, payinTier } from '../../core/payins.ts';
import { txIdFromHex } from '../../core/tx-id.ts';
import type { RateLimitConfig, RefundsConfig } from '../../core/topology/schema.ts';
import { bucketArgs } from '../rate-limit.ts';

export const APPEND_EVENTS: ScriptSource = loadScripts(new URL('./scripts/', import.meta.url), ['appendEvents']).appendEvents;
export const INGEST_SCRIPTS: readonly ScriptSource[] = [APPEND_EVENTS];

export interface EventToAppend {
  /** The merchant's rate-limit bucket (ingest/keys.ts). */
  bucket: string;
  stream: string;
  /** The Idempotency-Key's record key, and the record to keep (idempotency.ts), when there is a key. */
  record?: { key: string; value: Buffer } | undefined;
  /**
   * The same key's record as the previous release named and wrote it (`<fingerprint hex> <tx id>`),
   * read only during the first TTL after an upgrade: a key first used before it still replays.
   */
  legacy?: { key: string; fingerprint: string } | undefined;
  txId: string;
  /** The event as JSON: the stream entry's `ev`. */
  eventJson: string;
  traceparent?: string | undefined;
  /** A payin registered as accepted, or the payin a refund or chargeback requires (core/payins.ts). */
  payin?: PayinCheck | undefined;
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
  /** When the event was accepted: the time in `txId`. */
  now: number,
): PayinCheck | undefined {
  if (body.type === 'payin') {
    const b = payinBucket(txId, refunds.hot);
    return { op: 'register', bucket: keys.payins(partition, body.merchant_id, b.name), expiresAt: b.expiresAt };
  }
  if ((body.type === 'refund' || body.type === 'chargeback') && body.reference) {
    if (payinTier(body.reference, refunds, now) === 'cold') return undefined;
    return { op: 'require', bucket: keys.payins(partition, body.merchant_id, payinBucket(body.reference, refunds.hot).name), payinId: body.reference };
  }
  return undefined;
}

/** Events per script call (coalesced or a batch's chunk): ~1,000 appends keep Redis busy for a few ms at most. */
export const MAX_CALL_EVENTS = 1_000;

type ScriptArg = string | number | Buffer;

/** Keys and arguments of one call over events of one partition (any of its merchants). */
export function appendCall(
  events: readonly EventToAppend[],
  limit: RateLimitConfig,
  idempotencyTtlMs: number,
  now: number,
): { keys: string[]; args: ScriptArg[] } {
  const keys: string[] = [];
  const index = new Map<string, number>();
  const at = (key: string): number => {
    let i = index.get(key);
    if (i === undefined) index.set(key, (i = keys.push(key)));
    return i;
  };
  const args: ScriptArg[] = [...bucketArgs(limit, now), idempotencyTtlMs];
  for (const e of events) {
    const p = e.payin;
    args.push(
      at(e.bucket),
      at(e.stream),
      e.record ? at(e.record.key) : 0,
      e.record ? e.record.value : '',
      e.txId,
      e.eventJson,
      e.traceparent ?? '',
      p ? at(p.bucket) : 0,
      !p ? '' : p.op === 'register' ? `p${p.expiresAt}` : `r${p.payinId}`,
      e.legacy ? at(e.legacy.key) : 0,
      e.legacy ? e.legacy.fingerprint : '',
    );
  }
  return { keys, args };
}

export type AppendReply =
  | { kind: 'accepted'; value: string }
  /** Same key: `value` is the tx id the key's first request got. */
  | { kind: 'replayed' | 'conflict'; value: string }
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
  const out: AppendReply[] = new Array(events);
  for (let j = 0; j < events; j++) out[j] = replyOf(reply[2 * j], reply[2 * j + 1]);
  return out;
}

function replyOf(kind: unknown, value: unknown): AppendReply {
  if (typeof value === 'string') {
    if (kind === 'accepted' || kind === 'orphan') return { kind, value };
    if (kind === 'replayed' || kind === 'conflict') {
      if (value.startsWith('tx_')) return { kind, value }; // from a legacy record
      try {
        return { kind, value: txIdFromHex(value) };
      } catch (err) {
        return { kind: 'failed', error: err as Error };
      }
    }
  }
  if (kind === 'limited' && typeof value === 'number') return { kind, waitMs: value };
  if (kind === 'failed') return { kind, error: new Error(`Redis refused the append: ${String(value)}`) };
  return { kind: 'failed', error: new Error(`unexpected reply from the append script: ${JSON.stringify([kind, value])}`) };
}
