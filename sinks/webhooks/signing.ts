// Signing a delivery (Standard Webhooks): the endpoint's live secrets, decrypted only here
// (stored encrypted: core/webhooks/secrets.ts), each make one signature of the webhook-signature
// header, so a receiver keeps verifying through a secret rotation.
import { createHmac } from 'node:crypto';
import type { EndpointRow } from '../../core/webhooks/endpoints.ts';
import { decryptSecret } from '../../core/webhooks/secrets.ts';

/** The secrets that sign now: the current one, and the previous one during its grace period. */
export function signingSecrets(r: EndpointRow, key: Buffer, now: number): string[] {
  const out = [decryptSecret(r.secret_enc, key)];
  if (r.previous_secret_enc && r.previous_expires_at && r.previous_expires_at.getTime() > now) out.push(decryptSecret(r.previous_secret_enc, key));
  return out;
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the secret's decoded key. */
export function sign(secret: string, msgId: string, timestampSec: number, body: string): string {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  return `v1,${createHmac('sha256', key).update(`${msgId}.${timestampSec}.${body}`).digest('base64')}`;
}

/** The webhook-signature header: one signature per live secret, space-separated. */
export function signatureHeader(secrets: readonly string[], msgId: string, timestampSec: number, body: string): string {
  return secrets.map((s) => sign(s, msgId, timestampSec, body)).join(' ');
}
