// What every `rill` command shares: where it writes (CommandIO), how an error becomes the one
// line it prints (describe), the runner that turns a throw into that line and exit 1, and the
// plain-text table. Commands import these from here, never from main.ts (which loads them).
import { ConfigError, TopologyError } from '../core/errors.ts';

/** Where a command writes and which environment it reads; tests pass their own. */
export interface CommandIO {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  env: NodeJS.ProcessEnv;
}

/** The process's own streams and environment. */
export function processIO(): CommandIO {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/** One line, no stack: what went wrong and, where we know, what to do. */
export function describe(err: unknown): string {
  if (err instanceof TopologyError) return err.message.split('\n').join('; ');
  if (err instanceof ConfigError) return err.message;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED') return `cannot connect (${err.message}); is the service running? (REDIS_URL / DATABASE_URL)`;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      return err.message.split('\n')[0]!;
    }
    return err.message.split('\n')[0] || err.name;
  }
  return String(err);
}

/**
 * Runs a command body: its exit code, or, when it throws, `rill <name>: <one line>` on stderr
 * and 1. `name` is what the user typed (`dlq`, `risk`, ...).
 */
export async function runCommand(name: string, io: CommandIO, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    io.stderr.write(`rill ${name}: ${describe(err)}\n`);
    return 1;
  }
}

/**
 * A plain-text table for the terminal: columns padded to their widest cell, `right` columns
 * right-aligned (numbers). (bench/report/markdown.ts has its own: Markdown, not the terminal.)
 */
export function table(head: readonly string[], rows: readonly (readonly string[])[], right: readonly number[] = []): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const cell = (c: string, i: number, last: boolean) => (right.includes(i) ? c.padStart(widths[i]!) : last ? c : c.padEnd(widths[i]!));
  const line = (cells: readonly string[]) => cells.map((c, i) => cell(c, i, i === cells.length - 1)).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}
