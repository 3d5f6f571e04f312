import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newTxId, TX_ID_PATTERN } from './tx-id.ts';

test('tx ids: ULID shape, unique, sortable by time', () => {
  const ids = Array.from({ length: 20_000 }, () => newTxId());
  for (const id of ids.slice(0, 100)) assert.match(id, TX_ID_PATTERN);
  assert.equal(new Set(ids).size, ids.length);
  const early = newTxId(1_700_000_000_000);
  const late = newTxId(1_700_000_000_001);
  assert.ok(early < late);
  assert.equal(newTxId(0).slice(3, 13), '0000000000');
  assert.equal(newTxId(2 ** 48 - 1).slice(3, 13), '7ZZZZZZZZZ');
});
