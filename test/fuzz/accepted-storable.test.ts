// Property: what ingest accepts (202), the Postgres sink can store. Bodies with any Unicode in the
// free-text fields (NUL and lone surrogates included) and any RFC 3339 date-time the validator
// admits go through ingest's own parser (parseTransactionBody); each one it accepts is written by
// the sink's BatchWriter as the sink would write it. A body ingest accepts but Postgres refuses
// would fail its sink batch on every retry: the sink would stop for every merchant.
//
// Replay: FUZZ_SEED=S FUZZ_PATH=P npm test -- test/fuzz/accepted-storable
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { parseTransactionBody } from '../../ingest/validation.ts';
import type { TransactionBody } from '../../ingest/validation.ts';
import { newTxId } from '../../core/tx-id.ts';
import { BatchWriter } from '../../sinks/postgres/batch-writer.ts';

const pad = (n: number, w: number) => String(n).padStart(w, '0');

/** RFC 3339 date-times across the whole grammar: years 0000-9999, any fraction, offsets to ±23:59. */
const rfc3339 = fc
  .record({
    y: fc.oneof(fc.integer({ min: 1970, max: 2100 }), fc.integer({ min: 0, max: 9999 })),
    mo: fc.integer({ min: 1, max: 12 }),
    d: fc.integer({ min: 1, max: 28 }),
    h: fc.integer({ min: 0, max: 23 }),
    mi: fc.integer({ min: 0, max: 59 }),
    s: fc.integer({ min: 0, max: 59 }),
    frac: fc.option(fc.stringMatching(/^[0-9]{1,12}$/), { nil: undefined }),
    off: fc.oneof(
      fc.constant('Z'),
      fc
        .tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
        .map(([sg, h, m]) => `${sg}${pad(h, 2)}:${pad(m, 2)}`),
    ),
  })
  .map((t) => `${pad(t.y, 4)}-${pad(t.mo, 2)}-${pad(t.d, 2)}T${pad(t.h, 2)}:${pad(t.mi, 2)}:${pad(t.s, 2)}${t.frac ? `.${t.frac}` : ''}${t.off}`);

const text = fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }));

const body = fc.record(
  {
    type: fc.constantFrom('payin', 'payout', 'refund', 'chargeback'),
    merchant_id: fc.constantFrom('m_store_a', 'm_store_b'),
    amount: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    currency: fc.constantFrom('USD', 'EUR', 'JPY'),
    reference: text,
    occurred_at: rfc3339,
    metadata: fc.dictionary(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,10}$/), text, { maxKeys: 3 }),
  },
  { requiredKeys: ['type', 'merchant_id', 'amount', 'currency'] },
);

describe('ingest accepts only what the sink can store', () => {
  let inst: TestInstance;
  let writer: BatchWriter;
  before(async () => {
    inst = await createInstance('fuzz-storable');
    writer = new BatchWriter(inst.env);
  });
  after(async () => {
    await writer?.close();
    await inst?.cleanup();
  });

  test('every body parseTransactionBody accepts is written by the BatchWriter', async (t) => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        let parsed: TransactionBody;
        try {
          parsed = parseTransactionBody(new TextEncoder().encode(JSON.stringify(b)));
        } catch {
          return; // a 400: not this property's business
        }
        accepted++;
        const event = { ...parsed, id: newTxId(), ingested_at: Date.now(), status: 'succeeded' as const };
        try {
          await writer.writeBatch([{ event, streamId: '1-1', attempts: 1 }]);
        } catch (err) {
          throw new Error(`ingest accepted it (202) but the sink cannot store it: ${(err as Error).message}`);
        }
      }),
      {
        numRuns: Number(process.env.FUZZ_STORABLE_RUNS ?? 400),
        ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}),
        ...(process.env.FUZZ_SEED && process.env.FUZZ_PATH ? { path: process.env.FUZZ_PATH, endOnFailure: true } : {}),
      },
    );
    t.diagnostic(`${accepted} accepted bodies written`);
  });
});
