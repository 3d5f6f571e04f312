// Ingest's own Redis key names, beside core's (same pattern: a key of partition i carries {i}).
import { Keys } from '../core/keys.ts';

export class IngestKeys extends Keys {
  /** A merchant's rate-limit bucket, in its partition beside the streams it guards: rill:{7}:rl:m_001 */
  rateLimit(partition: number, merchantId: string): string {
    return `${this.prefix}:{${partition}}:rl:${merchantId}`;
  }

  /** An idempotency record as releases before the compact one named it (still read for one TTL after an upgrade). */
  legacyIdempotency(partition: number, merchantId: string, key: string): string {
    return `${this.prefix}:{${partition}}:idem:${merchantId}:${key}`;
  }
}
