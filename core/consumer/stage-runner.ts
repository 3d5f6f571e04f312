// Runs one stage: reads batches from its input topic, hands them to the processor, and for each
// input stream (one partition and lane) acks and forwards the results in one atomic Lua call;
// all those calls go in one pipeline, so a batch costs one round trip to settle.
import type { Redis } from 'ioredis';
import type { Keys } from '../keys.ts';
import type { Logger } from '../logger.ts';
import type { Registry } from '../metrics.ts';
import { counter, histogram, LATENCY_BUCKETS } from '../metrics.ts';
import type { Outcome, Processor, StreamEvent } from '../processor.ts';
import { outcomeFromError } from '../processor.ts';
import type { StageConfig, Topology } from '../topology/schema.ts';
import type { TransactionEvent } from '../event.ts';
import { entryArgs, F_EVENT, F_TRACE, F_TX, fieldsToMap } from '../entry.ts';
import { LaneMap } from '../lanes.ts';
import { runScript } from '../redis.ts';
import type { ScriptSource } from '../redis.ts';
import { LaneReader } from './lane-reader.ts';
import type { RawEntry } from './lane-reader.ts';
import { runLoop } from './loop.ts';
import type { Loop } from './loop.ts';

export interface StageRunnerOptions {
  name: string;
  config: StageConfig;
  topology: Topology;
  keys: Keys;
  /** Dedicated connection for this loop (blocking reads). */
  redis: Redis;
  processor: Processor;
  consumer: string;
  forwardScript: ScriptSource;
  registry: Registry;
  logger: Logger;
  blockMs?: number;
}

interface Settlement {
  /** KEYS: input stream first, then outputs in order of first use. */
  keys: string[];
  args: (string | number)[];
}

export class StageRunner {
  private loop: Loop | undefined;
  private readonly reader: LaneReader;
  private readonly lanes: LaneMap;
  private readonly outcomes;
  private readonly duration;

  constructor(private readonly o: StageRunnerOptions) {
    const partitions = o.topology.topics[o.config.input]!.partitions;
    this.lanes = new LaneMap(o.topology.priorities);
    this.reader = new LaneReader({
      redis: o.redis,
      keys: o.keys,
      topic: o.config.input,
      partitions: Array.from({ length: partitions }, (_, i) => i),
      lanes: o.topology.priorities,
      group: o.name,
      consumer: o.consumer,
      visibilityTimeoutMs: o.config.visibility_timeout,
    });
    this.outcomes = counter(o.registry, 'rill_stage_events_total', 'Events settled by a stage, by outcome', ['stage', 'outcome']);
    this.duration = histogram(o.registry, 'rill_stage_batch_duration_seconds', 'Time to process and settle one batch', ['stage'], LATENCY_BUCKETS);
  }

  async start(): Promise<void> {
    await this.reader.ensureGroups();
    this.loop = runLoop(`stage:${this.o.name}`, this.o.logger, (loop) => this.step(loop));
  }

  /** Stop reading; resolves when the in-flight batch is settled. */
  async stop(): Promise<void> {
    this.loop?.stop();
    await this.loop?.done;
  }

  private async step(loop: Loop): Promise<void> {
    const entries = await this.reader.read(this.o.config.batch, this.o.blockMs ?? 1_000);
    if (!entries.length) return;
    const end = this.duration.startTimer({ stage: this.o.name });
    await this.handle(entries);
    end();
    void loop;
  }

  /** Process one batch and settle every entry in it. Exposed for fault tests. */
  async handle(entries: readonly RawEntry[]): Promise<void> {
    const attempts = this.o.config.retry.attempts;
    const outcomes: (Outcome | undefined)[] = new Array(entries.length);
    const events: StreamEvent[] = [];
    const slots: number[] = [];
    entries.forEach((raw, i) => {
      const decoded = decode(raw);
      if (decoded instanceof Error) outcomes[i] = { kind: 'fatal', error: decoded };
      else if (raw.deliveries > attempts) {
        // poison-pill guard: it was delivered more often than the stage may try it
        outcomes[i] = { kind: 'fatal', error: new Error(`delivered ${raw.deliveries} times (attempts: ${attempts})`) };
      } else {
        events.push(decoded);
        slots.push(i);
      }
    });
    if (events.length) {
      let results: Outcome[];
      try {
        results = await this.o.processor.process(events);
        if (results.length !== events.length) throw new Error(`processor returned ${results.length} outcomes for ${events.length} events`);
      } catch (err) {
        const o = outcomeFromError<TransactionEvent>(err);
        results = events.map(() => o);
      }
      results.forEach((r, j) => (outcomes[slots[j]!] = r));
    }
    await this.settle(entries, outcomes as Outcome[]);
  }

