import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRow, isoTime, ledgerProblem, TRANSACTION_COPY_COLUMNS, utcDay } from './rows.ts';
import type { TransactionEvent } from '../../core/event.ts';

const base: TransactionEvent = {
  id: 'tx_1',
  merchant_id: 'm_1',
  type: 'payin',
  amount: 100,
  currency: 'USD',
  ingested_at: Date.UTC(2024, 0, 15, 23, 59, 59, 999),
  status: 'succeeded',
};
const bad = (ledger: unknown) => ledgerProblem({ ...base, ledger: ledger as TransactionEvent['ledger'] });

test('ledgerProblem accepts balanced lines and no lines', () => {
  assert.equal(ledgerProblem(base), undefined);
  assert.equal(bad([]), undefined);
  assert.equal(
    bad([
      { account: 'wallet', amount: 100 },
      { account: 'external', amount: -100 },
    ]),
    undefined,
  );
  assert.equal(bad([{ account: 'wallet', amount: 0 }]), undefined);
});

test('ledgerProblem names what cannot be posted', () => {
  assert.match(bad({}) ?? '', /not a list/);
  assert.match(bad([null]) ?? '', /not a line/);
  assert.match(
    bad([
      { account: 'fees', amount: 1 },
      { account: 'wallet', amount: -1 },
    ]) ?? '',
    /wallet or external/,
  );
  assert.match(
    bad([
      { account: 'wallet', amount: 1 },
      { account: 'wallet', amount: -1 },
    ]) ?? '',
    /a second wallet line/,
  );
  assert.match(
    bad([
      { account: 'wallet', amount: 1.5 },
      { account: 'external', amount: -1.5 },
    ]) ?? '',
    /whole minor units/,
  );
  assert.match(
    bad([
      { account: 'wallet', amount: '100' },
      { account: 'external', amount: -100 },
    ]) ?? '',
    /whole minor units/,
  );
  assert.match(
    bad([
      { account: 'wallet', amount: 100 },
      { account: 'external', amount: -99 },
    ]) ?? '',
    /sum to 1, not 0/,
  );
});

test('ledger lines carry the transaction merchant and currency, one per account in byte order; failed ones post nothing', () => {
  const ledger = [
    { account: 'wallet' as const, amount: 100 },
    { account: 'external' as const, amount: -100 },
  ];
  const enc = encodeRow({ event: { ...base, ledger }, streamId: '0-1', attempts: 1 });
  assert.equal(enc.ledger.toString(), 'tx_1\texternal\tm_1\tUSD\t-100\ntx_1\twallet\tm_1\tUSD\t100\n');
  assert.equal(enc.ledgerLines, 2);
  assert.equal(enc.wallet, 100);
  assert.equal(enc.summable, true);
  // a second line of an account (ledgerProblem keeps such an event out of the sink) is not posted
  const twice = encodeRow({ event: { ...base, ledger: [...ledger, { account: 'wallet', amount: 5 }] }, streamId: '0-1', attempts: 1 });
  assert.equal(twice.ledger.toString(), enc.ledger.toString());
  assert.equal(twice.wallet, 100);
  const failed = encodeRow({ event: { ...base, ledger, status: 'failed' }, streamId: '0-1', attempts: 1 });
  assert.deepEqual([failed.ledger.length, failed.ledgerLines, failed.wallet], [0, 0, undefined]);
  const fractional = encodeRow({ event: { ...base, ledger: [{ account: 'wallet', amount: 1.5 }] }, streamId: '0-1', attempts: 1 });
  assert.deepEqual([fractional.wallet, fractional.summable], [1.5, false]);
});

test('the transactions line: one field per column, nulls as \\N, special characters escaped, JSON columns as JSON', () => {
  const enc = encodeRow({
    event: {
      ...base,
      reference: 'line\none\ttab\\slash\r',
      metadata: { note: 'a\tb' },
      risk_score: 12,
      risk_reasons: ['velocity: 3'],
      risk_rules_version: 2,
      status: 'failed',
      failure_code: 'risk_declined',
      failure_reason: 'too risky',
    },
    streamId: '1-2',
    attempts: 3,
  });
  const line = enc.tx.toString();
  assert.ok(line.endsWith('\n'));
  const fields = line.slice(0, -1).split('\t');
  assert.equal(fields.length, TRANSACTION_COPY_COLUMNS.length);
  const col = Object.fromEntries(TRANSACTION_COPY_COLUMNS.map((c, i) => [c, fields[i]]));
  assert.deepEqual(col, {
    id: 'tx_1',
    merchant_id: 'm_1',
    type: 'payin',
    amount: '100',
    currency: 'USD',
    status: 'failed',
    reference: 'line\\none\\ttab\\\\slash\\r',
    risk_score: '12',
    metadata: '{"note":"a\\\\tb"}',
    occurred_at: '\\N',
    ingested_at: '2024-01-15T23:59:59.999Z',
    stream_id: '1-2',
    attempts: '3',
    failure_reason: 'too risky',
    failure_code: 'risk_declined',
    risk_reasons: '["velocity: 3"]',
    risk_rules_version: '2',
  });
  // a succeeded row has no failure code even if the event carries one; an ingest time that is no time is left for Postgres to refuse
  const ok = encodeRow({ event: { ...base, failure_code: 'risk_declined', ingested_at: Number.NaN }, streamId: '1-3', attempts: 1 });
  const okCol = Object.fromEntries(TRANSACTION_COPY_COLUMNS.map((c, i) => [c, ok.tx.toString().slice(0, -1).split('\t')[i]]));
  assert.equal(okCol.failure_code, '\\N');
  assert.equal(okCol.ingested_at, 'NaN');
  assert.equal(okCol.metadata, '\\N');
});

test('isoTime writes what toISOString writes, and leaves a value that is no time to Postgres', () => {
  const times = [
    0,
    1,
    999,
    1_000,
    59_999,
    3_599_999,
    3_600_000,
    base.ingested_at,
    Date.UTC(2026, 11, 31, 23, 59, 59, 7),
    Date.UTC(9999, 11, 31, 23, 59, 59, 999),
  ];
  for (let t = Date.UTC(2026, 0, 1); t < Date.UTC(2026, 0, 1) + 7_200_000; t += 7_919) times.push(t);
  for (const t of times) assert.equal(isoTime(t), new Date(t).toISOString(), String(t));
  assert.equal(isoTime(-1), new Date(-1).toISOString());
  assert.equal(isoTime(1.5), new Date(1.5).toISOString());
  assert.equal(isoTime(Number.NaN), 'NaN');
  assert.equal(isoTime(8.64e15 + 1), String(8.64e15 + 1));
});

test('utcDay is the UTC day of the partition', () => {
  assert.equal(utcDay(base.ingested_at), '2024-01-15');
  assert.equal(utcDay(base.ingested_at + 1), '2024-01-16');
});
