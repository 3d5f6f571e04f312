/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
// What every console route uses: the env carrying the session, a full page in the layout, and
// the container a live (SSE) fragment swaps into.
import type { Context } from 'hono';
import type { Child } from 'hono/jsx';
import type { Session } from './session.ts';
import { Layout } from './views/layout.tsx';

export type ConsoleEnv = { Variables: { session: Session } };

export function Live(props: { view: string; children?: Child }) {
  return (
    <div hx-ext="sse" sse-connect={props.view} sse-swap="update" class="live">
      {props.children}
    </div>
  );
}

export function render(title: string, path: string, csrf: string | undefined, body: Child): string {
  return `<!doctype html>${String(
    <Layout title={title} path={path} csrf={csrf}>
      {body}
    </Layout>,
  )}`;
}

export function page(c: Context, title: string, path: string, csrf: string | undefined, body: Child, status: 200 | 404 = 200): Response {
  c.header('cache-control', 'no-store');
  return c.html(render(title, path, csrf, body), status);
}

/** A query or form value as a trimmed string ('' when absent or repeated). */
export function str(v: unknown): string {
  return typeof v === 'string' ? v.trim() : '';
}
