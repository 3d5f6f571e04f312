// Parked events of an ordered (`ordering: key`) stage: per-merchant ordering without head-of-line
// blocking (Confluent Parallel Consumer's KEY ordering). When an event must retry or wait, it and
// its merchant's later events of that lane are parked in Redis, in order, and the lane goes on
// with every other merchant. A queue is keyed by its member "<lane>|<merchant>": order is kept per
// merchant within a lane (lanes reorder a merchant's types by design: a refund overtakes payins).
//
// Redis holds the truth (a SIGKILLed worker or a lease handover resumes with the same queues);
// this class mirrors, for the partitions this consumer holds a lease on, which members are parked
// and when each queue's head is due, and which tokens something waits for. The lease makes this
// consumer the only writer of those partitions' parking, so the mirror stays exact; it is loaded
// again at every takeover.
import type { Redis } from 'ioredis';
import type { Keys } from '../keys.ts';
import { runScript } from '../redis.ts';
import { coreScript } from '../scripts.ts';
import { slotPipeline } from '../slot-pipeline.ts';
import type { ParkedSource, RawEntry } from './lane-reader.ts';
import type { Output } from './settlement.ts';

const TAKE_PARKED = coreScript('takeParked');

interface PartitionParking {
  /** member → when its queue's head is due (unix ms; 0: now). */
  due: Map<string, number>;
  /** token → the member whose head waits for it. */
  waiters: Map<string, string>;
}

/** What a parked queue item holds: the entry as read from its stream. */
interface ParkedItem {
  stream: string;
  lane: string;
  fields: string[];
  token?: string;
}

export interface ParkingOptions {
  redis: Redis;
  keys: Keys;
  stage: string;
  maxPerKey: number;
  maxPerPartition: number;
}

export class Parking {
  private readonly partitions = new Map<number, PartitionParking>();

  constructor(private readonly o: ParkingOptions) {}

  /** Mirror what Redis holds for these partitions (at takeover). */
  async load(partitions: readonly number[]): Promise<void> {
    if (!partitions.length) return;
    const pipe = slotPipeline(this.o.redis);
    for (const p of partitions) {
      const index = this.o.keys.parked(this.o.stage, p, 'index');
      pipe.add(index, (q) => q.zrange(index, '0', '-1', 'WITHSCORES'));
      const waiters = this.o.keys.parked(this.o.stage, p, 'waiters');
      pipe.add(waiters, (q) => q.hgetall(waiters));
    }
    const res = await pipe.exec();
    partitions.forEach((p, k) => {
      const [e1, zr] = res[2 * k]!;
      const [e2, hw] = res[2 * k + 1]!;
      if (e1) throw e1;
      if (e2) throw e2;
      const flat = zr as string[];
      const due = new Map<string, number>();
      for (let i = 0; i < flat.length; i += 2) due.set(flat[i]!, Number(flat[i + 1]));
      this.partitions.set(p, { due, waiters: new Map(Object.entries(hw as Record<string, string>)) });
    });
  }

  forget(partition: number): void {
    this.partitions.delete(partition);
  }

  isParked(partition: number, member: string): boolean {
    return this.partitions.get(partition)?.due.has(member) ?? false;
  }

  /** Parked events of this consumer's partitions, by member count (for status and metrics). */
  parkedMembers(): number {
    let n = 0;
    for (const p of this.partitions.values()) n += p.due.size;
    return n;
  }

  /** The earliest time a parked queue is due (Infinity: none). */
  nextDue(): number {
    let t = Infinity;
    for (const p of this.partitions.values()) for (const d of p.due.values()) if (d < t) t = d;
    return t;
  }

  /** The due queues' entries, oldest first per queue, up to about `max` in all. */
  async takeDue(now: number, max: number): Promise<RawEntry[]> {
    const pipe = slotPipeline(this.o.redis);
    const calls: { partition: number; members: string[] }[] = [];
    let budget = max;
    for (const [p, state] of this.partitions) {
      const members = [...state.due]
        .filter(([, d]) => d <= now)
        .sort((a, b) => a[1] - b[1])
        .map(([m]) => m);
      if (!members.length || budget <= 0) continue;
      const chosen = members.slice(0, Math.max(1, budget));
      budget -= chosen.length;
      const keys = [this.o.keys.parked(this.o.stage, p, 'taken'), ...chosen.map((m) => this.o.keys.parkQueue(this.o.stage, p, m))];
      const perQueue = Math.max(1, Math.floor(max / chosen.length));
      pipe.add(keys[0]!, (q) => void runScript(q, TAKE_PARKED, keys, [perQueue, ...chosen]));
      calls.push({ partition: p, members: chosen });
    }
    if (!calls.length) return [];
    const out: RawEntry[] = [];
    (await pipe.exec()).forEach(([err, reply], k) => {
      if (err) throw err;
      const { partition, members } = calls[k]!;
      (reply as [number, string[]][]).forEach(([takes, items], j) => {
        const member = members[j]!;
        if (!items.length) {
          // emptied meanwhile (a settle whose reply was lost): nothing parked here any more
          this.partitions.get(partition)?.due.delete(member);
          return;
        }
        const source = this.source(partition, member);
        items.forEach((raw, i) => {
          const sep = raw.indexOf(' ');
          const item = JSON.parse(raw.slice(sep + 1)) as ParkedItem;
          const parked = item.token ? { ...source, token: item.token } : source;
          out.push({
            stream: item.stream,
            partition,
            lane: item.lane,
            id: raw.slice(0, sep),
            fields: item.fields,
            deliveries: i === 0 ? Number(takes) : 1,
            parked,
          });
        });
      });
    });
    return out;
  }

