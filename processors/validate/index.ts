// validate: the first stage. Valid events go on (status `processing`); invalid ones go on as
// `failed` with the first broken rule's code and every broken rule as the reason: a merchant's
// mistake is a business outcome, not a dead letter.
import { z } from 'zod';
import { failedEvent } from '../../core/processor-kit.ts';
import type { Outcome, ProcessorFactory, StreamEvent } from '../../core/processor-kit.ts';
import { brokenRules } from './rules.ts';
import type { ValidateRules } from './rules.ts';

const ConfigSchema = z
  .object({
    currencies: z.array(z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code like USD')).default([]),
    max_amount: z.partialRecord(z.enum(['payin', 'payout', 'refund', 'chargeback']), z.number().int().positive()).default({}),
    reference_required: z.array(z.enum(['payin', 'payout', 'refund', 'chargeback'])).default(['refund', 'chargeback']),
  })
  .strict();

export type ValidateConfig = z.output<typeof ConfigSchema>;

export const validateProcessor: ProcessorFactory<ValidateConfig> = {
  name: 'validate',
  configSchema: ConfigSchema,
  create(config) {
    const rules: ValidateRules = {
      currencies: config.currencies,
      maxAmount: config.max_amount,
      referenceRequired: config.reference_required,
    };
    return {
      async process(batch: readonly StreamEvent[]): Promise<Outcome[]> {
        return batch.map((e) => {
          const problems = brokenRules(e.event, rules);
          if (e.event.status === 'failed') return { kind: 'ok', event: e.event }; // decided before (a redrive)
          if (problems.length) return { kind: 'ok', event: failedEvent(e.event, problems[0]!.code, `validate: ${problems.map((p) => p.message).join('; ')}`) };
          return { kind: 'ok', event: { ...e.event, status: 'processing' } };
        });
      },
    };
  },
};

export default validateProcessor;
