// Static assets, all served from this origin (no CDN): htmx and its SSE extension straight from
// node_modules, the console's own stylesheet and script from console/assets/. Read once.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Hono } from 'hono';

const require = createRequire(import.meta.url);
const pkg = (name: string) => dirname(require.resolve(`${name}/package.json`));
const own = new URL('./assets/', import.meta.url).pathname;

const FILES: Record<string, { path: string; type: string }> = {
  'htmx.min.js': { path: join(pkg('htmx.org'), 'dist/htmx.min.js'), type: 'text/javascript' },
  'sse.min.js': { path: join(pkg('htmx-ext-sse'), 'dist/sse.min.js'), type: 'text/javascript' },
  'console.js': { path: join(own, 'console.js'), type: 'text/javascript' },
  'console.css': { path: join(own, 'console.css'), type: 'text/css' },
};

export function assetRoutes(): Hono {
  const cache = new Map<string, Buffer>();
  const app = new Hono();
  app.get('/:file', (c) => {
    const name = c.req.param('file');
    const f = FILES[name];
    if (!f) return c.notFound();
    let body = cache.get(name);
    if (!body) cache.set(name, (body = readFileSync(f.path)));
    return c.body(new Uint8Array(body), 200, {
      'content-type': `${f.type}; charset=utf-8`,
      'cache-control': 'public, max-age=300',
      'x-content-type-options': 'nosniff',
    });
  });
  return app;
}
