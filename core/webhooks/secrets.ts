// Endpoint signing secrets. They must be readable to sign, so they are stored encrypted, not
// hashed: AES-256-GCM under RILL_WEBHOOK_SECRET_KEY (32 bytes, base64 or hex), a fresh 12-byte IV
// per secret, stored as `v1.<iv>.<tag>.<ciphertext>` (base64url). Without the variable a fixed
// development key is used, which NODE_ENV=production refuses. A secret is shown once (creation,
// rotation) and never logged.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { ConfigError } from '../errors.ts';

const DEV_KEY = createHash('sha256').update('rill development webhook secret key: not for production').digest();

export function secretKey(env: NodeJS.ProcessEnv = process.env): Buffer {
  const raw = env.RILL_WEBHOOK_SECRET_KEY;
  if (!raw) {
    if (env.NODE_ENV === 'production')
      throw new ConfigError('RILL_WEBHOOK_SECRET_KEY is not set (32 bytes, base64 or hex); production refuses the development key');
    return DEV_KEY;
  }
  const key = /^[0-9a-f]{64}$/i.test(raw) ? Buffer.from(raw, 'hex') : Buffer.from(raw, 'base64');
  if (key.length !== 32) throw new ConfigError('RILL_WEBHOOK_SECRET_KEY must be 32 bytes (44 base64 or 64 hex characters)');
  return key;
}

/** A new Standard Webhooks secret: whsec_ and 24 random bytes in base64. */
export function newSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

export function encryptSecret(secret: string, key: Buffer): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
  return ['v1', iv.toString('base64url'), c.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
}

export function decryptSecret(stored: string, key: Buffer): string {
  const [v, iv, tag, ct] = stored.split('.');
  if (v !== 'v1' || !iv || !tag || ct === undefined) throw new Error('stored webhook secret has an unknown format');
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
  d.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
}
