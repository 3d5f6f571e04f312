import { z } from 'zod';
import { TransactionBodySchema } from '../ingest/validation.ts';
console.log(JSON.stringify(z.toJSONSchema(TransactionBodySchema, { target: 'draft-2020-12', unrepresentable: 'any', io: 'input' }), null, 1));
