// Partition handover between the workers of ordered stages, shared by every stage loop of one
// worker process: one connection for lease and membership commands (never blocked by a stream
// read, so a lease refresh is never queued behind XREADGROUP BLOCK) and one pub/sub subscription.
// A member that gives partitions up or joins publishes a notice on `<prefix>:g:lease-notices`;
// the other members of that stage sync their leases at once instead of at their next periodic
// sync (a third of lease_ttl), so a partition changes hands in milliseconds (Kafka's cooperative
// rebalancing: only the partitions that move pause, and only for as long as the move takes).
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import type { RedisClient } from '../redis.ts';

type Listener = () => void;

export class LeaseHandover {
  private readonly listeners = new Map<string, Map<string, Listener>>();
  private started: Promise<void> | undefined;

  /**
   * @param redis lease and membership commands, and publishing
   * @param subscriber a connection given over to SUBSCRIBE (no other commands on it)
   */
  constructor(
    readonly redis: Redis,
    private readonly subscriber: RedisClient,
    private readonly channel: string,
    private readonly logger: Logger,
  ) {}

  /** Subscribe (once): resolves when notices are being received. */
  start(): Promise<void> {
    this.started ??= (async () => {
      this.subscriber.on('message', (channel: string, message: string) => {
        if (channel !== this.channel) return;
        const [stage, from] = message.split('\n');
        for (const [member, listener] of this.listeners.get(stage!) ?? []) if (member !== from) listener();
      });
      await this.subscriber.subscribe(this.channel);
    })();
    return this.started;
  }

  /** Call `listener` when another member of `stage` announces a change; returns the unsubscribe. */
  listen(stage: string, member: string, listener: Listener): () => void {
    let byMember = this.listeners.get(stage);
    if (!byMember) this.listeners.set(stage, (byMember = new Map()));
    byMember.set(member, listener);
    return () => byMember.delete(member);
  }

  /** Tell the other members of `stage` to sync now (a notice lost to a dropped connection costs one periodic sync). */
  async announce(stage: string, member: string): Promise<void> {
    await this.redis
      .publish(this.channel, `${stage}\n${member}`)
      .catch((err: unknown) => this.logger.warn({ err, stage }, 'lease notice not published; others sync at their next period'));
  }
}
