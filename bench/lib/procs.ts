// Child processes of a bench run: the `rill` CLI (ingest, worker, sink, keys, migrate), the load
// generator and the baselines. Every child is tracked and stopped when the run ends, also on
// Ctrl-C or a failure; only the processes this run started are ever signalled.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { RILL_BIN, ROOT, scriptArgs } from './paths.ts';

const OUTPUT_KEEP = 64 * 1024;

export interface CpuProfile {
  dir: string;
  /**
   * The process's own folder under `dir`: node writes one .cpuprofile per thread there when the
   * process exits (the main thread's is the big one; tsx's loader thread writes a small one).
   */
  name: string;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** An IPC channel (process.send / 'message'). */
  ipc?: boolean;
  cpuProf?: CpuProfile;
  /** Extra node flags, e.g. --max-old-space-size. */
  nodeFlags?: string[];
}

export class Child {
  readonly exited: Promise<number | string>;
  private out = '';
  private readonly lineWaiters: { re: RegExp; resolve: (line: string) => void }[] = [];
  private partial = '';

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    this.exited = once(proc, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
    const onData = (d: Buffer) => {
      const s = d.toString();
      this.out = (this.out + s).slice(-OUTPUT_KEEP);
      const lines = (this.partial + s).split('\n');
      this.partial = (lines.pop() ?? '').slice(-OUTPUT_KEEP);
      if (!this.lineWaiters.length) return;
      for (const line of lines) {
        for (let i = this.lineWaiters.length - 1; i >= 0; i--) {
          const w = this.lineWaiters[i]!;
          if (w.re.test(line)) {
            this.lineWaiters.splice(i, 1);
            w.resolve(line);
          }
        }
      }
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    LIVE.add(this);
    void this.exited.then(() => LIVE.delete(this));
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  output(): string {
    return this.out;
  }

  /** The last lines of output, for error messages. */
  tail(lines = 8): string {
    return this.out.trim().split('\n').slice(-lines).join('\n');
  }

  /** Resolves with the first output line matching `re`; rejects if the process exits or the time runs out. */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string> {
    const seen = this.out.split('\n').find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no line matching ${re} within ${timeoutMs} ms\n${this.tail()}`)), timeoutMs);
      const waiter = {
        re,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      this.lineWaiters.push(waiter);
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code}) before printing ${re}\n${this.tail()}`));
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Resolves with the exit code or signal. */
  async stop(graceMs = 20_000): Promise<number | string> {
    if (!this.running) return this.exited;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.running && this.proc.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

const LIVE = new Set<Child>();

/** Stop every child still running (end of run, Ctrl-C, failure). */
export async function stopAll(graceMs = 5_000): Promise<void> {
  await Promise.allSettled([...LIVE].map((c) => c.stop(graceMs)));
}

function nodeArgs(o: SpawnOptions): string[] {
  const flags = [...(o.nodeFlags ?? [])];
  if (o.cpuProf) flags.push('--cpu-prof', `--cpu-prof-dir=${join(o.cpuProf.dir, o.cpuProf.name)}`);
  return flags;
}

function start(name: string, args: string[], o: SpawnOptions): Child {
  const proc = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...o.env },
    stdio: o.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  return new Child(name, proc);
}

/** `node bin/rill.mjs <args>`: the CLI as a user runs it. */
export function spawnRill(name: string, args: string[], o: SpawnOptions = {}): Child {
  return start(name, [...nodeArgs(o), RILL_BIN, ...args], o);
}

/** One of the bench's own scripts (bench/<rel>.ts), e.g. 'load/loadgen' or 'baselines/bullmq-chain'. */
export function spawnScript(name: string, rel: string, args: string[], o: SpawnOptions = {}): Child {
  return start(name, [...nodeArgs(o), ...scriptArgs(rel), ...args], o);
}

/** Any other program (redis-benchmark, psql). */
export function spawnProgram(name: string, cmd: string, args: string[], env: Record<string, string> = {}): Child {
  const proc = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Child(name, proc);
}

/** Run to the end; throws with the output's tail on a non-zero exit. */
export async function runToEnd(child: Child, timeoutMs = 120_000): Promise<string> {
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), timeoutMs);
  const code = await child.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${child.name} failed (${code}): ${child.tail(5)}`);
  return child.output();
}

/** The last JSON object a script printed on a line of its own (baselines report that way). */
export function lastJsonLine<T>(output: string): T {
  const line = output
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (!line) throw new Error(`no JSON result in: ${output.slice(-300)}`);
  return JSON.parse(line) as T;
}
