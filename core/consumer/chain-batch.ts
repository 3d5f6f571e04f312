// One batch through a task's stages: a single stage, or a chain of ordered stages whose events
// cross the intermediate topics in memory (core/topology/chains.ts). Each read entry is settled
// once (one settle script per input, one pipeline per batch) with everything its event produced on
// the way: the last stage's output, routes and emitted events of any stage, and where it stopped.
// A retry, wait or failure at stage k parks or dead-letters with stage k's name and policy, in the
// form stage k reads (as if the intermediate topic had been written); a merchant's later events of
// the batch park behind it at stage k. A parked head taken from stage k's queue enters at stage k.
import type { Keys } from '../keys.ts';
import type { Emitted, Outcome, Processor, StreamEvent } from '../processor.ts';
import { outcomeFromError } from '../processor.ts';
import type { StageConfig, Topology } from '../topology/schema.ts';
import type { TransactionEvent } from '../event.ts';
import { entryArgs, F_ATTEMPTS, F_EVENT, F_FIRST_FAILED, F_TRACE, F_TX, fieldsToMap } from '../entry.ts';
import type { LaneMap } from '../lanes.ts';
import { backoffMs } from '../retry.ts';
import { FatalError, RetryableError } from '../errors.ts';
import { faultPoint } from '../faults.ts';
import { endSpan, startEventSpan, traceIdOf, traceparentOf, tracingEnabled } from '../tracing.ts';
import type { Span } from '../tracing.ts';
import type { RawEntry } from './lane-reader.ts';
import type { Parking } from './parking.ts';
import type { Output, Settlement } from './settlement.ts';
import { deadLetterOutputs } from '../dead-letter/record.ts';

/** How long a waiting event (a refund for its payin) may sleep before it is looked at again. */
const WAIT_RECHECK_MS = 5_000;

/** One stage of a task, as the batch needs it. */
export interface TaskStage {
  name: string;
  config: StageConfig;
  processor: Processor;
  /** ordering: key stages: this stage's parked queues (mirror). */
  parking?: Parking;
  /** ordering: none: a retry waits in the delay set; the runner moves it back when due. */
  onDelayed?: (dueAt: number) => void;
}

export interface BatchContext {
  stages: readonly TaskStage[];
  topology: Topology;
  keys: Keys;
  lanes: LaneMap;
  laneIndex: ReadonlyMap<string, number>;
  now: number;
  random?: () => number;
}

/** What the runner does after the settle: metrics, logs and the parking mirrors. */
export interface BatchResult {
  /** Per stage name: outcome → count. */
  counts: Map<string, Record<'ok' | 'retry' | 'dead_letter' | 'parked', number>>;
  /** Per stage index: parked queues settled in this batch (partition → members). */
  touched: Map<number, Set<string>>[];
  deadLettered: Record<string, unknown>[];
  spans: { span: Span | undefined; outcome: Outcome | undefined }[];
}

/** An entry's event on its way through the stages. */
interface Item {
  /** Position of its entry in the batch. */
  i: number;
  raw: RawEntry;
  /** At the stage it was read for: `raw` (fields, stream, parked source) is this stage's input. */
  start: boolean;
  /** The event, once decoded or handed on by the stage before. */
  event?: TransactionEvent;
  lane: string;
  tp?: string;
  /** The entry as this stage reads it; built only when needed (parking, dead letters). */
  fields?: string[] | null;
}

/** The stage index an entry enters at (a parked head's stage, an intermediate topic's reader). */
export function levelOf(raw: RawEntry): number {
  return raw.level ?? 0;
}

/**
 * Process `entries` through the stages and add each one's settlement to `settlement`. Throws (and
 * settles nothing) when a processor fails around its events rather than on them.
 */
