// The options of a command that serves HTTP until a signal (`rill ingest`, `rill console`).
import { parseArgs } from 'node:util';

export interface ServeOptions {
  port?: string;
  host?: string;
  topology?: string;
}

/** `argv` as --port, --host and --topology; undefined when -h/--help asked for `help` (printed). */
export function parseServeOptions(argv: string[], help: string): ServeOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: { port: { type: 'string' }, host: { type: 'string' }, topology: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log(help);
    return undefined;
  }
  return { port: values.port, host: values.host, topology: values.topology };
}
