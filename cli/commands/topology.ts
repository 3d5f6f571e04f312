// `rill topology check [file]`: schema and semantic checks of a topology file, then a summary.
// Processor names are not resolved here: that needs the registry the worker wires up.
import { parseArgs } from 'node:util';
import { describeTopology } from '../../core/topology/describe.ts';
import { TopologyError } from '../../core/errors.ts';
import { loadTopology } from '../../core/topology/load.ts';
import { processIO } from '../io.ts';
import type { CommandIO } from '../io.ts';

export const TOPOLOGY_USAGE = `Usage: rill topology check [file]

Check a topology file (schema, then topic references, co-partitioning, lanes, cycles) and print
a summary. Problems are printed one per line as file:line:col: message; the exit code is 1.

Arguments:
  file        the topology file (default: $RILL_TOPOLOGY, else ./topology.yaml)

Options:
  -h, --help  show this help
`;

/** `argv` is what follows `rill topology`. Resolves to the exit code. */
export async function topologyCommand(argv: string[], io: CommandIO = processIO()): Promise<number> {
  const fail = (line: string): number => {
    io.stderr.write(`${line}\n`);
    return 1;
  };

  let values: { help?: boolean | undefined };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true }));
  } catch (err) {
    // node's text runs on with advice about "--"; its first sentence is the one line we want.
    const first = (err as Error).message.split('. ')[0]!.replace(/\.$/, '');
    return fail(`rill topology: ${first.charAt(0).toLowerCase()}${first.slice(1)} (see rill topology --help)`);
  }
  if (values.help) {
    io.stdout.write(TOPOLOGY_USAGE);
    return 0;
  }

  const [sub, ...rest] = positionals;
  if (sub === undefined) return fail('rill topology: missing subcommand (expected: check; see rill topology --help)');
  if (sub !== 'check') return fail(`rill topology: unknown subcommand "${sub}" (expected: check)`);
  if (rest.length > 1) return fail(`rill topology check: expected at most one file, got ${rest.length}: ${rest.join(' ')}`);

  const file = rest[0] ?? (io.env.RILL_TOPOLOGY || './topology.yaml');
  try {
    const topology = loadTopology(file);
    io.stdout.write(`${file}: ok\n\n${describeTopology(topology)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof TopologyError) {
      io.stderr.write(`${err.message}\n`);
      return 1;
    }
    return fail(`rill topology check: ${err instanceof Error ? err.message : String(err)}`);
  }
}
