import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSize, parseSize } from './size.ts';

test('sizes: bytes, or kb/mb/gb in binary multiples; zero, negatives and other units are refused', () => {
  assert.equal(parseSize(1_000), 1_000);
  assert.equal(parseSize('512kb'), 512 * 1024);
  assert.equal(parseSize('64MB'), 64 * 1024 ** 2);
  assert.equal(parseSize('1.5gb'), 1.5 * 1024 ** 3);
  assert.equal(parseSize('10 b'), 10);
  for (const bad of [0, -1, 1.5, '0mb', '12', 'mb', '1tb', '1 m']) assert.equal(parseSize(bad), undefined, String(bad));
  assert.equal(formatSize(512 * 1024 ** 2), '512mb');
  assert.equal(formatSize(1500), '1500b');
});
