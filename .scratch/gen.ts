import openapiTS from 'openapi-typescript';
import { openApiDocument } from '../ingest/openapi/spec.ts';
const out = await openapiTS(openApiDocument() as never);
console.log(out);
