// A stoppable consumer loop: runs `step` until stopped, backing off on errors (Redis or Postgres
// down) instead of crashing, and resolves `done` once the in-flight step has finished.
import type { Logger } from '../logger.ts';

export interface Loop {
  stop(): void;
  readonly stopping: boolean;
  readonly done: Promise<void>;
}

export function runLoop(name: string, logger: Logger, step: (loop: Loop) => Promise<void>): Loop {
  let stopping = false;
  let wake: (() => void) | undefined;
  const loop: Loop = {
    stop() {
      stopping = true;
      wake?.();
    },
    get stopping() {
      return stopping;
    },
    done: Promise.resolve(),
  };
  const run = async () => {
    let failures = 0;
    while (!stopping) {
      try {
        await step(loop);
        failures = 0;
      } catch (err) {
        failures++;
        const waitMs = Math.min(5_000, 100 * 2 ** Math.min(failures, 6));
        logger.error({ err, loop: name, waitMs }, 'consumer step failed; retrying');
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, waitMs);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wake = undefined;
      }
    }
  };
  (loop as { done: Promise<void> }).done = run();
  return loop;
}
