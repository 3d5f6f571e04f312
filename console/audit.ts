// The console's audit trail: every mutation (redrive, purge) is one structured log line and one
// entry of a capped Redis stream (<prefix>:g:console:audit), which the dead-letters page lists.
import { fieldsToMap } from '../core/entry.ts';
import type { Keys } from '../core/keys.ts';
import type { Logger } from '../core/logger.ts';
import type { RedisClient } from '../core/redis.ts';

export interface AuditEntry {
  at: number;
  actor: string;
  action: string;
  detail: string;
}

const MAX_ENTRIES = 10_000;

export class AuditLog {
  private readonly key: string;

  constructor(
    private readonly redis: RedisClient,
    keys: Keys,
    private readonly logger: Logger,
  ) {
    this.key = keys.global('console', 'audit');
  }

  async record(actor: string, action: string, detail: string): Promise<void> {
    this.logger.info({ audit: true, actor, action, detail }, `console ${action}: ${detail}`);
    await this.redis.xadd(this.key, 'MAXLEN', '~', MAX_ENTRIES, '*', 'actor', actor, 'action', action, 'detail', detail);
  }

  async recent(n = 10): Promise<AuditEntry[]> {
    const rows = (await this.redis.xrevrange(this.key, '+', '-', 'COUNT', n)) as [string, string[]][];
    return rows.map(([id, f]) => {
      const m = fieldsToMap(f);
      return { at: Number(id.split('-')[0]), actor: m.get('actor') ?? '', action: m.get('action') ?? '', detail: m.get('detail') ?? '' };
    });
  }
}
