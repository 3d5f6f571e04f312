// Any error as the one line the CLI prints: what went wrong and, where we know, what to do.
import { ConfigError } from '../core/errors.ts';

/** One line, no stack: what went wrong and, where we know, what to do. */
export function describe(err: unknown): string {
  if (err instanceof ConfigError) return err.message;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED') return `cannot connect (${err.message}); is the service running? (REDIS_URL / DATABASE_URL)`;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      return err.message.split('\n')[0]!;
    }
    if (err.name === 'TopologyError') return err.message.split('\n').join('; ');
    return err.message.split('\n')[0] || err.name;
  }
  return String(err);
}
