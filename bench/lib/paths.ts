// Where things are: the project root (from source or from dist/), the bench's own scripts (run as
// child processes: through tsx from source, plain node from dist/), and a run's scratch folder.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
/** True when running the TypeScript sources (through tsx), false from the compiled dist/. */
export const FROM_SOURCE = import.meta.url.endsWith('.ts');

function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'rill.mjs'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the project root above ${start}`);
    dir = up;
  }
}

/** The project root (where package.json and bin/rill.mjs are). */
export const ROOT = findRoot(HERE);
/** The bench folder of the running code (bench/ from source, dist/bench/ when built). */
export const BENCH_DIR = resolve(HERE, '..');
/** Results always go to the source tree's bench/results, also when running from dist/. */
export const RESULTS_DIR = join(ROOT, 'bench', 'results');
export const RILL_BIN = join(ROOT, 'bin', 'rill.mjs');

/** node arguments that run one of the bench's scripts, e.g. script('load/loadgen'). */
export function scriptArgs(rel: string): string[] {
  const file = join(BENCH_DIR, `${rel}${FROM_SOURCE ? '.ts' : '.js'}`);
  return FROM_SOURCE ? ['--import', 'tsx', file] : [file];
}

export function ensureDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}
