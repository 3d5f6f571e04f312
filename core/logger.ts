// Structured JSON logs (pino). One root logger per process; children carry the component name.
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/** `file`: write the lines there instead of stdout (rill dev --demo keeps the terminal for its progress). */
export function createLogger(level: string = process.env.LOG_LEVEL || 'info', base: Record<string, unknown> = {}, file?: string): Logger {
  const options = {
    level,
    base: { pid: process.pid, ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    // never log secrets, whatever a caller passes
    // ioredis errors carry the failed command's arguments (a whole event): never log them
    redact: { paths: ['authorization', 'headers.authorization', 'key', 'apiKey', 'body', 'err.command', 'err.args', 'err.previousErrors'], remove: true },
  };
  return file ? pino(options, pino.destination({ dest: file, mkdir: true, sync: false })) : pino(options);
}