  private async settle(entries: readonly RawEntry[], outcomes: readonly Outcome[]): Promise<void> {
    const byStream = new Map<string, Settlement>();
    const counts = { ok: 0, retry: 0, dead_letter: 0 };
    const now = Date.now();
    entries.forEach((raw, i) => {
      const outcome = outcomes[i]!;
      if (outcome.kind === 'retry' && raw.deliveries < this.o.config.retry.attempts) {
        // left pending: reclaimed after the visibility timeout and tried again
        counts.retry++;
        return;
      }
      let s = byStream.get(raw.stream);
      if (!s) byStream.set(raw.stream, (s = { keys: [raw.stream], args: [this.o.name] }));
      let target: string;
      let fields: string[];
      if (outcome.kind === 'ok') {
        target = this.o.keys.lane(this.o.config.output, raw.partition, this.lanes.laneOf(outcome.event.type));
        const map = raw.fields ? fieldsToMap(raw.fields) : new Map<string, string>();
        fields = entryArgs({ tx: outcome.event.id, ev: JSON.stringify(outcome.event), tp: map.get(F_TRACE) });
        counts.ok++;
      } else {
        target = this.o.keys.deadLetter(this.o.name, raw.partition);
        fields = deadLetterFields(this.o.name, raw, outcome.error, now);
        counts.dead_letter++;
      }
      let k = s.keys.indexOf(target);
      if (k < 0) k = s.keys.push(target) - 1;
      s.args.push(raw.id, 1, k + 1, fields.length, ...fields);
    });
    if (byStream.size) {
      const pipe = this.o.redis.pipeline();
      for (const s of byStream.values()) void runScript(pipe, this.o.forwardScript, s.keys, s.args);
      const res = (await pipe.exec()) ?? [];
      for (const [err] of res) if (err) throw err;
    }
    for (const [outcome, n] of Object.entries(counts)) if (n) this.outcomes.inc({ stage: this.o.name, outcome }, n);
  }
}

function decode(raw: RawEntry): StreamEvent | Error {
  if (!raw.fields) return new Error('entry was trimmed from the stream before it was processed');
  const map = fieldsToMap(raw.fields);
  const tx = map.get(F_TX);
  const ev = map.get(F_EVENT);
  if (!tx || !ev) return new Error(`entry lacks the ${tx ? F_EVENT : F_TX} field`);
  let event: TransactionEvent;
  try {
    event = JSON.parse(ev) as TransactionEvent;
  } catch {
    return new Error('entry body is not JSON');
  }
  return {
    entryId: raw.id,
    stream: raw.stream,
    partition: raw.partition,
    lane: raw.lane,
    txId: tx,
    event,
    traceparent: map.get(F_TRACE),
    deliveries: Math.max(1, raw.deliveries),
  };
}

/** A dead letter keeps the event and everything needed to understand and redrive it. */
export function deadLetterFields(stage: string, raw: RawEntry, error: Error, now: number): string[] {
  const map = raw.fields ? fieldsToMap(raw.fields) : new Map<string, string>();
  const fields = [
    F_TX, map.get(F_TX) ?? '',
    F_EVENT, map.get(F_EVENT) ?? '',
    'error', error.name || 'Error',
    'message', error.message.slice(0, 2_000),
    'stage', stage,
    'attempts', String(Math.max(1, raw.deliveries)),
    'origin_stream', raw.stream,
    'origin_id', raw.id,
    'first_failed_at', String(now),
    'last_failed_at', String(now),
  ];
  const tp = map.get(F_TRACE);
  if (tp) fields.push(F_TRACE, tp);
  return fields;
}
