// The runner's side of the load generator: one child process for the whole run, jobs over IPC.
import type { Child } from './procs.ts';
import { spawnScript } from './procs.ts';
import type { FromLoadgen, LoadJob, LoadResult } from '../load/protocol.ts';

export class LoadGenerator {
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (r: LoadResult) => void; reject: (e: Error) => void; onProgress?: (done: number, elapsedMs: number) => void }
  >();

  private constructor(readonly child: Child) {
    child.proc.on('message', (m: FromLoadgen) => {
      if (m.type === 'ready') return;
      const w = this.waiting.get(m.id);
      if (!w) return;
      if (m.type === 'progress') w.onProgress?.(m.done, m.elapsedMs);
      else {
        this.waiting.delete(m.id);
        if (m.type === 'result') w.resolve(m.result);
        else w.reject(new Error(`load generator: ${m.message}`));
      }
    });
    void child.exited.then((code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`load generator exited (${code}): ${child.tail()}`));
      this.waiting.clear();
    });
  }

  static async start(): Promise<LoadGenerator> {
    const child = spawnScript('loadgen', 'load/loadgen', [], { ipc: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load generator did not start: ${child.tail()}`)), 30_000);
      child.proc.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      void child.exited.then((code) => reject(new Error(`load generator exited (${code}): ${child.tail()}`)));
    });
    return new LoadGenerator(child);
  }

  get pid(): number {
    return this.child.pid;
  }

  run(job: LoadJob, onProgress?: (done: number, elapsedMs: number) => void): Promise<LoadResult> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, onProgress });
      this.child.proc.send({ type: 'run', id, job });
    });
  }

  async stop(): Promise<void> {
    if (this.child.running) this.child.proc.send({ type: 'exit' });
    await Promise.race([this.child.exited, new Promise((r) => setTimeout(r, 3_000))]);
    await this.child.stop(2_000);
  }
}
