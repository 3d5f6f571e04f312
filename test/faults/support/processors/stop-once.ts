// A plugin processor for the SIGSTOP scenario: it passes events through (or, with `ledger:` in its
// config, runs the real ledger processor on them first, so the wallet effects are applied), and
// the first time any worker sees an event whose metadata.stop equals `marker`, that worker stops
// itself with SIGSTOP right there: processed, effects applied, not settled. Its pid goes to
// <prefix>:g:stopped:<marker> first, so the test knows whom to SIGCONT. The SET NX makes it once:
// the worker that reclaims the batch later processes the marked event like any other.
import { z } from 'zod';
import type { Outcome, Processor, ProcessorFactory, StreamEvent } from '../../../../core/processor.ts';
import { ledgerProcessor } from '../../../../processors/ledger/index.ts';

const ConfigSchema = z
  .object({
    marker: z.string().min(1),
    /** The ledger processor's own config: wrap the real ledger. */
    ledger: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

const stopOnce: ProcessorFactory<z.output<typeof ConfigSchema>> = {
  name: 'stop-once',
  configSchema: ConfigSchema,
  async create(config, ctx) {
    let inner: Processor | undefined;
    if (config.ledger) inner = await ledgerProcessor.create(ledgerProcessor.configSchema.parse(config.ledger), ctx);
    return {
      async process(batch: readonly StreamEvent[]): Promise<Outcome[]> {
        const outcomes = inner ? await inner.process(batch) : batch.map((e): Outcome => ({ kind: 'ok', event: e.event }));
        if (batch.some((e) => e.event.metadata?.stop === config.marker)) {
          const first = await ctx.redis.set(ctx.keys.global('stopped', config.marker), String(process.pid), 'NX');
          if (first === 'OK') process.kill(process.pid, 'SIGSTOP');
        }
        return outcomes;
      },
    };
  },
};

export default stopOnce;
