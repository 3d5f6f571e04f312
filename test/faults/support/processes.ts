// Processes a fault scenario starts: rill workers it kills and restarts, and free ports for the
// servers it runs. Everything started here is killed by `killAll()` (the test's after hook), by
// its own pid, never by name.
import { createServer } from 'node:net';
import { spawnRill } from '../../helpers/rill-process.ts';
import type { RillProcess } from '../../helpers/rill-process.ts';

/** A TCP port nobody listens on right now (the OS picks it). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

export interface Started {
  name: string;
  proc: RillProcess;
}

/** The rill processes of one scenario. */
export class Fleet {
  readonly started: Started[] = [];

  constructor(private readonly vars: Record<string, string>) {}

  /** `rill <args>` with the scenario's environment plus `extra`. */
  spawn(name: string, args: string[], extra: Record<string, string> = {}): RillProcess {
    const proc = spawnRill(args, { ...this.vars, ...extra });
    this.started.push({ name, proc });
    return proc;
  }

  /** `rill worker --consumer <consumer>`. */
  worker(consumer: string, extra: Record<string, string> = {}, args: string[] = []): RillProcess {
    return this.spawn(`worker ${consumer}`, ['worker', '--consumer', consumer, ...args], extra);
  }

  alive(): Started[] {
    return this.started.filter((s) => s.proc.child.exitCode === null && s.proc.child.signalCode === null);
  }

  /** Each process's output for a failure message: a crash's stack when there is one, else its last lines. */
  tails(lines = 15): string {
    return this.started
      .map((s, i) => {
        const all = s.proc.output().trim().split('\n');
        const crash = all.findIndex((l) => /^(node:internal|node:events|\w*Error\b)|Unhandled/.test(l));
        const shown = crash >= 0 ? all.slice(crash, crash + lines) : all.slice(-lines);
        const text = shown.map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l)).join('\n');
        return `--- #${i} ${s.name} (pid ${s.proc.child.pid}, exit ${s.proc.child.exitCode ?? s.proc.child.signalCode ?? 'running'})\n${text}`;
      })
      .join('\n');
  }

  async killAll(): Promise<void> {
    await Promise.all(
      this.alive().map(async (s) => {
        // a stopped (SIGSTOP) process must be continued to act on anything but SIGKILL
        s.proc.child.kill('SIGCONT');
        await s.proc.kill('SIGKILL');
      }),
    );
  }
}

/** One metric's value from a Prometheus text exposition (sum over label sets matching `labels`). */
export async function scrape(port: number, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name || (labels && !(m[2] ?? '').includes(labels))) continue;
    sum += Number(m[3]);
    seen = true;
  }
  if (!seen) throw new Error(`metric ${name}${labels} not exposed on :${port}`);
  return sum;
}

/** How a process ended, or 'running' when it had not within `ms` (the timer does not outlive the answer). */
export async function exitWithin(proc: RillProcess, ms: number): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => (timer = setTimeout(resolve, ms, 'running')));
  try {
    return await Promise.race([proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The instance's cleanup, bounded: when it fails (its Redis or Postgres is the one the scenario
 * killed), its connections are still closed, so a failed scenario ends instead of hanging.
 */
export async function cleanupInstance(
  inst: { cleanup(): Promise<void>; redis: { disconnect(): void }; pool: { end(): Promise<void> } } | undefined,
): Promise<void> {
  if (!inst) return;
  try {
    await inst.cleanup();
  } catch {
    inst.redis.disconnect();
    await inst.pool.end().catch(() => undefined);
  }
}
