// A redis-server of the scenario's own (never the shared one on 6379): a free port, a temp dir,
// AOF with fsync on every write, so a kill -9 loses nothing that was acknowledged. It can be
// killed with SIGKILL and started again on the same port and dir (it reloads the AOF).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { waitFor } from '../../helpers/wait.ts';
import { freePort } from './processes.ts';

export class OwnRedis {
  private proc: ChildProcess | undefined;
  private exited: Promise<unknown> | undefined;

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(): Promise<OwnRedis> {
    const r = new OwnRedis(await freePort(), mkdtempSync(join(tmpdir(), 'rill-fault-redis-')));
    await r.startAgain();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Start (or restart) on the same port and dir; resolves once it answers and has loaded its AOF. */
  async startAgain(): Promise<void> {
    const proc = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
        '--protected-mode',
        'no',
        '--daemonize',
        'no',
        '--logfile',
        join(this.dir, 'redis.log'),
      ],
      { stdio: 'ignore' },
    );
    this.proc = proc;
    this.exited = once(proc, 'exit');
    await waitFor(
      `redis-server on :${this.port} to load its data`,
      async () => {
        if (proc.exitCode !== null) throw new Error(`redis-server exited ${proc.exitCode}: ${this.log().slice(-500)}`);
        const c = new Redis({
          port: this.port,
          host: '127.0.0.1',
          lazyConnect: true,
          maxRetriesPerRequest: 0,
          retryStrategy: () => null,
          enableOfflineQueue: false,
        });
        c.on('error', () => undefined); // refused while it starts: the poll tries again
        try {
          await c.connect();
          const info = await c.info('persistence');
          return /^loading:0/m.test(info);
        } finally {
          c.disconnect();
        }
      },
      20_000,
      50,
    );
  }

  /** kill -9: no shutdown, no final fsync beyond what `appendfsync always` already did. */
  async kill9(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'redis.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async destroy(): Promise<void> {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
