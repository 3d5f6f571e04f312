// `npm run docs`: write the files generated from the code; `npm run docs:check`: fail (exit 1)
// when one of them is stale. Generated, never edited by hand:
//   client/schema.ts   the client's types, from the OpenAPI document (openapi-typescript)
import { readFileSync, writeFileSync } from 'node:fs';
import openapiTS from 'openapi-typescript';
import { openApiDocument } from '../ingest/openapi/spec.ts';

const root = new URL('..', import.meta.url);

const generators: Record<string, () => Promise<string>> = {
  'client/schema.ts': async () => openapiTS(openApiDocument() as Parameters<typeof openapiTS>[0]),
};

const check = process.argv.includes('--check');
const stale: string[] = [];
for (const [file, generate] of Object.entries(generators)) {
  const text = await generate();
  const path = new URL(file, root);
  let current = '';
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    // missing: stale
  }
  if (current === text) continue;
  if (check) stale.push(file);
  else {
    writeFileSync(path, text);
    console.log(`wrote ${file}`);
  }
}
if (stale.length) {
  console.error(`stale generated files (run npm run docs): ${stale.join(', ')}`);
  process.exit(1);
}
