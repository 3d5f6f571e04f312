// Runs the real `rill` CLI in a child process (from source), for tests that kill and restart it.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';

const BIN = new URL('../../bin/rill.mjs', import.meta.url).pathname;
const ROOT = new URL('../..', import.meta.url).pathname;

export interface RillProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

export function spawnRill(args: string[], vars: Record<string, string>): RillProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, METRICS_PORT: '0', RILL_SHUTDOWN_DELAY_MS: '0', ...vars, RILL_FROM_SOURCE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  return {
    child,
    output: () => out,
    exited,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Run a rill command to completion. */
export async function runRill(args: string[], vars: Record<string, string>): Promise<{ code: number | string; output: string }> {
  const p = spawnRill(args, vars);
  const code = await p.exited;
  return { code, output: p.output() };
}
