// Progress of a run: a bar on a terminal (one line, redrawn), plain lines otherwise (CI logs).
// The run is split into phases with weights (their expected share of the wall time).
export class Progress {
  private done = 0;
  private phaseWeight = 0;
  private phaseFraction = 0;
  private phaseName = '';
  private detail = '';
  private lastDraw = 0;
  private lastLine = 0;
  private readonly tty: boolean;
  private readonly started = Date.now();

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
    tty?: boolean,
  ) {
    this.tty = tty ?? Boolean(out.isTTY);
  }

  /** Start a phase worth `weight` of the total. */
  phase(name: string, weight: number): void {
    this.done += this.phaseWeight;
    this.phaseWeight = weight;
    this.phaseFraction = 0;
    this.phaseName = name;
    this.detail = '';
    if (!this.tty) this.line(`▶ ${name}`);
    this.draw(true);
  }

  /** Where the current phase is (0..1) and what it is doing. */
  update(fraction: number, detail?: string): void {
    this.phaseFraction = Math.max(this.phaseFraction, Math.min(1, fraction));
    if (detail !== undefined) this.detail = detail;
    this.draw(false);
  }

  /** A message that stays (printed above the bar on a terminal). */
  say(message: string): void {
    if (this.tty) this.out.write(`\r\x1b[2K${message}\n`);
    else this.line(message);
    this.draw(true);
  }

  finish(): void {
    this.done = this.total;
    this.phaseWeight = 0;
    if (this.tty) this.out.write('\r\x1b[2K');
  }

  private get fraction(): number {
    return Math.min(1, (this.done + this.phaseWeight * this.phaseFraction) / Math.max(1e-9, this.total));
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (this.tty) {
      if (!force && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - 60));
      const filled = Math.round(this.fraction * width);
      const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
      const elapsed = `${Math.round((now - this.started) / 1000)}s`;
      const text = `${bar} ${String(Math.round(this.fraction * 100)).padStart(3)}% ${elapsed} ${this.phaseName}${this.detail ? `: ${this.detail}` : ''}`;
      this.out.write(`\r\x1b[2K${text.slice(0, (this.out.columns ?? 120) - 1)}`);
    } else if (!force && this.detail && now - this.lastLine > 5_000) {
      this.line(`  ${this.phaseName}: ${this.detail}`);
    }
  }

  private line(s: string): void {
    this.lastLine = Date.now();
    const pct = `${String(Math.round(this.fraction * 100)).padStart(3)}%`;
    this.out.write(`[bench ${pct} ${Math.round((Date.now() - this.started) / 1000)}s] ${s}\n`);
  }
}
