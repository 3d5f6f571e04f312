// validate: the first stage. Valid events go on (status `processing`); invalid ones are fatal,
// so the runner dead-letters them with the reasons.
import { z } from 'zod';
import type { ProcessorFactory, Outcome, StreamEvent } from '../../core/processor.ts';
import { FatalError } from '../../core/errors.ts';
import { brokenRules } from './rules.ts';
import type { ValidateRules } from './rules.ts';

export class ValidationError extends FatalError {
  override name = 'ValidationError';
}

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
          if (problems.length) return { kind: 'fatal', error: new ValidationError(problems.join('; ')) };
          return { kind: 'ok', event: { ...e.event, status: 'processing' } };
        });
      },
    };
  },
};

export default validateProcessor;
