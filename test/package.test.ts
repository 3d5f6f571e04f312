// Rill as a package: build (tsc to dist/, in a copy of the project so this worktree's bin/rill.mjs
// keeps running the sources), `npm pack`, install the tarball into an empty project, then use it
// as a user would: `npx rill --help`, `rill topology check`, import `rill` and `rill/client`, and
// run a worker from the compiled entry point whose stages are a TypeScript plugin and a .mjs one.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../core/wait.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { createApiKey } from '../core/api-keys.ts';
import { loadTopology } from '../core/topology/load.ts';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const COPY = [
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'README.md',
  'LICENSE',
  'CHANGELOG.md',
  'topology.yaml',
  'bin',
  'scripts',
  'core',
  'client',
  'ingest',
  'processors',
  'sinks',
  'cli',
  'console',
  'bench',
];

interface Run {
  code: number | null;
  out: string;
}

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

const TAGGER_TS = `import { z } from 'zod';
import type { ProcessorFactory } from 'rill';

const tagger: ProcessorFactory<{ tag: string }> = {
  name: 'tagger',
  configSchema: z.object({ tag: z.string() }),
  create: ({ tag }) => ({
    process: async (batch) => batch.map((e) => ({ kind: 'ok' as const, event: { ...e.event, metadata: { ...e.event.metadata, tag } } })),
  }),
};
export default tagger;
`;

const STAMP_MJS = `import { z } from 'zod';
export default {
  name: 'stamp',
  configSchema: z.object({}),
  create: () => ({ process: async (batch) => batch.map((e) => ({ kind: 'ok', event: { ...e.event, metadata: { ...e.event.metadata, stamped: 'mjs' } } })) }),
};
`;

const TOPOLOGY = `version: 1
ingest: { topic: transactions }
priorities:
  - { name: critical, types: [chargeback, refund], min_share: 0 }
  - { name: normal, types: [payin, payout], min_share: 0.1 }
topics:
  transactions: { partitions: 2 }
  tagged: { partitions: 2 }
  out: { partitions: 2 }
stages:
  tag: { input: transactions, processor: ./tagger.ts, output: tagged, ordering: none, dead_letter: { max_len: 1000 }, config: { tag: vip } }
  stamp: { input: tagged, processor: ./stamp.mjs, output: out, ordering: none, dead_letter: { max_len: 1000 } }
sinks:
  postgres: { type: postgres, input: out, table: transactions, batch_rows: 100, max_wait: 50ms }
`;

