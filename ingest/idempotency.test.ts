// The compact Idempotency-Key record (#18): the canonical body encoding, the ULID packing, and
// what a record costs in Redis (MEMORY USAGE) with a prefix as short as the default `rill`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomInt } from 'node:crypto';
import { partitionOf } from '../core/partition.ts';
import { newTxId, txIdBytes, txIdFromHex } from '../core/tx-id.ts';
import { createInstance } from '../test/helpers/instance.ts';
import type { TestInstance } from '../test/helpers/instance.ts';
import { loadTopology } from '../core/topology/load.ts';
import { EventAppender } from './append/index.ts';
import { IngestKeys } from './keys.ts';
import { bodyDigest, canonicalBody, canonicalJson, idempotencyRecord, RECORD_BYTES } from './idempotency.ts';
import type { TransactionBody } from './validation.ts';

describe('idempotency record encoding', () => {
  test('a tx id survives packing into 16 bytes and back', () => {
    for (let i = 0; i < 2_000; i++) {
      const id = newTxId(randomInt(2 ** 47) * 2 + (i % 2));
      const buf = Buffer.alloc(16);
      txIdBytes(id, buf, 0);
      assert.equal(txIdFromHex(buf.toString('hex')), id);
    }
  });

  test('canonicalBody is canonicalJson of the body, whatever the order of its fields', () => {
    const bodies: TransactionBody[] = [
      { type: 'payin', merchant_id: 'm_1', amount: 1, currency: 'USD' },
      {
        metadata: { z: 'é"\\', a: '1', 'b.c': '' },
        reference: 'tx_x',
        occurred_at: '2024-05-01T12:00:00Z',
        currency: 'EUR',
        amount: 9007199254740991,
        merchant_id: 'm.2',
        type: 'refund',
      },
      { currency: 'JPY', type: 'payout', amount: 5, merchant_id: 'M-3', reference: 'r\u2028' },
    ];
    for (const b of bodies) {
      assert.equal(canonicalBody(b), canonicalJson(b));
      const shuffled = Object.fromEntries(Object.entries(b).reverse()) as TransactionBody;
      assert.equal(canonicalBody(shuffled), canonicalBody(b));
      assert.deepEqual(JSON.parse(canonicalBody(b)), b);
    }
  });

  test('the record: 12 bytes of fingerprint (another body: others), then the ULID', () => {
    const id = newTxId();
    const a = idempotencyRecord(bodyDigest(canonicalJson({ amount: 1 })), id);
    const b = idempotencyRecord(bodyDigest(canonicalJson({ amount: 2 })), id);
    assert.equal(a.length, RECORD_BYTES);
    assert.notDeepEqual(a.subarray(0, 12), b.subarray(0, 12));
    assert.equal(txIdFromHex(a.subarray(12).toString('hex')), id);
  });
});

describe('idempotency record in Redis', () => {
  let inst: TestInstance;
  // a prefix as long as the default `rill`: the record's size depends on its key's length
  before(async () => {
    inst = await createInstance('idem-bytes', {
      RILL_PREFIX: `i${randomInt(36 ** 3)
        .toString(36)
        .padStart(3, '0')}`,
    });
  });
  after(async () => {
    await inst.cleanup();
  });

  test('each record costs at most 120 bytes (MEMORY USAGE) and lives the idempotency TTL', async () => {
    const topology = loadTopology(new URL('../topology.yaml', import.meta.url).pathname);
    const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
    const merchants = ['m_001', 'merchant-with-a-long-id.0123456789'];
    const key = (i: number) => `order-${i}-0b8f3a2e-7c1d-4e5f-9a6b-1c2d3e4f5a6b-and-then-some-more-characters`;
    const outs = await Promise.all(
      Array.from({ length: 40 }, (_, i) => appender.append({ type: 'payout', merchant_id: merchants[i % 2]!, amount: 100 + i, currency: 'USD' }, key(i))),
    );
    for (const [i, out] of outs.entries()) {
      assert.equal(out.kind, 'accepted');
      const m = merchants[i % 2]!;
      const record = inst.keys.idempotency(partitionOf(m, topology.topics.transactions!.partitions), m, key(i));
      assert.equal((await inst.redis.getBuffer(record))?.length, RECORD_BYTES);
      const bytes = Number(await inst.redis.memory('USAGE', record));
      assert.ok(bytes <= 120, `${record}: ${bytes} B`);
      const ttl = await inst.redis.pttl(record);
      assert.ok(ttl > topology.ingest.idempotency_ttl - 60_000 && ttl <= topology.ingest.idempotency_ttl, `pttl ${ttl}`);
    }
    // and the record answers: the same body replays the first id, another conflicts
    const again = await appender.append({ type: 'payout', merchant_id: merchants[0]!, amount: 100, currency: 'USD' }, key(0));
    assert.deepEqual(again, { kind: 'replayed', id: outs[0]!.id });
    const other = await appender.append({ type: 'payout', merchant_id: merchants[0]!, amount: 1, currency: 'USD' }, key(0));
    assert.deepEqual(other, { kind: 'conflict', id: outs[0]!.id });
  });

  test('a key recorded by the previous release (legacy name and value) still replays and conflicts, appending nothing', async () => {
    const topology = loadTopology(new URL('../topology.yaml', import.meta.url).pathname);
    const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
    const body: TransactionBody = { type: 'payout', merchant_id: 'm_old', amount: 700, currency: 'EUR', metadata: { b: '2', a: '1' } };
    const partition = partitionOf(body.merchant_id, topology.topics.transactions!.partitions);
    const first = newTxId();
    // what the previous script wrote: "<sha256 hex of the canonical body> <tx id>" under the raw key
    const legacy = new IngestKeys(inst.env.prefix).legacyIdempotency(partition, body.merchant_id, 'before-the-upgrade');
    await inst.redis.set(legacy, `${createHash('sha256').update(canonicalJson(body)).digest('hex')} ${first}`, 'PX', 60_000);
    const stream = appender.route(body.merchant_id, body.type).stream;
    const entries = await inst.redis.xlen(stream);
    const reordered: TransactionBody = { metadata: { a: '1', b: '2' }, currency: 'EUR', amount: 700, merchant_id: 'm_old', type: 'payout' };
    assert.deepEqual(await appender.append(reordered, 'before-the-upgrade'), { kind: 'replayed', id: first });
    assert.deepEqual(await appender.append({ ...body, amount: 701 }, 'before-the-upgrade'), { kind: 'conflict', id: first });
    assert.equal(await inst.redis.xlen(stream), entries);
    assert.equal(await inst.redis.exists(inst.keys.idempotency(partition, body.merchant_id, 'before-the-upgrade')), 0, 'no new record beside it');
  });
});
