import { z } from 'zod';
import { AcceptedSchema, BatchLineSchema } from '../ingest/openapi/schemas.ts';
console.log(JSON.stringify(z.toJSONSchema(AcceptedSchema, { io: 'output' })));
console.log(JSON.stringify(z.toJSONSchema(AcceptedSchema, { io: 'input' })));
console.log(JSON.stringify(z.toJSONSchema(BatchLineSchema, { io: 'input' })).slice(-200));