export async function runBatch(ctx: BatchContext, entries: readonly RawEntry[], settlement: Settlement): Promise<BatchResult> {
  const n = ctx.stages.length;
  const outputs: Output[][] = entries.map(() => []);
  /** 'k': a parked head that stays parked; 's': skipped (behind a head that stays parked), not settled. */
  const mode: ('a' | 'k' | 's')[] = entries.map(() => 'a');
  const result: BatchResult = { counts: new Map(), touched: ctx.stages.map(() => new Map()), deadLettered: [], spans: [] };
  let carried: Item[] = [];
  for (let k = 0; k < n; k++) {
    const items: Item[] = [];
    entries.forEach((raw, i) => {
      if (levelOf(raw) === k) items.push({ i, raw, start: true, lane: raw.lane });
    });
    if (carried.length) {
      items.push(...carried);
      items.sort((a, b) => a.i - b.i);
    }
    carried = items.length ? await runStage(ctx, k, items, outputs, mode, result) : [];
    if (carried.length) faultPoint('chain-between-stages');
  }
  entries.forEach((raw, i) => {
    if (mode[i] !== 's') settlement.add(raw, outputs[i]!, mode[i] === 'k', ctx.stages[raw.parked ? 0 : levelOf(raw)]!.name);
  });
  return result;
}

