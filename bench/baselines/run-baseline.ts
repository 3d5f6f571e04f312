// What every baseline process shares: its own CPU time, and running its main to an exit code
// (the bench reads the one JSON line it prints; a failure is one line on stderr, exit 1).

/** This process's CPU time so far (user + system), µs. */
export function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
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
