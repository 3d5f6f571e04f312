// The simulation's clock: every component gets `now` from here, and only the driver moves it.
// It starts on a fixed day (whose `transactions` partition the harness creates up front).
export const SIM_EPOCH = Date.UTC(2031, 0, 15, 10, 0, 0);

export class FakeClock {
  private t = SIM_EPOCH;
  readonly now = (): number => this.t;

  advance(ms: number): void {
    if (ms < 0) throw new Error(`the clock only moves forward (asked ${ms} ms)`);
    this.t += Math.floor(ms);
  }

  /** Milliseconds since the start of the seed, for the trace. */
  get elapsed(): number {
    return this.t - SIM_EPOCH;
  }

  reset(): void {
    this.t = SIM_EPOCH;
  }
}

/** What happened in one seed, in order, in fake time: printed when the seed fails (or on SIM_SEED). */
export class Trace {
  readonly lines: string[] = [];

  constructor(private readonly clock: FakeClock) {}

  add(msg: string): void {
    this.lines.push(`${String(this.clock.elapsed).padStart(8)}ms  ${msg}`);
  }
}
