// A fault-injecting stand-in for one simulated process's ioredis connection: the real client (one
// real connection to the real Redis, made like a worker's; a seed's processes never run at the
// same time, seeds side by side only share it) behind a Proxy that, per call, asks the seed's
// FaultInjector whether the command or pipeline fails before it is sent, after it took effect,
// partly, twice, or kills the process.
// It also watches replies, for the trace and for two clocks Redis keeps on its own:
//  - delivery times: XAUTOCLAIM compares an entry's idle time (Redis's clock) with the visibility
//    timeout (the fake clock's). Before an XAUTOCLAIM, each pending entry is given its fake-clock
//    idle time in Redis if that is past the timeout, else 0 (XCLAIM ... IDLE ... JUSTID to its
//    owner: nothing else changes), so real time never decides what is reclaimed.
//  - lease keys: redis-semaphore takes a lease with SET NX PX (real milliseconds); the proxy
//    stretches that to an hour, and the driver expires leases nobody refreshes any more (their
//    process died, or never learnt it got them) by the fake clock (LeaseWatch in world.ts).
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { FakeClock, Trace } from './clock.ts';
import { CrashError, InjectedFault } from './faults.ts';
import type { FaultInjector } from './faults.ts';

export interface ProcessHandle {
  readonly label: string;
  readonly dead: boolean;
  die(reason: string): void;
}

export interface RedisBoundary {
  /** The one real connection. */
  real: Redis;
  clock: FakeClock;
  faults: FaultInjector;
  trace: Trace;
  deliveries: Deliveries;
  onLeaseAcquired(key: string, identifier: string, proc: ProcessHandle): void;
}

/** When (fake time) each entry still pending (as far as the replies tell) was last delivered, per stream and group. */
export class Deliveries {
  private readonly at = new Map<string, Map<string, number>>();
  /** Real time the seed started: past half a visibility timeout of it, real idle times could matter. */
  readonly realStart = performance.now();

  private of(stream: string, group: string): Map<string, number> {
    const k = `${stream}\u0000${group}`;
    let m = this.at.get(k);
    if (!m) this.at.set(k, (m = new Map()));
    return m;
  }

  delivered(stream: string, group: string, id: string, now: number): void {
    this.of(stream, group).set(id, now);
  }

  acked(stream: string, group: string, ids: readonly string[]): void {
    const m = this.of(stream, group);
    for (const id of ids) m.delete(id);
  }

  deliveredAt(stream: string, group: string, id: string): number | undefined {
    return this.of(stream, group).get(id);
  }

  /** The earliest delivery time among entries that may still be pending, or undefined. */
  oldest(stream: string, group: string): number | undefined {
    let t: number | undefined;
    for (const v of this.of(stream, group).values()) if (t === undefined || v < t) t = v;
    return t;
  }
}

// not commands: run on the real client as they are
const PASSTHROUGH = new Set([
  'defineCommand',
  'on',
  'once',
  'off',
  'addListener',
  'removeListener',
  'removeAllListeners',
  'emit',
  'listeners',
  'listenerCount',
  'duplicate',
  'disconnect',
  'quit',
  'connect',
  'end',
  'sendCommand',
  'createBuiltinCommand',
  'getBuiltinCommands',
]);
// redis-semaphore's refresh (on its own timer) and release scripts: never faulted, so a timer that
// fires in real time cannot shift the seed's fault stream
const EXEMPT = new Set(['evalsha', 'eval']);

type Call = [name: string, args: unknown[]];
type PipelineResult = [Error | null, unknown][];

export function txOf(fields: readonly string[] | null | undefined): string {
  if (!fields) return '(trimmed)';
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'tx') return fields[i + 1]!;
  return '(no tx)';
}

// a connection's own events: each simulated process has its own (the real connection is shared);
// a resend fault plays the reconnect that causes it
const CONNECTION_EVENTS = new Set(['close', 'reconnecting', 'connect', 'ready', 'end']);
const LISTENER_METHODS = new Set(['on', 'once', 'off', 'addListener', 'prependListener', 'removeListener']);

export function faultyRedis(b: RedisBoundary, proc: ProcessHandle): Redis {
  const events = new EventEmitter();
  const reconnect = () => {
    for (const e of ['close', 'reconnecting', 'connect', 'ready']) events.emit(e);
  };
  const proxy: Redis = new Proxy(b.real, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof prop !== 'string' || typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop === 'pipeline') return () => faultyBatch(b, proc, target.pipeline(), 'pipeline', reconnect);
      if (prop === 'multi') return () => faultyBatch(b, proc, target.multi(), 'multi', reconnect);
      if (LISTENER_METHODS.has(prop)) {
        return (event: string, listener: (...a: unknown[]) => void) => {
          if (CONNECTION_EVENTS.has(event)) (events as unknown as Record<string, (e: string, l: typeof listener) => unknown>)[prop]!(event, listener);
          else fn.call(target, event, listener);
          return proxy;
        };
      }
      if (PASSTHROUGH.has(prop)) return fn.bind(target);
      return (...args: unknown[]) => command(b, proc, prop, args, () => fn.apply(target, args) as Promise<unknown>, reconnect);
    },
  });
  return proxy;
}

