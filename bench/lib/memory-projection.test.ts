// The Redis memory projection: streams held for their topic's window and capped lane stream by lane
// stream, records for their TTL (at most the day), per-merchant state flat; both generations of
// retention keys read from a topology file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisMemoryReport } from '../../core/index.ts';
import { DAY_S, projectMemory, readRetention } from './memory-projection.ts';

const report: RedisMemoryReport = {
  prefix: 'p',
  usedMemory: 0,
  keys: 0,
  bytes: 0,
  complete: true,
  families: [
    { family: 'stream:transactions', kind: 'stream', keys: 2, sampled: 2, bytes: 1_000, entries: 10, ttlMs: null },
    { family: 'stream:validated', kind: 'stream', keys: 2, sampled: 2, bytes: 1_000, entries: 10, ttlMs: null },
    { family: 'idempotency', kind: 'per-event', keys: 10, sampled: 10, bytes: 2_000, entries: null, ttlMs: 3_600_000 },
    { family: 'ledger-records', kind: 'per-event', keys: 10, sampled: 10, bytes: 500, entries: null, ttlMs: 7 * DAY_S * 1000 },
    { family: 'rate-limit', kind: 'per-merchant', keys: 2, sampled: 2, bytes: 300, entries: null, ttlMs: null },
  ],
};

test('readRetention: max_age/max_len and hot/max_bytes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rill-proj-'));
  const path = join(dir, 't.yaml');
  writeFileSync(
    path,
    'topics:\n  transactions: { partitions: 1, retention: { max_age: 7d, max_len: 100 } }\n  validated: { partitions: 1, retention: { hot: 15m, max_bytes: 1mb } }\n  other: { partitions: 1 }\n',
  );
  assert.deepEqual(readRetention(path), {
    transactions: { maxAgeMs: 7 * DAY_S * 1000, maxLen: 100, hotMs: undefined, maxBytes: undefined },
    validated: { maxAgeMs: undefined, maxLen: undefined, hotMs: 900_000, maxBytes: 1024 ** 2 },
    other: { maxAgeMs: undefined, maxLen: undefined, hotMs: undefined, maxBytes: undefined },
  });
});

test('projectMemory: windows, TTLs, caps per lane stream and per topic, flat per-merchant state', () => {
  const retention = { transactions: { maxAgeMs: 7 * DAY_S * 1000, maxLen: 1_000_000 }, validated: { hotMs: 60_000, maxBytes: 500_000 } };
  // 10 transactions settled; transactions' entries all in one of its two lane streams
  const rows = projectMemory(report, 10, retention, [10, 100], { transactions: [10, 0], validated: [5, 5] });
  const by = Object.fromEntries(rows.map((r) => [r.family, r]));
  // a day (max_age 7 d) at 10/s = 864,000 entries × 100 B; at 100/s one stream caps at 1,000,000
  assert.deepEqual(by['stream:transactions']!.projected, [86_400_000, 100_000_000]);
  // a 1-minute hot window: 600 (6,000) entries × 100 B, under max_bytes at 10/s, capped at 100/s
  assert.deepEqual(by['stream:validated']!.projected, [60_000, 500_000]);
  // idempotency: 200 B/tx for its 1 h TTL; ledger records: 50 B/tx for the day (TTL 7 d)
  assert.deepEqual(by.idempotency!.projected, [10 * 3_600 * 200, 100 * 3_600 * 200]);
  assert.deepEqual(by['ledger-records']!.projected, [10 * DAY_S * 50, 100 * DAY_S * 50]);
  assert.deepEqual(by['rate-limit']!.projected, [300, 300]);
  assert.equal(by['rate-limit']!.heldS, null);
});

test('projectMemory: with both hot and max_age the shorter holds the entries, as the trimmer reads them', () => {
  const retention = { transactions: { maxAgeMs: 60_000, hotMs: 900_000 }, validated: { maxAgeMs: 900_000, hotMs: 60_000 } };
  const rows = projectMemory(report, 10, retention, [10], { transactions: [10, 0], validated: [5, 5] });
  const by = Object.fromEntries(rows.map((r) => [r.family, r]));
  assert.equal(by['stream:transactions']!.heldS, 60);
  assert.equal(by['stream:validated']!.heldS, 60);
  assert.match(by['stream:transactions']!.basis, /^max_age 1 min/);
  assert.match(by['stream:validated']!.basis, /^hot 1 min/);
});
