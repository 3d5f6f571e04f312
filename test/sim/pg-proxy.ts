// A fault-injecting stand-in for the sink's Postgres connection: a real pg.Client (made by the
// BatchWriter's client factory) behind a Proxy that asks the FaultInjector about each connect and
// query: fail before it is sent, after it took effect (e.g. a COMMIT that committed but whose
// answer never came), or kill the process there. COPY streams can only fail before they start.
import pg from 'pg';
import { CrashError, InjectedFault } from './faults.ts';
import type { FaultInjector } from './faults.ts';
import type { ProcessHandle } from './redis-proxy.ts';

export interface PgProcess extends ProcessHandle {
  /** Real clients this process opened: closed when it dies (the server rolls back what was open). */
  readonly pgClients: pg.Client[];
}

function describe(sql: string): string {
  const s = sql.trim();
  if (/^WITH ins AS/i.test(s)) return 'post ledger (WITH ins ...)';
  return s
    .split(/\s+/)
    .slice(0, /^(INSERT|CREATE)/i.test(s) ? 3 : 2)
    .join(' ');
}

export function faultyPgClientFactory(faults: FaultInjector, proc: PgProcess): (config: pg.ClientConfig) => pg.Client {
  return (config) => {
    const real = new pg.Client(config);
    proc.pgClients.push(real);
    const dieAt = (where: string): never => {
      proc.die(`died at Postgres ${where}`);
      throw new CrashError(`${proc.label} died at Postgres ${where}`);
    };
    const query = (args: unknown[]): unknown => {
      if (typeof args[0] !== 'string') {
        // a COPY ... FROM STDIN stream: returned synchronously, so it can only fail up front
        const text = (args[0] as { text?: string }).text ?? 'COPY';
        if (proc.dead) throw new CrashError(`${proc.label} is dead`);
        const fault = faults.pg(proc.label, describe(text), { stream: true });
        if (fault === 'before') throw new InjectedFault(`injected: ${describe(text)} failed before it started`);
        if (fault === 'crash-before') dieAt(`${describe(text)} (before it started)`);
        return (real.query as (...a: unknown[]) => unknown)(...args);
      }
      const what = describe(args[0]);
      return (async () => {
        if (proc.dead) throw new CrashError(`${proc.label} is dead`);
        const fault = faults.pg(proc.label, what, { stream: false });
        if (fault === 'before') throw new InjectedFault(`injected: ${what} failed before it was sent`);
        if (fault === 'crash-before') dieAt(`${what} (before it was sent)`);
        const res = await (real.query as (...a: unknown[]) => Promise<unknown>)(...args);
        if (fault === 'after') throw new InjectedFault(`injected: ${what} took effect, then the connection broke`);
        if (fault === 'crash-after') dieAt(`${what} (after it took effect)`);
        return res;
      })();
    };
    return new Proxy(real, {
      get(target, prop) {
        if (prop === 'query') return (...args: unknown[]) => query(args);
        if (prop === 'connect') {
          return async () => {
            if (proc.dead) throw new CrashError(`${proc.label} is dead`);
            const fault = faults.pg(proc.label, 'connect', { stream: true });
            if (fault === 'before') throw new InjectedFault('injected: connection refused');
            if (fault === 'crash-before') dieAt('connect');
            return target.connect();
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  };
}