async function command(
  b: RedisBoundary,
  proc: ProcessHandle,
  name: string,
  args: unknown[],
  send: () => Promise<unknown>,
  reconnect: () => void,
): Promise<unknown> {
  const exempt = EXEMPT.has(name);
  if (proc.dead) {
    if (exempt) return 0; // a dead process's lease timers: nothing reaches Redis
    throw new CrashError(`${proc.label} is dead`);
  }
  const fault = exempt ? undefined : b.faults.redis(proc.label, name, { partial: false, resend: resends(b) });
  if (name === 'xautoclaim') await syncIdle(b, [[name, args]]);
  if (fault === 'before') throw new InjectedFault(`injected: ${name} failed before it was sent`);
  if (fault === 'crash-before') return crash(proc, `${name} (before it was sent)`);
  let reply = await send();
  observe(b, proc, name, args, reply);
  if (name === 'set' && reply === 'OK' && String(args[0]).startsWith('mutex:')) {
    // a lease expires by the fake clock (LeaseWatch), never by Redis's, however long the seed runs
    await b.real.pexpire(String(args[0]), 3_600_000);
  }
  if (fault === 'resend') {
    reconnect();
    reply = await send();
    observe(b, proc, name, args, reply);
  }
  if (fault === 'after') throw new InjectedFault(`injected: ${name} took effect, its reply was lost`);
  if (fault === 'crash-after') return crash(proc, `${name} (after it took effect)`);
  return reply;
}

function crash(proc: ProcessHandle, where: string): never {
  proc.die(`died at ${where}`);
  throw new CrashError(`${proc.label} died at ${where}`);
}

function summary(calls: readonly Call[]): string {
  const counts = new Map<string, number>();
  for (const [name] of calls) counts.set(name, (counts.get(name) ?? 0) + 1);
  return [...counts].map(([n, c]) => (c > 1 ? `${n}×${c}` : n)).join(',');
}

function faultyBatch(
  b: RedisBoundary,
  proc: ProcessHandle,
  realBatch: ReturnType<Redis['pipeline']>,
  kind: 'pipeline' | 'multi',
  reconnect: () => void,
): unknown {
  const calls: Call[] = [];
  const replay = (list: readonly Call[]) => {
    const p = kind === 'multi' ? b.real.multi() : b.real.pipeline();
    for (const [name, args] of list) (p as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!(...args);
    return p;
  };
  const observeAll = (list: readonly Call[], res: PipelineResult | null) => {
    (res ?? []).forEach(([err, value], i) => {
      if (!err && list[i]) observe(b, proc, list[i][0], list[i][1], value);
    });
  };
  const exec = async (): Promise<PipelineResult | null> => {
    if (proc.dead) throw new CrashError(`${proc.label} is dead`);
    const fault = b.faults.redis(proc.label, () => `${kind}[${summary(calls)}]`, { partial: kind === 'pipeline' && calls.length > 1, resend: resends(b) });
    const what = fault ? `${kind}[${summary(calls)}]` : '';
    await syncIdle(b, calls);
    if (fault === 'before') throw new InjectedFault(`injected: ${what} failed before it was sent`);
    if (fault === 'crash-before') return crash(proc, `${what} (before it was sent)`);
    if (fault === 'partial') {
      // the connection broke after the first k replies: ioredis fails the rest of the pipeline,
      // whose commands Redis may or may not have run
      const k = b.faults.cut(calls.length);
      const tailRan = b.faults.coin();
      reconnect();
      const res = ((await (tailRan ? realBatch : replay(calls.slice(0, k))).exec()) ?? []) as PipelineResult;
      observeAll(calls, res);
      b.trace.add(`  ${kind}: ${k} of ${calls.length} replies arrived; the rest failed, ${tailRan ? 'after they took effect' : 'unsent'}`);
      return [
        ...res.slice(0, k),
        ...calls.slice(k).map(([name]): [Error, unknown] => [new InjectedFault(`injected: ${name} in a pipeline failed`), undefined]),
      ];
    }
    let res = (await realBatch.exec()) as PipelineResult | null;
    observeAll(calls, res);
    if (fault === 'resend') {
      reconnect();
      res = (await replay(calls).exec()) as PipelineResult | null;
      observeAll(calls, res);
    }
    if (fault === 'after') throw new InjectedFault(`injected: ${what} took effect, its reply was lost`);
    if (fault === 'crash-after') return crash(proc, `${what} (after it took effect)`);
    return res;
  };
  const proxy: unknown = new Proxy(realBatch, {
    get(target, prop) {
      if (prop === 'exec') return exec;
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof prop !== 'string' || typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        calls.push([prop, args]);
        const r = fn.apply(target, args);
        return r === target ? proxy : r;
      };
    },
  });
  return proxy;
}

