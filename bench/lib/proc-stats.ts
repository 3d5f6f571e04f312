// CPU time and memory of a process on this machine, from /proc (Linux): where the cores went.
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { spawnSync } from 'node:child_process';

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** User + system CPU time of a process, ms (undefined once it is gone). */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Whether a server's URL points at this machine (then its processes' CPU can be read from /proc). */
export function isLocalUrl(url: string): boolean {
  return ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(new URL(url).hostname);
}

/** Pids of the processes of this machine whose command name is `comm` (e.g. a server the bench did not start). */
export function pidsByName(comm: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Resident set size, bytes. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Machine-wide CPU (all cores) busy and total jiffies, for the box's load over a window. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (line[3] ?? 0) + (line[4] ?? 0);
  const total = line.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/**
 * CPU used by a set of processes over a window, as a share of one core (1.0 = one core busy),
 * and the whole machine's busy share of all its cores.
 */
export class CpuWindow {
  private readonly start = new Map<string, { pids: number[]; ms: number }>();
  private readonly t0 = performance.now();
  private readonly m0 = machineCpu();

  constructor(groups: Record<string, number[]>) {
    for (const [name, pids] of Object.entries(groups)) this.start.set(name, { pids, ms: pids.reduce((n, p) => n + (cpuMs(p) ?? 0), 0) });
  }

  /**
   * Cores used per group over the window, the machine's busy share of all its cores, and `other`:
   * the cores busy with anything not in the groups (other users of the machine, Postgres,
   * the kernel): the noise behind the figures.
   */
  end(): { cores: Record<string, number>; machineBusy: number } {
    const wall = performance.now() - this.t0;
    const cores: Record<string, number> = {};
    let ours = 0;
    for (const [name, s] of this.start) {
      const now = s.pids.reduce((n, p) => n + (cpuMs(p) ?? 0), 0);
      const c = Math.max(0, (now - s.ms) / wall);
      ours += c;
      cores[name] = Math.round(c * 100) / 100;
    }
    const m1 = machineCpu();
    const busy = (m1.busy - this.m0.busy) / Math.max(1, m1.total - this.m0.total);
    cores.other = Math.round(Math.max(0, busy * cpus().length - ours) * 100) / 100;
    return { cores, machineBusy: Math.round(busy * 100) / 100 };
  }
}
