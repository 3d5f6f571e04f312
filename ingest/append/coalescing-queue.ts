// Coalescing the single endpoint's appends: the events of concurrent requests that reach Redis in
// the same turn of the event loop go out as ONE script call per partition (one slot), all calls of
// the turn in one write (ingest's connection auto-pipelines; on Redis Cluster ioredis groups them
// per node). Under load a request then costs Redis a share of one script call instead of a call
// of its own; alone, it waits for nothing but the end of the current turn (setImmediate).
import { runScript } from '../../core/redis.ts';
import type { RedisClient } from '../../core/redis.ts';
import type { RateLimitConfig } from '../../core/topology/schema.ts';
import { APPEND_EVENTS, appendCall, MAX_CALL_EVENTS, parseAppendReply } from './script-call.ts';
import type { AppendReply, EventToAppend } from './script-call.ts';
import { withTimeout } from '../timeout.ts';

export interface CoalescingQueueOptions {
  rateLimit: RateLimitConfig;
  idempotencyTtlMs: number;
  /** Longest wait for Redis; past it every waiting request fails (503). */
  timeoutMs: number;
}

interface Waiting {
  events: EventToAppend[];
  done: ((reply: AppendReply) => void)[];
  fail: ((err: Error) => void)[];
}

export class CoalescingQueue {
  private readonly pending = new Map<number, Waiting>();
  private scheduled = false;
  private readonly flush = () => this.run();

  constructor(
    private readonly redis: RedisClient,
    private readonly opts: CoalescingQueueOptions,
  ) {}

  /** The event's outcome once its partition's call has run; rejects when the round trip fails. */
  append(partition: number, event: EventToAppend): Promise<AppendReply> {
    let w = this.pending.get(partition);
    if (!w) this.pending.set(partition, (w = { events: [], done: [], fail: [] }));
    const waiting = w;
    const out = new Promise<AppendReply>((resolve, reject) => {
      waiting.events.push(event);
      waiting.done.push(resolve);
      waiting.fail.push(reject);
    });
    if (waiting.events.length >= MAX_CALL_EVENTS) {
      // full: it goes out as it is, the partition's next event opens another call
      this.full.push(waiting);
      this.pending.delete(partition);
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
    return out;
  }

  private readonly full: Waiting[] = [];

  private run(): void {
    this.scheduled = false;
    const calls = this.full.length ? [...this.full, ...this.pending.values()] : [...this.pending.values()];
    this.full.length = 0;
    this.pending.clear();
    const now = Date.now();
    // each call on the connection itself: its auto-pipelining writes the turn's calls at once
    for (const w of calls) {
      const call = appendCall(w.events, this.opts.rateLimit, this.opts.idempotencyTtlMs, now);
      withTimeout(runScript(this.redis, APPEND_EVENTS, call.keys, call.args), this.opts.timeoutMs, 'Redis append').then(
        (reply) => {
          const outs = parseAppendReply(reply, w.events.length);
          for (let j = 0; j < outs.length; j++) w.done[j]!(outs[j]!);
        },
        (err: Error) => {
          for (const fail of w.fail) fail(err);
        },
      );
    }
  }
}
