// `rill console [--port N] [--host H]`: the operators' web console (console/) on its own port.
// Open it, give an operator key (`rill keys create --scope operator`) once.
import { parseServeOptions } from '../serve-options.ts';
import { consolePort, DEFAULT_CONSOLE_PORT, runConsole } from '../run-console.ts';
import { commandContext, migrateSchema, stopWithin, untilSignal } from '../context.ts';

const HELP = `usage: rill console [--port N] [--host H] [--topology FILE]

Serves the web console for operators (topology with live rates, partitions × lanes, workers,
dead letters with redrive and purge, transaction timelines, live tail, wallets, bench report).
Log in with an operator key: rill keys create --scope operator.

Options:
  --port N         port (default $CONSOLE_PORT, else ${DEFAULT_CONSOLE_PORT}; 0 picks a free one)
  --host H         address to listen on (default 127.0.0.1)
  --topology FILE  the topology (default $RILL_TOPOLOGY, else ./topology.yaml)
  -h, --help       show this help`;

export async function consoleCommand(argv: string[]): Promise<number> {
  const values = parseServeOptions(argv, HELP);
  if (!values) return 0;
  const port = consolePort(values.port);
  const ctx = commandContext('console', values.topology);
  await migrateSchema(ctx.env, 'rill-console-migrate'); // the operator scope needs its migration
  const running = await runConsole({ ...ctx, port, host: values.host ?? '127.0.0.1' });
  console.log(`Rill console: ${running.url} (log in with an operator key: rill keys create --scope operator)`);
  await untilSignal();
  await stopWithin(10_000, running.stop, ctx.logger);
  return 0;
}
