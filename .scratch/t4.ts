import { z } from 'zod';
import { TopologySchema } from '../core/topology/schema.ts';
const j = z.toJSONSchema(TopologySchema, { io: 'input', unrepresentable: 'any' }) as any;
console.log(JSON.stringify(j.properties.sinks, null, 1).slice(0, 2500));
console.log(JSON.stringify(j.properties.stages.additionalProperties.properties.retry, null, 1).slice(0, 1200));
console.log(Object.keys(j), j.$defs && Object.keys(j.$defs));
