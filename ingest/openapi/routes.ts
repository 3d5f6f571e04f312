// GET /openapi.json (the document, built once) and GET /docs (Swagger UI from the swagger-ui-dist
// package, served by this process: no CDN, works offline and behind a strict egress policy).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Hono } from 'hono';
import { openApiDocument } from './spec.ts';

const ASSETS: Record<string, string> = {
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui.css': 'text/css; charset=utf-8',
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rill ingest API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

const INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#docs', deepLinking: true });\n`;

export function openApiRoutes(): Hono {
  const app = new Hono();
  let spec: string | undefined;
  app.get('/openapi.json', (c) => {
    spec ??= JSON.stringify(openApiDocument());
    return c.body(spec, 200, { 'content-type': 'application/json' });
  });
  app.get('/docs', (c) => c.html(PAGE));
  app.get('/docs/init.js', (c) => c.body(INIT, 200, { 'content-type': ASSETS['swagger-ui-bundle.js']! }));
  const cache = new Map<string, Uint8Array>();
  app.get('/docs/:asset{swagger-ui-bundle\\.js|swagger-ui\\.css}', (c) => {
    const name = c.req.param('asset');
    let bytes = cache.get(name);
    if (!bytes) {
      bytes = readFileSync(join(swaggerUiDir(), name));
      cache.set(name, bytes);
    }
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, { 'content-type': ASSETS[name]!, 'cache-control': 'public, max-age=3600' });
  });
  return app;
}

function swaggerUiDir(): string {
  return dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
}
