// A PostgreSQL 15 cluster of the scenario's own (never the shared one on 5432): initdb in a temp
// dir owned by the postgres OS user, trust auth, a free port, its socket in that dir. It can be
// stopped the hard way (`pg_ctl stop -m immediate`: no checkpoint, crash recovery at the next
// start) and started again on the same port and data.
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './processes.ts';

const run = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';

/** Run a postgres binary as the postgres OS user (we may be root; postgres refuses to run as root). */
async function asPostgres(cmd: string, args: string[]): Promise<string> {
  const asRoot = userInfo().uid === 0;
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(BIN, cmd), ...args]] : [join(BIN, cmd), args];
  const { stdout, stderr } = await run(file, argv, { timeout: 60_000 });
  return stdout + stderr;
}

export class OwnPostgres {
  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  private get data(): string {
    return join(this.dir, 'data');
  }

  static async start(): Promise<OwnPostgres> {
    const dir = mkdtempSync(join(tmpdir(), 'rill-fault-pg-'));
    if (userInfo().uid === 0) {
      const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
      const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
      chownSync(dir, uid, gid);
    }
    const pg = new OwnPostgres(await freePort(), dir);
    await asPostgres('initdb', ['-D', pg.data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    await pg.startAgain();
    return pg;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** Start (or restart) on the same port; resolves once it accepts connections (pg_ctl -w). */
  async startAgain(): Promise<void> {
    const opts = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
    await asPostgres('pg_ctl', ['-D', this.data, '-o', opts, '-l', join(this.dir, 'postgres.log'), '-w', '-t', '60', 'start']);
  }

  /** The crash stop: every backend killed at once, no shutdown checkpoint. */
  async stopImmediate(): Promise<void> {
    await asPostgres('pg_ctl', ['-D', this.data, '-m', 'immediate', '-w', 'stop']);
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'postgres.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async destroy(): Promise<void> {
    await asPostgres('pg_ctl', ['-D', this.data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
