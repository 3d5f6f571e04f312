// The fault schedule of one seed. Every call at the Redis and Postgres boundaries asks the
// injector (one draw from the seed's fault stream); with the seed's rates it answers "no fault",
// or how this call fails:
//   before        the command is not sent; the caller gets an error
//   after         the command is sent and takes effect; the caller gets an error (reply lost)
//   partial       (pipelines) the first k replies arrive, the rest fail (ioredis aborts a
//                 half-answered pipeline), their commands run or not
//   resend        the command takes effect twice, the caller sees the second reply (ioredis
//                 resends unanswered commands after a reconnect: autoResendUnfulfilledCommands,
//                 on by default and in connectRedis; only when the connection has it on)
//   crash-before  the process dies at this call, before it is sent
//   crash-after   the process dies at this call, after it took effect
// The driver adds crashes between steps and clock jumps ("delay").
import type { Random } from './prng.ts';
import type { Trace } from './clock.ts';

export type FaultKind =
  | 'redis-before'
  | 'redis-after'
  | 'redis-partial'
  | 'redis-resend'
  | 'redis-crash-before'
  | 'redis-crash-after'
  | 'pg-before'
  | 'pg-after'
  | 'pg-crash-before'
  | 'pg-crash-after'
  | 'crash'
  | 'restart'
  | 'delay';

export type BoundaryFault = 'before' | 'after' | 'partial' | 'resend' | 'crash-before' | 'crash-after';

/** An error the injector made up (a Redis or Postgres failure that did not really happen). */
export class InjectedFault extends Error {
  override name = 'InjectedFault';
}

/** The process this call belonged to died here. */
export class CrashError extends Error {
  override name = 'CrashError';
}

export interface FaultProfile {
  name: string;
  /** Chance that one Redis call (a command or a whole pipeline) fails. */
  redis: number;
  /** Chance that one Postgres call fails. */
  pg: number;
  /** Share of boundary faults that kill the process (crash-before / crash-after). */
  crashShare: number;
  /** Whether ioredis-style resends happen. */
  resend: boolean;
  /** About the chance per driver tick of a crash between steps. */
  crash: number;
  /** About the chance per driver tick of a clock jump. */
  delay: number;
}

/** A profile per seed: some seeds calm (the exact-outcome oracle applies), most with faults. */
export function chooseProfile(rng: Random): FaultProfile {
  const name = rng.weighted<string>([
    ['calm', 1],
    ['crashes', 2],
    ['redis', 3],
    ['postgres', 2],
    ['mixed', 4],
  ]);
  const p: FaultProfile = { name, redis: 0, pg: 0, crashShare: 0.25, resend: rng.chance(0.5), crash: 0, delay: 0 };
  if (name === 'calm') return p;
  p.delay = rng.pick([0, 0.02, 0.05]);
  if (name === 'crashes' || name === 'mixed') p.crash = rng.pick([0.01, 0.03, 0.06]);
  if (name === 'redis' || name === 'mixed') p.redis = rng.pick([0.005, 0.01, 0.02, 0.04]);
  if (name === 'postgres' || name === 'mixed') p.pg = rng.pick([0.03, 0.08, 0.15]);
  p.crashShare = rng.pick([0, 0.2, 0.4]);
  return p;
}

export class FaultInjector {
  /** Off while the driver drains the pipeline and checks the invariants. */
  enabled = false;
  readonly counts = new Map<FaultKind, number>();

  constructor(
    private readonly rng: Random,
    readonly profile: FaultProfile,
    private readonly trace: Trace,
  ) {}

  count(kind: FaultKind): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }

  /**
   * How this Redis call (one command, or one pipeline or MULTI) fails, if it does. `partial`: it is
   * a pipeline of several commands; `resend`: the connection resends unanswered commands.
   */
  redis(who: string, what: string | (() => string), opts: { partial: boolean; resend: boolean }): BoundaryFault | undefined {
    if (!this.enabled || !this.rng.chance(this.profile.redis)) return undefined;
    const kinds: [BoundaryFault, number][] = [
      ['before', 3],
      ['after', 3],
    ];
    if (opts.partial) kinds.push(['partial', 2]);
    if (opts.resend && this.profile.resend) kinds.push(['resend', 2]);
    const crash = this.profile.crashShare;
    if (crash > 0) kinds.push(['crash-before', 6 * crash], ['crash-after', 6 * crash]);
    const kind = this.rng.weighted(kinds);
    this.count(`redis-${kind}`);
    this.trace.add(`FAULT redis-${kind} at ${typeof what === 'string' ? what : what()} (${who})`);
    return kind;
  }

  /** Where a partly failing pipeline of `n` commands breaks: the first k in [1, n-1] take effect. */
  cut(n: number): number {
    return this.rng.int(1, Math.max(1, n - 1));
  }

  /** A fair coin from the fault stream (does a partly failed pipeline's tail take effect?). */
  coin(): boolean {
    return this.rng.chance(0.5);
  }

  /** How this Postgres call fails, if it does. `stream`: a COPY (no "after" for those). */
  pg(who: string, what: string, opts: { stream: boolean }): BoundaryFault | undefined {
    if (!this.enabled || !this.rng.chance(this.profile.pg)) return undefined;
    const kinds: [BoundaryFault, number][] = [['before', 3]];
    if (!opts.stream) kinds.push(['after', 3]);
    const crash = this.profile.crashShare;
    if (crash > 0) kinds.push(['crash-before', 6 * crash]);
    if (crash > 0 && !opts.stream) kinds.push(['crash-after', 6 * crash]);
    const kind = this.rng.weighted(kinds);
    this.count(`pg-${kind}` as FaultKind);
    this.trace.add(`FAULT pg-${kind} at ${what} (${who})`);
    return kind;
  }
}
