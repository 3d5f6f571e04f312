// Maps a transaction event to its `transactions` row and its ledger lines to `ledger_entries` rows,
// encoded once as COPY text lines in the column order the sink's COPY names.
import type { LedgerLine, TransactionEvent } from '../../core/event.ts';
import type { TransactionColumn } from '../../core/transactions-table.ts';
import { copyField, copyText, CopyTextWriter } from './copy-text.ts';

/**
 * The `transactions` columns the sink writes, in COPY order. processed_at is left to its default,
 * now(): the time of the batch's transaction, the same for every row of a batch, and no timestamp
 * for Postgres to parse per row.
 */
export const TRANSACTION_COPY_COLUMNS = [
  'id',
  'merchant_id',
  'type',
  'amount',
  'currency',
  'status',
  'reference',
  'risk_score',
  'metadata',
  'occurred_at',
  'ingested_at',
  'stream_id',
  'attempts',
  'failure_reason',
  'failure_code',
  'risk_reasons',
  'risk_rules_version',
] as const;

// every name is a column of the row type, and every column but processed_at is written: a
// column added to the type and not here does not compile
const _onlyColumns: readonly TransactionColumn[] = TRANSACTION_COPY_COLUMNS;
const _everyColumnWritten: [Exclude<TransactionColumn, (typeof TRANSACTION_COPY_COLUMNS)[number] | 'processed_at'>] extends [never] ? true : false = true;

/** The `ledger_entries` columns the sink writes; created_at is left to its default, now() (the rows' processed_at). */
export const LEDGER_COLUMNS = ['tx_id', 'account', 'merchant_id', 'currency', 'amount'] as const;

export const LEDGER_ACCOUNTS: readonly LedgerLine['account'][] = ['wallet', 'external'];

export interface SinkRow {
  event: TransactionEvent;
  streamId: string;
  attempts: number;
  /**
   * The row as COPY text, when the sink encoded it on reading (so encoding overlaps the previous
   * batch's write); the batch writer encodes a row without it.
   */
  encoded?: EncodedRow;
}

/** One row as COPY text: what a batch's COPY statements send, by concatenation. */
export interface EncodedRow {
  /** The `transactions` line (TRANSACTION_COPY_COLUMNS), newline-terminated. */
  tx: Buffer;
  /** Its `ledger_entries` lines (LEDGER_COLUMNS), one per account in byte order, each newline-terminated; empty for none. */
  ledger: Buffer;
  ledgerLines: number;
  /** What its `wallet` line adds to the balance of (merchant, currency); undefined without one. */
  wallet: number | undefined;
  /** False when that amount is not whole minor units: the writer leaves the sums to Postgres (which refuses it). */
  summable: boolean;
}

/** Byte order for ASCII/BMP keys, as COLLATE "C" sorts them (not the locale order of localeCompare). */
export const byKey = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The final status: the pipeline's verdict, or succeeded for an event that made it through. */
export function finalStatus(ev: TransactionEvent): string {
  return ev.status === 'failed' ? 'failed' : 'succeeded';
}

/** Where rows are encoded (one per process: encoding is synchronous). */
const out = new CopyTextWriter();

const NULL = '\\N';

/** A JSON column: the value as JSON text, or null. */
const jsonField = (v: unknown): string => (v ? copyText(JSON.stringify(v)) : NULL);

/** The last hour seen (Unix ms / 3,600,000) and its ISO text up to the minutes ("2026-12-06T02:"). */
let hour = Number.NaN;
let hourText = '';
const LAST_4_DIGIT_YEAR_MS = Date.UTC(10_000, 0, 1) - 1;
const two = (n: number): string => (n < 10 ? `0${n}` : String(n));

/**
 * An ingest time (Unix ms) as ISO text, as Date#toISOString writes it: the hour's text is kept, so
 * a batch's times (mostly in one hour) cost a few divisions each. A value that is no time is
 * written as it is, for Postgres to refuse (22007).
 */