/** Stage k over its items: process, then decide each one; returns the items handed to stage k + 1. */
async function runStage(ctx: BatchContext, k: number, items: Item[], outputs: Output[][], mode: ('a' | 'k' | 's')[], result: BatchResult): Promise<Item[]> {
  const stage = ctx.stages[k]!;
  const parking = stage.parking;
  const attempts = stage.config.retry.attempts;
  const outcomes: (Outcome | undefined)[] = new Array(items.length);
  const members: (string | undefined)[] = new Array(items.length);
  const events: StreamEvent[] = [];
  const slots: number[] = [];
  items.forEach((item, j) => {
    const decoded = toStreamEvent(ctx, stage, item);
    if (decoded instanceof Error) {
      outcomes[j] = { kind: 'fatal', error: decoded };
      return;
    }
    item.event = decoded.event;
    item.tp = decoded.traceparent;
    members[j] = memberOf(item.lane, decoded.event);
    // a merchant with parked events of this lane at this stage: this one waits behind them, untried
    if (parking && !parkedHere(item) && parking.isParked(item.raw.partition, members[j]!)) return;
    const attempt = attemptOf(item);
    if (attempt > attempts) {
      // poison-pill guard: delivered more often than the stage may try it (e.g. it crashes workers)
      outcomes[j] = { kind: 'fatal', error: new Error(`delivered ${attempt} times (attempts: ${attempts})`) };
      return;
    }
    events.push(decoded);
    slots.push(j);
  });
  if (events.length) {
    let results: Outcome[];
    try {
      results = await stage.processor.process(events);
      if (results.length !== events.length) throw new Error(`processor returned ${results.length} outcomes for ${events.length} events`);
    } catch (err) {
      // not a verdict on the events but a failure around them (Redis or Postgres went away
      // mid-call; its effects may have happened): the runner leaves the batch pending and reads it
      // again after the loop's backoff; the processors' effects are idempotent by tx id
      if (!(err instanceof RetryableError) && !(err instanceof FatalError)) throw err;
      const o = outcomeFromError<TransactionEvent>(err);
      results = events.map(() => o);
    }
    results.forEach((r, j) => (outcomes[slots[j]!] = r));
  }

  const counts = { ok: 0, retry: 0, dead_letter: 0, parked: 0 };
  const now = ctx.now;
  const retry = stage.config.retry;
  const next = ctx.stages[k + 1];
  /** Parked queues whose head stays parked in this batch: their later items stay untouched. */
  const stuck = new Set<string>();
  const touched = result.touched[k]!;
  const forward: Item[] = [];
  items.forEach((item, j) => {
    const { raw, i } = item;
    const member = members[j];
    const outcome = outcomes[j];
    const here = parkedHere(item);
    const span = tracingEnabled() ? spanFor(stage.name, item) : undefined;
    if (span) result.spans.push({ span, outcome });
    if (here) {
      if (stuck.has(raw.parked!.queue)) {
        mode[i] = 's';
        return;
      }
      touched.get(raw.partition)?.add(raw.parked!.member) ?? touched.set(raw.partition, new Set([raw.parked!.member]));
    }
    const add = (...outs: Output[]) => outputs[i]!.push(...outs);
    if (parking && member !== undefined && !here && (!outcome || parking.isParked(raw.partition, member))) {
      // behind its merchant's parked events (parked before, or earlier in this batch): tried later, in order
      counts.parked++;
      const view = viewOf(ctx, stage, item);
      add(parking.park(view, member, view.fields!, 0));
      return;
    }
    if (!outcome) return;
    const attempt = attemptOf(item);
    if (outcome.kind === 'retry' && (outcome.wait || outcome.deferred || attempt < retry.attempts)) {
      counts.retry++;
      const free = Boolean(outcome.wait || outcome.deferred); // a wait costs no attempt
      const dueAt = outcome.wait ? Math.min(outcome.wait.until, now + WAIT_RECHECK_MS) : now + backoffMs(free ? 1 : attempt, retry, ctx.random);
      const view = viewOf(ctx, stage, item);
      const fields = retryFields(view, free ? attempt - 1 : attempt, now);
      if (parking && member !== undefined) {
        const token = outcome.wait?.token;
        if (here) {
          stuck.add(raw.parked!.queue);
          mode[i] = 'k';
          add(
            ...parking.unwait(raw.partition, raw.parked!.token !== token ? raw.parked!.token : undefined),
            parking.rewrite(raw, member, fields, dueAt, token),
          );
        } else {
          add(parking.park(view, member, fields, dueAt, token));
        }
      } else {
        add(delayed(ctx, stage, view, fields, dueAt));
        stage.onDelayed?.(dueAt);
      }
      return;
    }
    if (here) add(...parking!.unwait(raw.partition, raw.parked!.token));
    if (outcome.kind === 'ok') {
      counts.ok++;
      const tp = traceparentOf(span) ?? item.tp;
      for (const e of outcome.emit ?? []) add(emitted(ctx, stage.name, raw.partition, e, tp));
      if (parking && outcome.signals?.length) add(...parking.wake(raw.partition, outcome.signals, now));
      for (const r of outcome.records ?? []) add({ op: 'expire', key: r.key, ms: r.ttlMs });
      const routes = stage.config.routes;
      const routed = routes ? routes.to[String((outcome.event as unknown as Record<string, unknown>)[routes.by])] : undefined;
      const topic = routed ?? stage.config.output;
      if (next && topic === next.config.input) {
        // chained: the next stage reads it from memory, in this batch
        forward.push({ i, raw, start: false, event: outcome.event, lane: ctx.lanes.laneOf(outcome.event.type), tp });
      } else {
        add({
          op: 'x',
          key: ctx.keys.lane(topic, raw.partition, ctx.lanes.laneOf(outcome.event.type)),
          fields: entryArgs({ tx: outcome.event.id, ev: JSON.stringify(outcome.event), tp }),
        });
      }
      return;
    }
    counts.dead_letter++;
    const error =
      outcome.kind === 'retry' ? new Error(`${outcome.error.message} (gave up after ${attempt} attempts)`, { cause: outcome.error }) : outcome.error;
    if (outcome.kind === 'retry') error.name = outcome.error.name;
    const view = viewOf(ctx, stage, item);
    add(...deadLetterOutputs(ctx.keys, stage.name, view, error, now, attempt));
    const map = view.fields ? fieldsToMap(view.fields) : undefined;
    result.deadLettered.push({
      stage: stage.name,
      tx: map?.get(F_TX),
      trace_id: traceIdOf(map?.get(F_TRACE)),
      entry: raw.id,
      attempts: attempt,
      error: error.name,
      reason: error.message,
    });
  });
  result.counts.set(stage.name, counts);
  return forward;
}

/** The head of one of this stage's parked queues (taken to be tried again). */
function parkedHere(item: Item): boolean {
  return item.start && item.raw.parked !== undefined;
}

/** Attempts so far, this delivery included: earlier retries' count (at this stage) + deliveries. */
function attemptOf(item: Item): number {
  const deliveries = Math.max(1, item.raw.deliveries);
  if (!item.start || !item.raw.fields) return deliveries;
  return Number(fieldOf(item.raw.fields, F_ATTEMPTS) ?? 0) + deliveries;
}

/**
 * The entry as stage `stage` reads it: the read entry itself at its own stage; later in a chain,
 * the entry the stage before would have appended to the intermediate topic (same id as the read one).
 */
