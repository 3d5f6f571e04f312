// At most one delivery of "the same alert" per webhook per dedupe window, across every worker:
// one Redis key per (sink, webhook, alert identity), set with SET NX PX.
//
//   claim    before sending: SET NX PX takes the key with the entry's token for a short while
//            (delivery_timeout + 1 s), so a crashed sender's claim is gone before its entry is
//            reclaimed (visibility_timeout >= delivery_timeout + 5 s). The same entry coming back
//            (a restart re-reading its own pending entries) may take over its own claim.
//   confirm  after a 2xx: the key becomes "sent:<token>" for the whole window.
//   release  after a failure (or a stop): the claim is dropped, so a retry or a redrive of the
//            dead letter can send it.
// An alert whose key is held (sent, or being sent for another entry) is suppressed. Keys are
// global (no hash tag): every command touches one key, so this works on Redis Cluster too.
import type { Redis } from 'ioredis';
import type { Keys } from '../../core/keys.ts';

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export type ClaimResult = 'claimed' | 'sent' | 'busy';

export class AlertDedupe {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly sink: string,
    private readonly windowMs: number,
    private readonly claimMs: number,
  ) {}

  key(webhook: string, identity: string): string {
    return this.keys.global('alerts', this.sink, 'dedupe', webhook, identity);
  }

  async claim(webhook: string, identity: string, token: string): Promise<ClaimResult> {
    const key = this.key(webhook, identity);
    for (let tries = 0; tries < 3; tries++) {
      if ((await this.redis.set(key, token, 'PX', this.claimMs, 'NX')) === 'OK') return 'claimed';
      const held = await this.redis.get(key);
      if (held === null) continue; // expired in between: try again
      if (held.startsWith('sent:')) return 'sent';
      if (held !== token) return 'busy';
      // our own entry again (its earlier delivery was cut short): take the claim over
      if ((await this.redis.set(key, token, 'PX', this.claimMs, 'XX')) === 'OK') return 'claimed';
    }
    return 'busy';
  }

  async confirm(webhook: string, identity: string, token: string): Promise<void> {
    await this.redis.set(this.key(webhook, identity), `sent:${token}`, 'PX', this.windowMs);
  }

  async release(webhook: string, identity: string, token: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key(webhook, identity), token);
  }
}
