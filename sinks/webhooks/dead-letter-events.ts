// transaction.dead_lettered events: a consumer group (`<sink>-dlq`, from the time the sink first
// starts) on every payments stage's dead-letter streams turns each new dead letter into a webhook
// event on the webhook_events topic, moving it there and acknowledging the dead letter in one
// settle script (same partition). The dead letter itself stays where it is for `rill dlq`.
// Polls (one XREADGROUP per partition, cluster-safe) every pollMs; after a restart this
// consumer's own pending entries are read first.
import type { Redis } from 'ioredis';
import { entryArgs, F_EVENT, fieldsToMap } from '../../core/entry.ts';
import type { TransactionEvent } from '../../core/event.ts';
import type { Keys } from '../../core/keys.ts';
import { LaneMap } from '../../core/lanes.ts';
import { Settlement } from '../../core/consumer/index.ts';
import { slotPipeline } from '../../core/slot-pipeline.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { eventId, transactionData } from '../../core/webhooks/events.ts';

type ReadReply = [string, [string, string[]][]][] | null;

export class DeadLetterEvents {
  private readonly group: string;
  private readonly streams: string[][];
  private readonly lanes: LaneMap;
  private pendingFirst = true;

  constructor(private readonly o: { sink: string; output: string; topology: Topology; keys: Keys; redis: Redis; consumer: string; now: () => number }) {
    this.group = `${o.sink}-dlq`;
    const stages = Object.entries(o.topology.stages)
      .filter(([, s]) => s.processor !== 'webhook-events')
      .map(([name]) => name);
    const partitions = o.topology.topics[o.output]?.partitions ?? 1;
    this.streams = Array.from({ length: partitions }, (_, p) => stages.map((s) => o.keys.deadLetter(s, p)));
    this.lanes = new LaneMap(o.topology.priorities);
  }

  async ensureGroups(): Promise<void> {
    const pipe = slotPipeline(this.o.redis);
    for (const keys of this.streams) for (const k of keys) pipe.add(k, (x) => void x.xgroup('CREATE', k, this.group, '$', 'MKSTREAM'));
    for (const [err] of await pipe.exec()) if (err && !String(err.message).includes('BUSYGROUP')) throw err;
  }

  /** One pass: read, convert, settle. Returns how many dead letters it handled. */
  async pass(count = 100): Promise<number> {
    const from = this.pendingFirst ? '0' : '>';
    const pipe = slotPipeline(this.o.redis);
    for (const keys of this.streams) {
      if (keys.length)
        pipe.add(keys[0]!, (x) => void x.xreadgroup('GROUP', this.group, this.o.consumer, 'COUNT', count, 'STREAMS', ...keys, ...keys.map(() => from)));
    }
    const settlement = new Settlement(this.group);
    let n = 0;
    let pending = 0;
    for (const [err, reply] of await pipe.exec()) {
      if (err) throw err;
      for (const [stream, entries] of (reply as ReadReply) ?? []) {
        const p = Number(/\{(\d+)\}/.exec(stream)?.[1] ?? 0);
        for (const [id, fields] of entries) {
          n++;
          if (from === '0') pending++;
          settlement.add({ stream, id }, this.outputs(p, fields));
        }
      }
    }
    await settlement.exec(this.o.redis);
    if (this.pendingFirst && pending === 0) this.pendingFirst = false;
    return n;
  }

  private outputs(p: number, fields: string[] | null) {
    const m = fieldsToMap(fields ?? []);
    let tx: TransactionEvent;
    try {
      tx = JSON.parse(m.get(F_EVENT) ?? '') as TransactionEvent;
    } catch {
      return []; // unreadable: no merchant to tell
    }
    if (!tx || typeof tx.id !== 'string' || typeof tx.merchant_id !== 'string') return [];
    const now = this.o.now();
    const type = 'transaction.dead_lettered';
    const reason = `${m.get('stage') ?? 'pipeline'}: ${(m.get('message') ?? m.get('error') ?? 'dead-lettered').slice(0, 300)}`;
    const ev = {
      id: eventId(type, tx.id),
      type,
      created_at: new Date(now).toISOString(),
      merchant_id: tx.merchant_id,
      data: transactionData({ ...tx, status: 'dead_lettered', failure_reason: reason }, now),
    };
    return [
      { op: 'xadd' as const, key: this.o.keys.lane(this.o.output, p, this.lanes.laneOf(type)), fields: entryArgs({ txId: ev.id, event: JSON.stringify(ev) }) },
    ];
  }
}
