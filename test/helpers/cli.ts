// Runs a `rill` command in-process with its stdout and stderr captured (through its CommandIO).
import type { CommandIO } from '../../cli/io.ts';

export interface CommandRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `io` is the command's CommandIO (and extras, e.g. StatusIO's tty) without the two streams. */
export async function runCaptured<IO extends CommandIO>(
  command: (argv: string[], io: IO) => Promise<number>,
  argv: string[],
  io: Omit<IO, 'stdout' | 'stderr'>,
): Promise<CommandRun> {
  let stdout = '';
  let stderr = '';
  const code = await command(argv, {
    ...io,
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  } as IO);
  return { code, stdout, stderr };
}
