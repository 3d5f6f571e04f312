// Waiting for something with a deadline, for shutdown paths that must not hang on a dead Redis.
export const TIMED_OUT: unique symbol = Symbol('timed out');

/** `p`'s value, or TIMED_OUT after `ms` (the timer does not keep the process alive). */
export async function within<T>(ms: number, p: Promise<T>): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
    timer.unref();
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