describe('the package: build, pack, install, run', { timeout: 300_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'rill-package-'));
  const project = join(work, 'project');
  const user = join(work, 'user');
  let tarball = '';
  let inst: TestInstance;
  let ingest: TestIngest | undefined;
  let worker: ChildProcess | undefined;

  before(async () => {
    mkdirSync(project);
    for (const f of COPY) cpSync(join(ROOT, f), join(project, f), { recursive: true, filter: (src) => !src.endsWith('.test.ts') });
    symlinkSync(join(ROOT, 'node_modules'), join(project, 'node_modules'));
    inst = await createInstance('package');
  });

  after(async () => {
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await once(worker, 'exit');
    }
    await ingest?.server.close();
    await inst?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  test('npm run build, then npm pack: dist/, bin, SQL, Lua, no tests', async () => {
    const build = await run('npm', ['run', 'build'], project);
    assert.equal(build.code, 0, build.out);
    const pack = await run('npm', ['pack', '--json', '--pack-destination', work], project);
    assert.equal(pack.code, 0, pack.out);
    const [info] = JSON.parse(pack.out.slice(pack.out.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    tarball = join(work, info!.filename);
    const files = info!.files.map((f) => f.path);
    for (const f of [
      'bin/rill.mjs',
      'dist/cli/main.js',
      'dist/core/index.js',
      'dist/core/index.d.ts',
      'dist/client/index.js',
      'dist/client/index.d.ts',
      'topology.yaml',
      'LICENSE',
      'CHANGELOG.md',
      'README.md',
    ]) {
      assert.ok(files.includes(f), `${f} is in the package`);
    }
    assert.ok(files.some((f) => f.endsWith('.lua')) && files.some((f) => f.endsWith('.sql')), 'Lua scripts and SQL migrations ship');
    assert.deepEqual(
      files.filter((f) => /\.test\.|(^|\/)test\/|\.ts$(?<!\.d\.ts)|\.map$/.test(f)),
      [],
      'no tests, sources or source maps',
    );
  });

  test('installed from the tarball: npx rill --help, rill topology check, import rill and rill/client', async () => {
    assert.ok(tarball, 'packed');
    mkdirSync(user);
    writeFileSync(join(user, 'package.json'), JSON.stringify({ name: 'rill-user', private: true, type: 'module' }));
    const install = await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--omit=dev'], user);
    assert.equal(install.code, 0, install.out);
    const help = await run('npx', ['rill', '--help'], user);
    assert.equal(help.code, 0, help.out);
    assert.match(help.out, /usage: rill <command>/);
    const check = await run('npx', ['rill', 'topology', 'check', 'node_modules/rill/topology.yaml'], user);
    assert.equal(check.code, 0, check.out);
    const imports = await run(
      'node',
      [
        '--input-type=module',
        '-e',
        `
      const core = await import('rill');
      const { RillClient, RillProblemError } = await import('rill/client');
      console.log(typeof core.outcomeFromError, typeof RillClient, typeof RillProblemError);`,
      ],
      user,
    );
    assert.equal(imports.code, 0, imports.out);
    assert.equal(imports.out.trim(), 'function function function');
    // the types resolve for a TypeScript user too (the project's own tsc, strict)
    writeFileSync(
      join(user, 'uses-types.ts'),
      `import { RillClient } from 'rill/client';
import type { ProcessorFactory } from 'rill';
const rill = new RillClient({ baseUrl: 'http://localhost:8080', apiKey: 'rk_x' });
export const balance = async (): Promise<number | undefined> => (await rill.getWallets())[0]?.balance;
export const none: ProcessorFactory | undefined = undefined;
`,
    );
    const tsc = await run(
      'node',
      [join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'nodenext', '--skipLibCheck', 'false', 'uses-types.ts'],
      user,
    );
    assert.equal(tsc.code, 0, tsc.out);
  });

  test('a worker from the compiled entry point runs a .ts and a .mjs plugin: events reach Postgres through both', async () => {
    assert.ok(tarball, 'installed');
    writeFileSync(join(user, 'tagger.ts'), TAGGER_TS);
    writeFileSync(join(user, 'stamp.mjs'), STAMP_MJS);
    const topologyFile = join(user, 'topology.yaml');
    writeFileSync(topologyFile, TOPOLOGY);
    const topology = loadTopology(topologyFile);
    ingest = await startTestIngest(inst, { topology });
    const key = await createApiKey(inst.pool, { merchantId: 'm_plugin' });
    const N = 20;
    for (let i = 0; i < N; i++) {
      const res: Response = await fetch(`${ingest.url}/v1/transactions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'payin', merchant_id: 'm_plugin', amount: 100 + i, currency: 'USD' }),
      });
      assert.equal(res.status, 202);
    }
    let out = '';
    worker = spawn('node', ['node_modules/rill/bin/rill.mjs', 'worker'], {
      cwd: user,
      env: { ...process.env, ...inst.vars, RILL_TOPOLOGY: topologyFile, METRICS_PORT: '0', RILL_FROM_SOURCE: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    worker.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const died = once(worker, 'exit').then(([code]) => {
      throw new Error(`the worker exited (${code}): ${out.slice(-1000)}`);
    });
    const rows = await Promise.race([
      died,
      waitFor(
        `${N} rows in Postgres through both plugins`,
        async () => {
          const { rows } = await inst.pool.query<{ metadata: Record<string, string> }>('SELECT metadata FROM transactions');
          return rows.length >= N ? rows : undefined;
        },
        60_000,
      ),
    ]);
    assert.equal(rows.length, N);
    for (const r of rows) assert.deepEqual(r.metadata, { tag: 'vip', stamped: 'mjs' });
  });
});
