// API keys (design §3): stored hashed, compared in constant time.
//   - api_keys never holds the plaintext key, its secret, or any 8+ character piece of the secret,
//     in any column or encoding;
//   - core/api-keys.ts compares digests with crypto.timingSafeEqual (a static read of the
//     code path) and really calls it on every check of a well-formed key (a spy put in place with
//     module.syncBuiltinESMExports, which updates the live ESM binding api-keys.ts imported);
//   - wrong secrets of the right length fail, one-character changes at every position included.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto, { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { createApiKey, KeyStore, parseApiKey } from '../../core/api-keys.ts';
import { inProcessIngest } from '../fuzz/harness.ts';
import type { InProcessIngest } from '../fuzz/harness.ts';
import { call, NEVER_SHED } from './helpers.ts';

const KEY_STORE = new URL('../../core/api-keys.ts', import.meta.url);
const M = 'm_keys';

/** Every substring of `s` of length `n`. */
const pieces = (s: string, n: number) => Array.from({ length: s.length - n + 1 }, (_, i) => s.slice(i, i + n));

describe('API keys: hashed at rest, compared in constant time', () => {
  let inst: TestInstance;
  let ing: InProcessIngest;
  const created: string[] = [];

  before(async () => {
    inst = await createInstance('sec-keys');
    ing = inProcessIngest(inst, { load: NEVER_SHED });
    for (let i = 0; i < 10; i++) created.push(await createApiKey(inst.pool, i % 3 === 2 ? { scope: 'tap' } : { merchantId: `${M}${i}` }));
  });
  after(async () => {
    await ing?.stop();
    await inst?.cleanup();
  });

  test('api_keys holds no plaintext key, no secret and no 8-character piece of one, in any column or encoding', async () => {
    // every column as text (bytea as \x hex), plus the hash in base64 and base64url and as raw bytes
    const { rows } = await inst.pool.query<{ row: string; hash: Buffer }>('SELECT t::text AS row, t.secret_hash AS hash FROM api_keys t');
    assert.equal(rows.length, created.length);
    const haystacks = rows.flatMap((r) => [
      r.row,
      r.row.toLowerCase(),
      r.hash.toString('base64'),
      r.hash.toString('base64url'),
      r.hash.toString('latin1'),
      r.hash.toString('hex'),
    ]);
    for (const key of created) {
      const { keyId, secret } = parseApiKey(key)!;
      const secretBytes = Buffer.from(secret, 'base64url');
      for (const h of haystacks) {
        assert.ok(!h.includes(key), 'the plaintext key is stored');
        for (const p of pieces(secret, 8)) assert.ok(!h.includes(p) && !h.includes(p.toLowerCase()), `a piece of a secret ("${p}") is stored`);
        assert.ok(!h.includes(secretBytes.toString('hex')), 'the secret bytes are stored (hex)');
      }
      // what is stored is the SHA-256 digest, 32 bytes, bound to the key id's row
      const row = rows.find((r) => r.row.includes(keyId));
      assert.ok(row, `a row for ${keyId}`);
      assert.equal(row.hash.length, 32);
      assert.ok(row.hash.equals(createHash('sha256').update(secret, 'utf8').digest()), 'secret_hash is SHA-256(secret)');
      assert.ok(!row.hash.equals(secretBytes.subarray(0, 32)), 'not the secret itself');
    }
  });

  test('api-keys.ts compares digests with crypto.timingSafeEqual, never with ==, equals or compare (static)', () => {
    const src = readFileSync(KEY_STORE, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    assert.match(src, /import\s*\{[^}]*\btimingSafeEqual\b[^}]*\}\s*from\s*'node:crypto'/, 'timingSafeEqual imported from node:crypto');
    const auth = /async authenticate\([^)]*\)[^{]*\{([\s\S]*?)\n {2}\}/.exec(src)?.[1];
    assert.ok(auth, 'KeyStore.authenticate found');
    assert.match(auth, /timingSafeEqual\(\s*\w+\s*,\s*[\w.]+\s*\)/, 'authenticate() calls timingSafeEqual on the digests');
    // a length check of fixed-size digests is fine; any other comparison of secrets or hashes is not
    const comparisons = src.replace(/[\w.]+\.length\s*[!=]==?\s*[\w.]+\.length/g, '');
    assert.doesNotMatch(
      comparisons,
      /\b\w*(hash|secret|presented|digest)\w*\b\s*[!=]==?|[!=]==?\s*[\w.]*(hash|secret|presented|digest)\b/i,
      'no ==/!= on secrets or hashes',
    );
    assert.doesNotMatch(comparisons, /\.(equals|compare)\(|Buffer\.compare\(|localeCompare\(/, 'no Buffer.equals/compare on secrets or hashes');
    // and Postgres never compares secrets either: rows are found by key id only
    for (const sql of src.match(/'(SELECT|UPDATE|DELETE)[^']*'/g) ?? []) assert.doesNotMatch(sql, /secret_hash\s*=/, `SQL compares the hash: ${sql}`);
  });

  test('every check of a well-formed key runs timingSafeEqual (spy), and only the right secret passes', async () => {
    const original = crypto.timingSafeEqual;
    let calls = 0;
    crypto.timingSafeEqual = ((a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      calls++;
      return original(a, b);
    }) as typeof crypto.timingSafeEqual;
    syncBuiltinESMExports();
    try {
      const store = new KeyStore(inst.pool);
      const key = created[0]!;
      const { keyId } = parseApiKey(key)!;
      assert.equal((await store.authenticate(key))?.keyId, keyId);
      assert.equal(calls, 1, 'the right key went through timingSafeEqual');
      const wrong = `rk_${keyId}_${randomBytes(32).toString('base64url')}`;
      assert.equal(wrong.length, key.length);
      assert.equal(await store.authenticate(wrong), undefined);
      assert.equal(calls, 2, 'a wrong secret of the same length went through timingSafeEqual');
    } finally {
      crypto.timingSafeEqual = original;
      syncBuiltinESMExports();
    }
  });

  test('wrong secrets of the right length → 401 (random ones, and one changed character at every position)', async () => {
    const key = created[0]!;
    const { keyId, secret } = parseApiKey(key)!;
    const body = JSON.stringify({ type: 'payin', merchant_id: `${M}0`, amount: 1, currency: 'USD' });
    const ok = await call(ing.app, 'POST', '/v1/transactions', { key, body });
    assert.equal(ok.status, 202, ok.text);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const wrong: string[] = [];
    for (let i = 0; i < secret.length; i++) {
      const c = alphabet[(alphabet.indexOf(secret[i]!) + 1) % alphabet.length]!;
      wrong.push(`rk_${keyId}_${secret.slice(0, i)}${c}${secret.slice(i + 1)}`);
    }
    for (let i = 0; i < 100; i++) wrong.push(`rk_${keyId}_${randomBytes(32).toString('base64url')}`);
    for (const w of wrong) {
      assert.equal(w.length, key.length);
      const res = await call(ing.app, 'POST', '/v1/transactions', { key: w, body });
      assert.equal(res.status, 401, `${w}: ${res.status}`);
    }
  });
});
