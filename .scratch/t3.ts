import { openApiDocument } from '../ingest/openapi/spec.ts';
const d = openApiDocument() as any;
console.log(JSON.stringify(d.components.schemas.TransactionRequest.properties.currency), JSON.stringify(d.components.schemas.TransactionRequest.properties.metadata));
console.log(JSON.stringify(d).length);
