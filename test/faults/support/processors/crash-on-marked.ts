// A plugin processor for the poison-event scenario: it passes events through, except that a batch
// holding an event marked metadata.poison = "crash" takes its worker down with process.exit — an
// event that keeps crashing whichever worker gets it. Each crash is counted per marked tx id in
// <prefix>:g:crashes (a hash) first, for the test's report.
import { z } from 'zod';
import type { Outcome, ProcessorFactory, StreamEvent } from '../../../../core/processor.ts';

const crashOnMarked: ProcessorFactory<Record<string, never>> = {
  name: 'crash-on-marked',
  configSchema: z.object({}).strict(),
  create(_config, ctx) {
    return {
      async process(batch: readonly StreamEvent[]): Promise<Outcome[]> {
        const marked = batch.filter((e) => e.event.metadata?.poison === 'crash');
        if (marked.length) {
          const pipe = ctx.redis.pipeline();
          for (const e of marked) pipe.hincrby(ctx.keys.global('crashes'), e.txId, 1);
          await pipe.exec();
          process.exit(70);
        }
        return batch.map((e): Outcome => ({ kind: 'ok', event: e.event }));
      },
    };
  },
};

export default crashOnMarked;
