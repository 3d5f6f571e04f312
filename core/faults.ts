// Crash points for the fault tests. RILL_FAULT=<point>:<n> kills this process with SIGKILL the
// n-th time it passes <point>; several specs may be given, comma-separated. Unset in production,
// where `faultPoint` costs one map lookup.
const armed = new Map<string, number>();
for (const spec of (process.env.RILL_FAULT ?? '').split(',').filter(Boolean)) {
  const m = /^([a-z-]+):(\d+)$/.exec(spec.trim());
  if (m) armed.set(m[1]!, Number(m[2]));
}

export type FaultPoint = 'stage-before-settle' | 'stage-after-settle' | 'sink-after-commit' | 'move-due-after' | 'chain-between-stages';

export function faultPoint(point: FaultPoint): void {
  const left = armed.get(point);
  if (left === undefined) return;
  if (left <= 1) process.kill(process.pid, 'SIGKILL');
  armed.set(point, left - 1);
}
