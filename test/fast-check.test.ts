// The ingest hot path checks bodies by hand (fastCheckBody) and asks zod only about the ones it
// does not accept. The hand check must never accept what the schema refuses, should accept what
// it accepts (else the hot path is slow for no reason), and must hand on the same body.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fastCheckBody, TransactionBodySchema } from '../ingest/validation.ts';
import { mutatedTxText, validTx } from './fuzz/arbitraries.ts';

const RUNS = Number(process.env.FAST_CHECK_RUNS || 20_000);

const show = (v: unknown) => {
  try {
    return JSON.stringify(v).slice(0, 300);
  } catch {
    return String(v);
  }
};
const isDeepEqual = (a: unknown, b: unknown) => {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
};

/** Accepted by hand ⇒ accepted by the schema, same body; accepted by the schema unchanged ⇒ accepted by hand. */
function sameVerdict(value: unknown): void {
  const fast = fastCheckBody(value);
  const slow = TransactionBodySchema.safeParse(value);
  if (fast === undefined) {
    // the schema may accept a body by changing it (zod drops a "__proto__" metadata key): that one goes the slow way
    if (slow.success && isDeepEqual(slow.data, value)) assert.fail(`the schema accepts, unchanged, what the hand check refused: ${show(value)}`);
  } else {
    if (!slow.success) assert.fail(`the hand check accepted what the schema refuses: ${show(value)}: ${slow.error.message}`);
    assert.deepStrictEqual(fast, slow.data);
  }
}

test('valid bodies: the hand check accepts every one the schema accepts, with the same output', () => {
  fc.assert(
    fc.property(validTx, (tx) => sameVerdict(JSON.parse(JSON.stringify(tx)))),
    { numRuns: RUNS },
  );
});

test('mutated bodies (wrong types, edge values, extra and repeated keys, prototype keys): the same verdict as the schema', (t) => {
  let parsed = 0;
  let accepted = 0;
  fc.assert(
    fc.property(mutatedTxText, (text) => {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        return;
      }
      parsed++;
      if (fastCheckBody(value)) accepted++;
      sameVerdict(value);
    }),
    { numRuns: RUNS },
  );
  t.diagnostic(`${parsed} parsed bodies, ${accepted} valid`);
  assert.ok(parsed > RUNS / 2 && accepted > 0 && accepted < parsed, 'the generator made both kinds');
});

test('values that are not objects, and prototype tricks', () => {
  for (const v of [
    null,
    1,
    'x',
    [],
    [{}],
    true,
    JSON.parse('{"__proto__":{"type":"payin","merchant_id":"m_1","amount":1,"currency":"USD"}}'),
    JSON.parse('{"type":"payin","merchant_id":"m_1","amount":1,"currency":"USD","metadata":{"__proto__":"x"}}'),
    JSON.parse('{"type":"payin","merchant_id":"m_1","amount":1,"currency":"USD","metadata":{"constructor":"x","toString":"y"}}'),
    Object.assign(Object.create({ inherited: 1 }), { type: 'payin', merchant_id: 'm_1', amount: 1, currency: 'USD' }),
  ]) {
    sameVerdict(v);
  }
});