/**
 * Whether a lost reply makes ioredis send the command again (autoResendUnfulfilledCommands, on by
 * default): then "resend" faults happen, as they would on a connection made like this one.
 */
function resends(b: RedisBoundary): boolean {
  return (b.real.options as { autoResendUnfulfilledCommands?: boolean }).autoResendUnfulfilledCommands !== false;
}

/** Give entries idle past an XAUTOCLAIM's min-idle in fake time that idle time in Redis. */
async function syncIdle(b: RedisBoundary, calls: readonly Call[]): Promise<void> {
  const wanted: { stream: string; group: string; minIdle: number }[] = [];
  const now = b.clock.now();
  const longRun = performance.now() - b.deliveries.realStart;
  for (const [name, args] of calls) {
    const minIdle = Number(args[3]);
    if (name !== 'xautoclaim' || minIdle <= 0) continue;
    const stream = String(args[0]);
    const group = String(args[1]);
    // nothing pending long enough in fake time, and too little real time for Redis to think so: as is
    const oldest = b.deliveries.oldest(stream, group);
    if ((oldest === undefined || now - oldest < minIdle) && longRun < minIdle / 2) continue;
    wanted.push({ stream, group, minIdle });
  }
  if (!wanted.length) return;
  const read = b.real.pipeline();
  for (const w of wanted) read.xpending(w.stream, w.group, '-', '+', 100_000);
  const pending = ((await read.exec()) ?? []) as PipelineResult;
  const write = b.real.pipeline();
  let n = 0;
  pending.forEach(([err, value], i) => {
    if (err) return; // no such stream or group: nothing to claim
    const w = wanted[i]!;
    for (const [id, consumer, realIdle] of value as [string, string, number, number][]) {
      const at = b.deliveries.deliveredAt(w.stream, w.group, id);
      const idle = at === undefined ? 0 : now - at;
      // idle enough in fake time: that idle time; not yet: none (however long the seed ran for real)
      const want = idle >= w.minIdle ? idle : 0;
      if (want !== 0 || realIdle > 0) {
        write.xclaim(w.stream, w.group, consumer, 0, id, 'IDLE', want, 'JUSTID');
        n++;
      }
    }
  });
  if (n) await write.exec();
}

function observe(b: RedisBoundary, proc: ProcessHandle, name: string, args: readonly unknown[], reply: unknown): void {
  const now = b.clock.now();
  if (name === 'xreadgroup') {
    const g = args.indexOf('GROUP');
    const group = String(args[g + 1]);
    const txs: string[] = [];
    for (const [stream, entries] of (reply as [string, [string, string[] | null][]][] | null) ?? []) {
      for (const [id, fields] of entries) {
        b.deliveries.delivered(stream, group, id, now);
        txs.push(txOf(fields));
      }
    }
    if (txs.length) b.trace.add(`${proc.label} read ${txs.join(' ')}`);
  } else if (name === 'xautoclaim') {
    const [stream, group, , minIdle] = args.map(String);
    const justId = args.includes('JUSTID');
    const entries = ((reply as [string, unknown[]])?.[1] ?? []) as (string | [string, string[] | null])[];
    const txs: string[] = [];
    for (const e of entries) {
      const id = justId ? (e as string) : (e as [string, string[] | null])[0];
      b.deliveries.delivered(stream!, group!, id, now);
      txs.push(justId ? id.replace(/^\d+-/, '#') : txOf((e as [string, string[] | null])[1]));
    }
    if (txs.length)
      b.trace.add(`${proc.label} claimed (min idle ${minIdle} ms${justId ? ', ids only' : ''}) ${justId ? `${txs.length} entries` : txs.join(' ')}`);
  } else if (name === 'xack') {
    b.deliveries.acked(String(args[0]), String(args[1]), args.slice(2).map(String));
  } else if (name === 'settle') {
    // settle-var.lua: numkeys, keys (input first), group or member, kind, first output key, then per
    // entry: id, mode, outputs, and per output: op, nkeys, key indexes, nargs, args
    const numKeys = Number(args[0]);
    const argv = args.slice(1 + numKeys).map(String);
    if (argv[1] !== 's') return; // a parked queue: no stream delivery to account for
    const ids: string[] = [];
    for (let i = 3; i < argv.length; ) {
      ids.push(argv[i]!);
      const outputs = Number(argv[i + 2]);
      i += 3;
      for (let o = 0; o < outputs; o++) {
        const nkeys = Number(argv[i + 1]);
        i += 2 + nkeys;
        i += 1 + Number(argv[i]);
      }
    }
    // a call stopped at a parking cap acknowledged only its first entries
    const stop = Array.isArray(reply) ? Number(reply[1]) : 0;
    b.deliveries.acked(String(args[1]), argv[0]!, stop > 0 ? ids.slice(0, stop - 1) : ids);
  } else if (name === 'set' && reply === 'OK' && args.includes('NX') && String(args[0]).startsWith('mutex:')) {
    b.onLeaseAcquired(String(args[0]), String(args[1]), proc);
  }
}
