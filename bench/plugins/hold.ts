// A plugin processor for the noisy-neighbour bench, loaded by module path like any user's: an
// event whose metadata says hold=yes fails retryably every time (its stage parks it, with its
// merchant's later events of that lane, until its attempts run out: a dead letter); anything else
// passes. It stands for a merchant whose payins never settle.
import { z } from 'zod';
import { RetryableError } from '../../core/index.ts';
import type { Outcome, ProcessorFactory, StreamEvent } from '../../core/index.ts';

const hold: ProcessorFactory<Record<string, never>> = {
  name: 'hold',
  configSchema: z.object({}).strict(),
  create() {
    return {
      async process(batch: readonly StreamEvent[]): Promise<Outcome[]> {
        return batch.map(
          (e): Outcome =>
            e.event.metadata?.hold === 'yes'
              ? { kind: 'retry', error: new RetryableError('held (bench: a payin that does not settle)') }
              : { kind: 'ok', event: e.event },
        );
      },
    };
  },
};

export default hold;
