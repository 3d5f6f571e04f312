// A Redis Cluster of the test's own (never the shared Redis on 6379): three masters, no replicas,
// on free ports (each with its cluster bus port, +10000, free too), in a temp dir, no persistence.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { waitFor } from './wait.ts';

const run = promisify(execFile);

export interface OwnCluster {
  ports: number[];
  /** REDIS_URL for Rill: every node, comma-separated. */
  url: string;
  /** A plain connection to one node (CLUSTER commands, per-node checks). */
  node(port: number): Redis;
  stop(): Promise<void>;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const p = 20_000 + Math.floor(Math.random() * 25_000);
    if (out.includes(p) || out.includes(p + 10_000) || out.includes(p - 10_000)) continue;
    if ((await portFree(p)) && (await portFree(p + 10_000))) out.push(p);
  }
  return out;
}

export async function startCluster(masters = 3): Promise<OwnCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'rill-cluster-'));
  const ports = await freePorts(masters);
  const procs: ChildProcess[] = [];
  const nodes: Redis[] = [];
  const stop = async () => {
    for (const n of nodes) n.disconnect();
    await Promise.all(
      procs.map(async (p) => {
        if (p.exitCode !== null || p.signalCode !== null) return;
        const exited = once(p, 'exit');
        p.kill('SIGKILL');
        await exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  const node = (port: number) => {
    const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, lazyConnect: false });
    r.on('error', () => undefined);
    nodes.push(r);
    return r;
  };
  try {
    for (const port of ports) {
      procs.push(
        spawn(
          'redis-server',
          [
            '--port',
            String(port),
            '--bind',
            '127.0.0.1',
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            `nodes-${port}.conf`,
            '--save',
            '',
            '--appendonly',
            'no',
            '--dir',
            dir,
            '--protected-mode',
            'no',
            '--daemonize',
            'no',
            '--logfile',
            join(dir, `redis-${port}.log`),
          ],
          { stdio: 'ignore' },
        ),
      );
    }
    const admin = ports.map(node);
    await waitFor('the cluster nodes to answer', async () => (await Promise.all(admin.map((n) => n.ping()))).every((r) => r === 'PONG'), 15_000, 50);
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    await waitFor(
      'cluster_state:ok on every node',
      async () => {
        const infos = await Promise.all(admin.map((n) => n.cluster('INFO') as Promise<string>));
        return infos.every(
          (i) => /cluster_state:ok/.test(i) && /cluster_slots_ok:16384/.test(i) && /cluster_known_nodes:(\d+)/.exec(i)?.[1] === String(masters),
        );
      },
      30_000,
      100,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { ports, url: ports.map((p) => `redis://127.0.0.1:${p}`).join(','), node, stop };
}
