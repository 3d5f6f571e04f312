// webhook-events: turns settled transactions and merchant alerts into webhook event objects on
// the webhook_events topic (tappable, replayable, shown by `rill status`); the webhooks sink fans
// them out to the merchants' endpoints. `source` says what the input topic carries.
import { z } from 'zod';
import type { Outcome, ProcessorFactory, StreamEvent, TransactionEvent } from '../../core/processor-kit.ts';
import { fromAlert, fromTransaction } from './events.ts';

const ConfigSchema = z
  .object({
    source: z.enum(['transactions', 'alerts']).default('transactions').describe('transactions: a settled topic; alerts: the alerts topic.'),
  })
  .strict();

export type WebhookEventsConfig = z.output<typeof ConfigSchema>;

export const webhookEventsProcessor: ProcessorFactory<WebhookEventsConfig> = {
  name: 'webhook-events',
  configSchema: ConfigSchema,
  create(config) {
    return {
      async process(batch: readonly StreamEvent[]): Promise<Outcome[]> {
        const now = Date.now();
        return batch.map((e) => {
          const ev = config.source === 'alerts' ? fromAlert(e.event as unknown as Record<string, unknown>, now) : fromTransaction(e.event, now);
          // the runner writes any object with an id and a type; it only reads those two fields
          return { kind: 'ok', event: ev as unknown as TransactionEvent };
        });
      },
    };
  },
};

export default webhookEventsProcessor;
