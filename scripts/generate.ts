// `npm run docs`: write the files generated from the code; `npm run docs:check`: fail (exit 1)
// when one of them is stale. Generated, never edited by hand:
//   client/schema.ts   the client's types, from the OpenAPI document (openapi-typescript)
//   docs/topology.md   from core/topology/schema.ts
//   docs/metrics.md    from the metrics the code registers
//   docs/cli.md        from the commands' --help
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import openapiTS from 'openapi-typescript';
import { openApiDocument } from '../ingest/openapi/spec.ts';
import { cliDoc } from './docs/cli.ts';
import { metricsDoc } from './docs/metrics.ts';
import { topologyDoc } from './docs/topology.ts';

const root = new URL('..', import.meta.url);

const generators: Record<string, () => Promise<string>> = {
  'client/schema.ts': async () => openapiTS(openApiDocument() as unknown as Parameters<typeof openapiTS>[0]),
  'docs/topology.md': async () => topologyDoc(new URL('topology.yaml', root)),
  'docs/metrics.md': async () => metricsDoc(root),
  'docs/cli.md': async () => cliDoc(root),
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
    mkdirSync(new URL('.', path), { recursive: true });
    writeFileSync(path, text);
    console.log(`wrote ${file}`);
  }
}
if (stale.length) {
  console.error(`stale generated files (run npm run docs): ${stale.join(', ')}`);
  process.exit(1);
}