function viewOf(ctx: BatchContext, stage: TaskStage, item: Item): RawEntry {
  if (item.start) return item.raw;
  item.fields ??= entryArgs({ tx: item.event!.id, ev: JSON.stringify(item.event), tp: item.tp });
  return {
    stream: ctx.keys.lane(stage.config.input, item.raw.partition, item.lane),
    partition: item.raw.partition,
    lane: item.lane,
    id: item.raw.id,
    fields: item.fields,
    deliveries: item.raw.deliveries,
  };
}

function toStreamEvent(ctx: BatchContext, stage: TaskStage, item: Item): StreamEvent | Error {
  if (item.start) return decode(item.raw);
  const event = item.event!;
  return {
    entryId: item.raw.id,
    stream: ctx.keys.lane(stage.config.input, item.raw.partition, item.lane),
    partition: item.raw.partition,
    lane: item.lane,
    txId: event.id,
    event,
    traceparent: item.tp,
    deliveries: Math.max(1, item.raw.deliveries),
  };
}

function spanFor(stage: string, item: Item): Span | undefined {
  const tx = item.start ? (item.raw.fields ? fieldsToMap(item.raw.fields).get(F_TX) : undefined) : item.event?.id;
  return startEventSpan(`stage ${stage}`, item.tp, {
    'rill.stage': stage,
    'rill.tx_id': tx ?? '',
    'rill.partition': item.raw.partition,
    'rill.lane': item.lane,
  });
}

/** End the batch's spans once it is settled. */
export function endSpans(result: BatchResult): void {
  for (const { span, outcome } of result.spans) {
    span?.setAttribute('rill.outcome', outcome?.kind ?? 'parked');
    endSpan(span, !outcome || outcome.kind === 'ok' ? undefined : outcome.error);
  }
}

/** A processor's extra event, appended in the same partition (same script, same slot). */
function emitted(ctx: BatchContext, stage: string, partition: number, e: Emitted, traceparent?: string): Output {
  if (!ctx.topology.topics[e.topic]) throw new Error(`stage ${stage} emitted to undeclared topic "${e.topic}"`);
  return {
    op: 'x',
    key: ctx.keys.lane(e.topic, partition, ctx.lanes.laneOf(e.event.type)),
    fields: entryArgs({ tx: e.event.id, ev: JSON.stringify(e.event), tp: traceparent }),
  };
}

/** A retry (ordering none) waits in the delay set, keeping its attempts and first failure time. */
function delayed(ctx: BatchContext, stage: TaskStage, raw: RawEntry, fields: string[], dueAt: number): Output {
  const member = JSON.stringify({ l: ctx.laneIndex.get(raw.lane) ?? 1, f: fields, u: `${raw.stream}/${raw.id}` });
  return { op: 'z', key: ctx.keys.delay(stage.name, raw.partition), score: dueAt, member };
}

/** The parked entry's fields: the event as read, with its attempts so far and first failure time. */
function retryFields(raw: RawEntry, attempts: number, now: number): string[] {
  const map = fieldsToMap(raw.fields!);
  const fields = [F_TX, map.get(F_TX)!, F_EVENT, map.get(F_EVENT)!, F_ATTEMPTS, String(attempts), F_FIRST_FAILED, map.get(F_FIRST_FAILED) ?? String(now)];
  const tp = map.get(F_TRACE);
  if (tp) fields.push(F_TRACE, tp);
  return fields;
}

/** The parking member of an event: its merchant within its lane. */
function memberOf(lane: string, event: TransactionEvent): string {
  return `${lane}|${String(event.merchant_id)}`;
}

/** One field of an entry's field/value list (no Map: two or three fields per entry, every event). */
function fieldOf(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function decode(raw: RawEntry): StreamEvent | Error {
  if (!raw.fields) return new Error('entry was trimmed from the stream before it was processed');
  const tx = fieldOf(raw.fields, F_TX);
  const ev = fieldOf(raw.fields, F_EVENT);
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
    traceparent: fieldOf(raw.fields, F_TRACE),
    deliveries: Math.max(1, raw.deliveries),
  };
}
