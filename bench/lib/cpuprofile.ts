// Summarizing a V8 .cpuprofile (node --cpu-prof): self time by function and by area (this
// project's folders, each package, node internals, GC), the "where the time goes" of a process.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CpuProfileSummary } from '../report/types.ts';
import { ROOT } from './paths.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfileJson {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

function area(url: string, fn: string): string {
  if (!url) {
    if (fn === '(garbage collector)') return 'V8: garbage collector';
    if (fn === '(idle)') return '(idle)';
    if (fn === '(program)') return 'V8/native: (program)';
    return `native: ${fn || '(anonymous)'}`;
  }
  if (url.startsWith('node:')) return 'node internals';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 14).split('/');
    return `package: ${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const rel = relative(ROOT, path);
  if (!rel.startsWith('..'))
    return `rill: ${rel
      .split('/')
      .slice(0, rel.startsWith('dist/') ? 2 : 1)
      .join('/')}/`;
  return 'other';
}

function where(url: string, line: number): string {
  if (!url) return '';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf('/node_modules/');
  const shown = nm >= 0 ? path.slice(nm + 14) : relative(ROOT, path).startsWith('..') ? path : relative(ROOT, path);
  return `${shown}:${line + 1}`;
}

export function summarizeCpuProfile(file: string, processName: string): CpuProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfileJson;
  const self = new Map<number, number>();
  if (p.samples?.length && p.timeDeltas?.length) {
    // each sample's time is the gap to the next one
    for (let i = 0; i < p.samples.length; i++) {
      const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
      self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + Math.max(0, dt));
    }
  } else {
    const per =
      (p.endTime - p.startTime) /
      1000 /
      Math.max(
        1,
        p.nodes.reduce((n, x) => n + (x.hitCount ?? 0), 0),
      );
    for (const n of p.nodes) self.set(n.id, (n.hitCount ?? 0) * per);
  }
  const byFn = new Map<string, { fn: string; where: string; selfMs: number }>();
  const byArea = new Map<string, number>();
  let busy = 0;
  for (const n of p.nodes) {
    const ms = self.get(n.id) ?? 0;
    if (!ms) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const a = area(url, functionName);
    byArea.set(a, (byArea.get(a) ?? 0) + ms);
    if (a === '(idle)') continue;
    busy += ms;
    const key = `${functionName}@${url}:${lineNumber}`;
    const e = byFn.get(key) ?? { fn: functionName || '(anonymous)', where: where(url, lineNumber), selfMs: 0 };
    e.selfMs += ms;
    byFn.set(key, e);
  }
  const share = (v: number) => (busy ? v / busy : 0);
  return {
    process: processName,
    file: relative(ROOT, file),
    totalMs: Math.round(busy),
    top: [...byFn.values()]
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, 30)
      .map((f) => ({ ...f, selfMs: Math.round(f.selfMs), share: share(f.selfMs) })),
    byArea: [...byArea.entries()]
      .filter(([a]) => a !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .map(([a, v]) => ({ area: a, selfMs: Math.round(v), share: share(v) })),
  };
}
