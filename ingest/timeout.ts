// Bound every dependency call: a request must get a 503 it can retry, never hang on a stuck Redis.
import { DependencyTimeoutError } from '../core/errors.ts';

export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DependencyTimeoutError(`${what} did not answer within ${ms} ms`)), ms);
  });
  // the loser may still settle later; keep its rejection from surfacing as unhandled
  work.catch(() => undefined);
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