  source(partition: number, member: string): ParkedSource {
    const k = this.o.keys;
    return {
      queue: k.parkQueue(this.o.stage, partition, member),
      member,
      index: k.parked(this.o.stage, partition, 'index'),
      taken: k.parked(this.o.stage, partition, 'taken'),
      count: k.parked(this.o.stage, partition, 'count'),
    };
  }

  /** Park `raw` (with these fields) at the tail of its member's queue; mirrored at once. */
  park(raw: RawEntry, member: string, fields: string[], due: number, token?: string): Output {
    const k = this.o.keys;
    const p = raw.partition;
    const state = this.state(p);
    if (!state.due.has(member)) state.due.set(member, due);
    if (token) state.waiters.set(token, member);
    return {
      op: 'park',
      queue: k.parkQueue(this.o.stage, p, member),
      index: k.parked(this.o.stage, p, 'index'),
      count: k.parked(this.o.stage, p, 'count'),
      waiters: k.parked(this.o.stage, p, 'waiters'),
      member,
      item: itemOf(raw, fields, token),
      due,
      maxPerQueue: this.o.maxPerKey,
      maxPerPartition: this.o.maxPerPartition,
      token,
    };
  }

  /** A parked head that stays parked, tried again at `due` (or when `token` is signalled). */
  rewrite(raw: RawEntry, member: string, fields: string[], due: number, token?: string): Output {
    const state = this.state(raw.partition);
    state.due.set(member, due);
    if (token) state.waiters.set(token, member);
    return {
      op: 'rewrite',
      index: raw.parked!.index,
      waiters: this.o.keys.parked(this.o.stage, raw.partition, 'waiters'),
      item: itemOf(raw, fields, token),
      due,
      token,
    };
  }

  /** Wake-ups for the tokens something here waits for (none: no op, no Redis work). */
  wake(partition: number, tokens: readonly string[], now: number): Output[] {
    const state = this.partitions.get(partition);
    if (!state?.waiters.size) return [];
    const out: Output[] = [];
    for (const token of tokens) {
      const member = state.waiters.get(token);
      if (member === undefined) continue;
      state.waiters.delete(token);
      if (state.due.has(member)) state.due.set(member, now);
      out.push({
        op: 'wake',
        waiters: this.o.keys.parked(this.o.stage, partition, 'waiters'),
        index: this.o.keys.parked(this.o.stage, partition, 'index'),
        token,
        now,
      });
    }
    return out;
  }

  /** A settled head's token no longer has a waiter. */
  unwait(partition: number, token: string | undefined): Output[] {
    if (!token) return [];
    this.partitions.get(partition)?.waiters.delete(token);
    return [{ op: 'hdel', key: this.o.keys.parked(this.o.stage, partition, 'waiters'), field: token }];
  }

  /** After settling parked queues: learn from Redis which of them are empty now, and when the rest are due. */
  async refresh(touched: ReadonlyMap<number, ReadonlySet<string>>): Promise<void> {
    const pipe = slotPipeline(this.o.redis);
    const order: [number, string][] = [];
    for (const [p, members] of touched) {
      const index = this.o.keys.parked(this.o.stage, p, 'index');
      for (const m of members) {
        pipe.add(index, (q) => q.zscore(index, m));
        order.push([p, m]);
      }
    }
    if (!order.length) return;
    (await pipe.exec()).forEach(([err, score], i) => {
      if (err) throw err;
      const [p, m] = order[i]!;
      const state = this.partitions.get(p);
      if (!state) return;
      if (score === null) state.due.delete(m);
      else state.due.set(m, Number(score));
    });
  }

  private state(p: number): PartitionParking {
    let s = this.partitions.get(p);
    if (!s) this.partitions.set(p, (s = { due: new Map(), waiters: new Map() }));
    return s;
  }
}

function itemOf(raw: RawEntry, fields: string[], token?: string): string {
  const item: ParkedItem = { stream: raw.stream, lane: raw.lane, fields };
  if (token) item.token = token;
  return `${raw.id} ${JSON.stringify(item)}`;
}
