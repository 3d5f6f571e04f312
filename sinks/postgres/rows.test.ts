import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ledgerProblem, toLedgerCopyRows, utcDay } from './rows.ts';
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

test('ledger rows carry the transaction merchant and currency; failed ones post nothing', () => {
  const ledger = [
    { account: 'wallet' as const, amount: 100 },
    { account: 'external' as const, amount: -100 },
  ];
  assert.deepEqual(toLedgerCopyRows({ event: { ...base, ledger }, streamId: '0-1', attempts: 1 }), [
    ['tx_1', 'wallet', 'm_1', 'USD', 100],
    ['tx_1', 'external', 'm_1', 'USD', -100],
  ]);
  assert.deepEqual(toLedgerCopyRows({ event: { ...base, ledger, status: 'failed' }, streamId: '0-1', attempts: 1 }), []);
});

test('utcDay is the UTC day of the partition', () => {
  assert.equal(utcDay(base.ingested_at), '2024-01-15');
  assert.equal(utcDay(base.ingested_at + 1), '2024-01-16');
});
