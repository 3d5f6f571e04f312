// A progress line for long work: redrawn in place on a terminal, one line a second otherwise.
export class Progress {
  private lastLine = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(
    private readonly label: string,
    private readonly total: number,
  ) {}

  update(done: number, extra = ''): void {
    const now = Date.now();
    const finished = done >= this.total;
    if (!this.tty && !finished && now - this.lastLine < 1_000) return;
    this.lastLine = now;
    const width = 30;
    const filled = this.total ? Math.round((Math.min(done, this.total) / this.total) * width) : width;
    const line = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${this.total}${extra ? ` ${extra}` : ''}`;
    process.stderr.write(this.tty ? `\r${line}${finished ? '\n' : ''}` : `${line}\n`);
  }
}
