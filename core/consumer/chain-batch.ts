import type { Outcome, StreamEvent } from '../processor.ts';
import { outcomeFromError } from '../processor.ts';
import type { TransactionEvent } from '../event.ts';
import { entryArgs, F_TRACE, F_TX_ID, fieldOf } from '../entry.ts';
import { backoffMs } from '../retry.ts';
import { FatalError, RetryableError } from '../errors.ts';
import { faultPoint } from '../faults.ts';
import { traceIdOf, traceparentOf, tracingEnabled } from '../tracing.ts';
import type { RawEntry } from './lane-reader.ts';
import type { Output, Settlement } from './settlement.ts';
import { deadLetterOutputs } from '../dead-letter/record.ts';
import type { BatchContext, BatchResult, EntrySettle, Item, TaskStage } from './batch-types.ts';
import { decode } from './decode.ts';
import { emitted, memberOf } from './routing.ts';
import { attemptOf, delayed, retryFields } from './retry-schedule.ts';
import { spanFor } from './spans.ts';

/** How long a waiting event (a refund for its payin) may sleep before it is looked at again. */
const WAIT_RECHECK_MS = 5_000;

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
  const mode: EntrySettle[] = entries.map(() => 'ack');
  const result: BatchResult = { counts: new Map(), touched: ctx.stages.map(() => new Map()), deadLettered: [], spans: [] };
  let carried: Item[] = [];
  for (let k = 0; k < n; k++) {
    const items: Item[] = [];
    entries.forEach((raw, i) => {
      if (levelOf(raw) === k) items.push({ index: i, raw, start: true, lane: raw.lane });
    });
    if (carried.length) {
      items.push(...carried);
      items.sort((a, b) => a.index - b.index);
    }
    carried = items.length ? await runStage(ctx, k, items, outputs, mode, result) : [];
    if (carried.length) faultPoint('chain-between-stages');
  }
  entries.forEach((raw, i) => {
    if (mode[i] !== 'skip') settlement.add(raw, outputs[i]!, mode[i] === 'keep', ctx.stages[raw.parked ? 0 : levelOf(raw)]!.name);
  });
  return result;
}

/** Stage k over its items: process, then decide each one; returns the items handed to stage k + 1. */
async function runStage(ctx: BatchContext, k: number, items: Item[], outputs: Output[][], mode: EntrySettle[], result: BatchResult): Promise<Item[]> {
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
    item.traceparent = decoded.traceparent;
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
    const { raw, index } = item;
    const member = members[j];
    const outcome = outcomes[j];
    const here = parkedHere(item);
    const span = tracingEnabled() ? spanFor(stage.name, item) : undefined;
    if (span) result.spans.push({ span, outcome });
    if (here) {
      if (stuck.has(raw.parked!.queue)) {
        mode[index] = 'skip';
        return;
      }
      touched.get(raw.partition)?.add(raw.parked!.member) ?? touched.set(raw.partition, new Set([raw.parked!.member]));
    }
    const add = (...outs: Output[]) => outputs[index]!.push(...outs);
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
          mode[index] = 'keep';
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
      const traceparent = traceparentOf(span) ?? item.traceparent;
      for (const e of outcome.emit ?? []) add(emitted(ctx, stage.name, raw.partition, e, traceparent));
      if (parking && outcome.signals?.length) add(...parking.wake(raw.partition, outcome.signals, now));
      for (const r of outcome.records ?? []) add({ op: 'expire', key: r.key, ms: r.ttlMs });
      const routes = stage.config.routes;
      const routed = routes ? routes.to[String((outcome.event as unknown as Record<string, unknown>)[routes.by])] : undefined;
      const topic = routed ?? stage.config.output;
      if (next && topic === next.config.input) {
        // chained: the next stage reads it from memory, in this batch
        forward.push({ index, raw, start: false, event: outcome.event, lane: ctx.lanes.laneOf(outcome.event.type), traceparent });
      } else {
        add({
          op: 'xadd',
          key: ctx.keys.lane(topic, raw.partition, ctx.lanes.laneOf(outcome.event.type)),
          fields: entryArgs({ txId: outcome.event.id, event: JSON.stringify(outcome.event), traceparent }),
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
    result.deadLettered.push({
      stage: stage.name,
      tx: view.fields ? fieldOf(view.fields, F_TX_ID) : undefined,
      trace_id: traceIdOf(view.fields ? fieldOf(view.fields, F_TRACE) : undefined),
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

/**
 * The entry as stage `stage` reads it: the read entry itself at its own stage; later in a chain,
 * the entry the stage before would have appended to the intermediate topic (same id as the read one).
 */
function viewOf(ctx: BatchContext, stage: TaskStage, item: Item): RawEntry {
  if (item.start) return item.raw;
  item.fields ??= entryArgs({ txId: item.event!.id, event: JSON.stringify(item.event), traceparent: item.traceparent });
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
    traceparent: item.traceparent,
    deliveries: Math.max(1, item.raw.deliveries),
  };
}
