// Importing a plugin module (a processor named by path in the topology). JavaScript (.js, .mjs,
// .cjs) imports as it is. TypeScript (.ts, .mts, .cts) needs a loader: run from source, Rill itself
// is loaded through tsx and so is the plugin; run from the compiled dist/ (after `npm run build`,
// from an installed package, in the image), nothing is registered, and tsx's scoped tsImport loads
// the plugin (and what it imports) without changing how anything else is loaded.
import { pathToFileURL } from 'node:url';

const TYPESCRIPT = /\.[cm]?tsx?$/;

/** True when this very module was loaded as TypeScript: a loader for .ts is already active. */
const RUNNING_FROM_SOURCE = TYPESCRIPT.test(new URL(import.meta.url).pathname);

export async function importPlugin(path: string): Promise<unknown> {
  const url = pathToFileURL(path).href;
  if (!TYPESCRIPT.test(path) || RUNNING_FROM_SOURCE) return import(url);
  const { tsImport } = await import('tsx/esm/api');
  return tsImport(url, import.meta.url);
}
