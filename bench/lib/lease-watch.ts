// Watches the partition leases of an instance's ordered stages from outside (their Redis keys,
// every POLL_MS): who holds what, how long a partition went without an owner, and when a
// consumer first held a given share.
import type { Redis } from 'ioredis';
import type { TopologySummary } from './topology.ts';

const POLL_MS = 10;

export class LeaseWatch {
  private readonly keys: { stage: string; partition: number; key: string }[] = [];
  /** stage/partition → since when it has had no holder (ms), while it has none. */
  private readonly idleSince = new Map<string, number>();
  private gaps: { at: number; ms: number; slot: string }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The last poll: stage → consumer (member up to its loop index) → partitions. */
  holders = new Map<string, Map<string, number[]>>();
  private listeners: (() => void)[] = [];

  constructor(
    private readonly redis: Redis,
    prefix: string,
    t: TopologySummary,
    stages: readonly string[],
  ) {
    for (const stage of stages) {
      const partitions = t.topics[t.stages[stage]!.input]!.partitions;
      for (let p = 0; p < partitions; p++) this.keys.push({ stage, partition: p, key: `mutex:${prefix}:{${p}}:lease:${stage}` });
    }
  }

  start(): void {
    const poll = async () => {
      const values = await this.redis.mget(...this.keys.map((k) => k.key)).catch(() => undefined);
      const now = Date.now();
      if (values) {
        const holders = new Map<string, Map<string, number[]>>();
        this.keys.forEach((k, i) => {
          const id = values[i];
          const slot = `${k.stage}/${k.partition}`;
          if (!id) {
            if (!this.idleSince.has(slot)) this.idleSince.set(slot, now);
            return;
          }
          const since = this.idleSince.get(slot);
          if (since !== undefined) {
            this.gaps.push({ at: since, ms: now - since, slot });
            this.idleSince.delete(slot);
          }
          // identifier: <host>-<consumer>-<loop>:<partition>
          const member = id.slice(0, id.lastIndexOf(':'));
          const byMember = holders.get(k.stage) ?? new Map<string, number[]>();
          byMember.set(member, [...(byMember.get(member) ?? []), k.partition]);
          holders.set(k.stage, byMember);
        });
        this.holders = holders;
        for (const l of this.listeners.splice(0)) l();
      }
      if (!this.stopped) this.timer = setTimeout(() => void poll(), POLL_MS);
    };
    void poll();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** The next poll's result. */
  nextPoll(): Promise<void> {
    return new Promise((r) => this.listeners.push(r));
  }

  /** Partitions of `stage` held by members whose name contains `consumer`. */
  heldBy(stage: string, consumer: string): number {
    let n = 0;
    for (const [member, ps] of this.holders.get(stage) ?? []) if (member.includes(`-${consumer}-`)) n += ps.length;
    return n;
  }

  /** The longest time a partition had no holder, among gaps that began in [from, to) (ms). */
  maxIdleMs(from: number, to: number): { ms: number; slot?: string } {
    let best: { ms: number; slot?: string } = { ms: 0 };
    for (const g of this.gaps) if (g.at >= from && g.at < to && g.ms > best.ms) best = { ms: g.ms, slot: g.slot };
    for (const [slot, since] of this.idleSince) if (since >= from && since < to && Date.now() - since > best.ms) best = { ms: Date.now() - since, slot };
    return best;
  }
}
