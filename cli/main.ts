// The `rill` command: one subcommand per job; every failure is one line on stderr and exit 1.
// What the commands share (CommandIO, describe, the runner, table) is in ./io.ts: commands import
// nothing from here.
import { processIO, runCommand } from './io.ts';

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  dev: {
    summary: 'everything on this machine: ingest, stages, sinks (starts Redis/Postgres if none answer)',
    load: async () => (await import('./commands/dev.ts')).devCommand,
  },
  ingest: { summary: 'the HTTP edge', load: async () => (await import('./commands/ingest.ts')).ingestCommand },
  worker: { summary: 'run stages and sinks', load: async () => (await import('./commands/worker.ts')).workerCommand },
  sink: {
    summary: 'run sinks only',
    load: async () => {
      const m = await import('./commands/worker.ts');
      return (argv) => m.workerCommand(argv, true);
    },
  },
  migrate: { summary: 'apply the Postgres migrations', load: async () => (await import('./commands/migrate.ts')).migrateCommand },
  topology: { summary: 'check topology.yaml', load: async () => (await import('./commands/topology.ts')).topologyCommand },
  keys: { summary: 'create API keys', load: async () => (await import('./commands/keys.ts')).keysCommand },
  status: { summary: 'topics, lanes, lag, pending, rates, live workers', load: async () => (await import('./commands/status.ts')).statusCommand },
  tap: { summary: 'read a topic without joining a group (ndjson or csv)', load: async () => (await import('./commands/tap.ts')).tapCommand },
  replay: { summary: "reset a group's offset to a time or id", load: async () => (await import('./commands/replay.ts')).replayCommand },
  bench: {
    summary: 'run the bench suite (smoke, standard, soak); writes bench/results/',
    load: async () => (await import('./commands/bench.ts')).benchCommand,
  },
  dlq: { summary: 'dead letters: list, show, redrive, purge', load: async () => (await import('./commands/dlq.ts')).dlqCommand },
  console: { summary: 'the web console for operators (needs an operator key)', load: async () => (await import('./commands/console.ts')).consoleCommand },
  review: { summary: 'transactions held by the risk stage: list, approve, decline', load: async () => (await import('./commands/review.ts')).reviewCommand },
  risk: { summary: 'risk decision rules: set (versioned, no restart), show', load: async () => (await import('./commands/review.ts')).riskCommand },
  webhooks: { summary: 'merchant webhook endpoints: list, deliveries, redeliver', load: async () => (await import('./commands/webhooks.ts')).webhooksCommand },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'usage: rill <command> [options]   (rill <command> --help for more)',
    '',
    ...Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 1;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`rill: unknown command "${name}" (try rill --help)`);
    return 1;
  }
  return runCommand(name, processIO(), async () => (await cmd.load())(rest));
}
