// What every baseline process shares: the CPU its run takes (its own and its server's), and
// running its main to an exit code (the bench reads the one JSON line it prints; a failure is one
// line on stderr, exit 1).
import { cpuMs } from '../lib/proc-stats.ts';

/** This process's CPU time so far (user + system), µs. */
function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/**
 * Starts counting CPU: this process's and its server's (`serverPids`: the server's processes on
 * this machine, none when it runs elsewhere). The returned function gives the µs used since, each;
 * `server` is null when no server process could be read.
 */
export function startCpu(serverPids: readonly number[]): () => { own: number; server: number | null } {
  const pids = serverPids.filter((p) => cpuMs(p) !== undefined);
  const serverMs = () => pids.reduce((n, p) => n + (cpuMs(p) ?? 0), 0);
  const own0 = cpuUs();
  const server0 = serverMs();
  return () => ({ own: cpuUs() - own0, server: pids.length ? (serverMs() - server0) * 1000 : null });
}

/** Runs `main`, exits 0 when it resolves, prints `<name> baseline: <message>` and exits 1 when it throws. */
export function runBaseline(name: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: Error) => {
      console.error(`${name} baseline: ${err.message}`);
      process.exit(1);
    },
  );
}