export function isoTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms > LAST_4_DIGIT_YEAR_MS) {
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
  }
  const h = Math.floor(ms / 3_600_000);
  if (h !== hour) {
    hour = h;
    hourText = new Date(h * 3_600_000).toISOString().slice(0, 14);
  }
  const inHour = ms - h * 3_600_000;
  const milli = inHour % 1000;
  return `${hourText}${two(Math.floor(inHour / 60_000))}:${two(Math.floor(inHour / 1000) % 60)}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

/**
 * The row's COPY text, as bytes (see CopyTextWriter). Ledger lines are those of a succeeded
 * transaction (a failed one moves no money), the first line per account.
 */
export function encodeRow({ event: e, streamId, attempts }: SinkRow): EncodedRow {
  const status = finalStatus(e);
  const id = copyField(e.id);
  const merchant = copyField(e.merchant_id);
  const currency = copyField(e.currency);
  const tx = out.append(
    `${id}\t${merchant}\t${copyField(e.type)}\t${copyField(e.amount)}\t${currency}\t${status}\t${copyField(e.reference)}\t` +
      `${copyField(e.risk_score)}\t${jsonField(e.metadata)}\t${copyField(e.occurred_at)}\t${isoTime(e.ingested_at)}\t` +
      `${copyField(streamId)}\t${attempts}\t${copyField(e.failure_reason)}\t${status === 'failed' ? copyField(e.failure_code) : NULL}\t` +
      `${jsonField(e.risk_reasons)}\t${copyField(e.risk_rules_version)}\n`,
  );
  let ledger = '';
  let ledgerLines = 0;
  let wallet: number | undefined;
  let summable = true;
  if (status === 'succeeded' && e.ledger?.length) {
    for (const l of firstPerAccount(e.ledger)) {
      ledger += `${id}\t${copyField(l.account)}\t${merchant}\t${currency}\t${copyField(l.amount)}\n`;
      ledgerLines++;
      if (l.account !== 'wallet') continue;
      wallet = l.amount;
      summable = Number.isSafeInteger(l.amount);
    }
  }
  return { tx, ledger: out.append(ledger), ledgerLines, wallet, summable };
}

/** The first line of each account, by account (byte order): one line per (tx_id, account), in the key's order. */
function firstPerAccount(lines: readonly LedgerLine[]): LedgerLine[] {
  if (lines.length === 2 && lines[0]!.account !== lines[1]!.account) {
    return byKey(lines[0]!.account, lines[1]!.account) < 0 ? [lines[0]!, lines[1]!] : [lines[1]!, lines[0]!];
  }
  const first = new Map<string, LedgerLine>();
  for (const l of lines) if (!first.has(l.account)) first.set(l.account, l);
  return [...first.values()].sort((a, b) => byKey(a.account, b.account));
}

/**
 * Why an event's ledger lines cannot be posted, or undefined when they can (or there are none):
 * known accounts, each at most once (the key is (tx_id, account)), whole minor units, summing to
 * zero. The sink dead-letters such an event instead of retrying a batch that can never commit.
 */
export function ledgerProblem(e: TransactionEvent): string | undefined {
  const lines: unknown = e.ledger;
  if (lines === undefined || lines === null) return undefined;
  if (!Array.isArray(lines)) return 'ledger is not a list of lines';
  const seen = new Set<string>();
  let sum = 0n;
  for (const [i, line] of lines.entries()) {
    const l = line as Partial<LedgerLine> | null;
    if (!l || typeof l !== 'object') return `ledger[${i}] is not a line`;
    if (!LEDGER_ACCOUNTS.includes(l.account as LedgerLine['account'])) return `ledger[${i}].account must be wallet or external`;
    if (seen.has(l.account!)) return `ledger[${i}]: a second ${l.account} line`;
    seen.add(l.account!);
    if (!Number.isSafeInteger(l.amount)) return `ledger[${i}].amount must be whole minor units`;
    sum += BigInt(l.amount!);
  }
  if (sum !== 0n) return `ledger lines sum to ${sum}, not 0`;
  return undefined;
}

/** The UTC day (YYYY-MM-DD) of an ingest time: the daily partition the row belongs to. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
