// Collects how each entry of a batch is settled, grouped by input (a stream: one partition and
// lane; or an ordered stage's parked queue), and runs one settle script per input, all in one
// pipeline: one round trip per batch (on Redis Cluster one pipeline per node, concurrently: each
// script's keys share its partition's slot).
import type { Redis } from 'ioredis';
import { runScript } from '../redis.ts';
import { slotPipeline } from '../slot-pipeline.ts';
import type { ScriptSource } from '../redis.ts';
import { coreScript } from '../scripts.ts';
import type { RawEntry } from './lane-reader.ts';

/** The one script every settlement runs (stages and sinks alike); owned here, looked up once. */
const SETTLE_SCRIPT: ScriptSource = coreScript('settle');

export type Output =
  /** XADD `fields` to `key`. */
  | { op: 'xadd'; key: string; fields: readonly string[] }
  /** ZADD `member` with `score` to `key`. */
  | { op: 'zadd'; key: string; score: number; member: string }
  /** HSET `field` `value` on `key`. */
  | { op: 'hset'; key: string; field: string; value: string }
  /** HDEL `field` from `key`. */
  | { op: 'hdel'; key: string; field: string }
  /**
   * Park `item` at the tail of `queue` (its merchant's parked events in one lane). When it becomes
   * the head it is due at `due`, and wakes early when `token` is signalled. Refused (and the rest
   * of the input left for later) past the caps.
   */
  | {
      op: 'park';
      queue: string;
      index: string;
      count: string;
      waiters: string;
      member: string;
      item: string;
      due: number;
      maxPerQueue: number;
      maxPerPartition: number;
      token?: string;
    }
  /** The input queue's head stays parked as `item`, due at `due` (or when `token` is signalled). */
  | { op: 'rewrite'; index: string; waiters: string; item: string; due: number; token?: string }
  /** Whoever waits for `token` (in `waiters`) is due now. */
  | { op: 'wake'; waiters: string; index: string; token: string; now: number }
  /** PEXPIRE a decision record `ms` from now: once its input is acknowledged it lives only this long. */
  | { op: 'expire'; key: string; ms: number };

interface InputCall {
  keys: string[];
  args: (string | number)[];
  ids: string[];
  parks: boolean;
}

export interface SettleResult {
  /** Entries acknowledged by this exec. */
  settled: number;
  /** Inputs where a park hit a cap: the ids left unsettled there, in order. */
  stopped: { input: string; ids: string[] }[];
}

export class Settlement {
  private readonly calls = new Map<string, InputCall>();

  constructor(private readonly group: string) {}

  get size(): number {
    return this.calls.size;
  }

  /**
   * Acknowledge `raw` (from its stream, or from its parked queue) and, if this acknowledges it,
   * write `outputs`. `keep`: a parked head that stays parked (outputs rewrite it). `group`: the
   * stream's consumer group, when not this settlement's (a chain's intermediate topic).
   */
  add(raw: Pick<RawEntry, 'stream' | 'id' | 'parked'>, outputs: readonly Output[], keep = false, group = this.group): void {
    const input = raw.parked ? raw.parked.queue : raw.stream;
    let call = this.calls.get(input);
    if (!call) {
      call = raw.parked
        ? { keys: [input, raw.parked.index, raw.parked.taken, raw.parked.count], args: [raw.parked.member, 'q', 5], ids: [], parks: false }
        : { keys: [input], args: [group, 's', 2], ids: [], parks: false };
      this.calls.set(input, call);
    }
    call.ids.push(raw.id);
    call.args.push(raw.id, keep ? 'k' : 'a', outputs.length);
    const at = (k: string): number => {
      let i = call.keys.indexOf(k);
      if (i < 0) i = call.keys.push(k) - 1;
      return i + 1;
    };
    // each output goes on the wire as settle-var.lua's one-letter op code (its header lists them)
    for (const out of outputs) {
      switch (out.op) {
        case 'xadd':
          call.args.push('x', 1, at(out.key), out.fields.length, ...out.fields);
          break;
        case 'zadd':
          call.args.push('z', 1, at(out.key), 2, out.score, out.member);
          break;
        case 'hset':
          call.args.push('h', 1, at(out.key), 2, out.field, out.value);
          break;
        case 'hdel':
          call.args.push('d', 1, at(out.key), 1, out.field);
          break;
        case 'park':
          call.parks = true;
          call.args.push(
            'p',
            4,
            at(out.queue),
            at(out.index),
            at(out.count),
            at(out.waiters),
            6,
            out.member,
            out.item,
            out.due,
            out.maxPerQueue,
            out.maxPerPartition,
            out.token ?? '',
          );
          break;
        case 'rewrite':
          call.parks = true;
          call.args.push('r', 2, at(out.index), at(out.waiters), 3, out.item, out.due, out.token ?? '');
          break;
        case 'wake':
          call.args.push('w', 2, at(out.waiters), at(out.index), 2, out.token, out.now);
          break;
        case 'expire':
          call.args.push('e', 1, at(out.key), 1, out.ms);
          break;
      }
    }
  }

  /** Runs every call: those that park first, so a wake in the same batch finds its waiter. */
  async exec(redis: Redis): Promise<SettleResult> {
    if (!this.calls.size) return { settled: 0, stopped: [] };
    const calls = [...this.calls.entries()].sort((a, b) => Number(b[1].parks) - Number(a[1].parks));
    const pipe = slotPipeline(redis);
    for (const [, c] of calls) pipe.add(c.keys[0]!, (p) => void runScript(p, SETTLE_SCRIPT, c.keys, c.args));
    const res = await pipe.exec();
    let settled = 0;
    const stopped: SettleResult['stopped'] = [];
    res.forEach(([err, v], k) => {
      if (err) throw err;
      const [n, stop] = v as [number, number];
      settled += Number(n);
      if (Number(stop) > 0) {
        const [input, call] = calls[k]!;
        stopped.push({ input, ids: call.ids.slice(Number(stop) - 1) });
      }
    });
    this.calls.clear();
    return { settled, stopped };
  }
}
