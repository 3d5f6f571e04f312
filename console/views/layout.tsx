/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
// The page frame: navigation, the CSRF token (sent by htmx as a header on every request it
// makes, and by plain forms as a hidden field), and the scripts, all from this origin.
import type { Child } from 'hono/jsx';
import { CSRF_FIELD, CSRF_HEADER } from '../session.ts';

export const PAGES: { path: string; title: string }[] = [
  { path: '/', title: 'Topology' },
  { path: '/partitions', title: 'Partitions' },
  { path: '/workers', title: 'Workers' },
  { path: '/dead-letters', title: 'Dead letters' },
  { path: '/transactions', title: 'Transactions' },
  { path: '/tail', title: 'Live tail' },
  { path: '/wallets', title: 'Wallets' },
  { path: '/bench', title: 'Bench' },
];

// htmx: no eval, no inline styles or scripts (the CSP forbids them), and error answers are
// swapped in like others, so a refusal shows where the action was.
const HTMX_CONFIG = JSON.stringify({
  includeIndicatorStyles: false,
  allowEval: false,
  allowScriptTags: false,
  selfRequestsOnly: true,
  historyCacheSize: 0,
  responseHandling: [
    { code: '204', swap: false },
    { code: '[23]..', swap: true },
    { code: '[4]..', swap: true, error: false },
    { code: '...', swap: false, error: true },
  ],
});

export function Layout(props: { title: string; path: string; csrf?: string; children?: Child }) {
  const headers = props.csrf ? JSON.stringify({ [CSRF_HEADER]: props.csrf }) : undefined;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="htmx-config" content={HTMX_CONFIG} />
        <title>{`${props.title} · Rill console`}</title>
        <link rel="stylesheet" href="/assets/console.css" />
        <script src="/assets/htmx.min.js" defer></script>
        <script src="/assets/sse.min.js" defer></script>
        <script src="/assets/console.js" defer></script>
      </head>
      <body hx-headers={headers}>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header>
          <span class="brand">Rill console</span>
          {props.csrf ? (
            <nav aria-label="Pages">
              <ul>
                {PAGES.map((p) => (
                  <li>
                    <a href={p.path} aria-current={p.path === props.path ? 'page' : undefined}>
                      {p.title}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
          ) : null}
          {props.csrf ? (
            <form method="post" action="/logout" class="logout">
              <input type="hidden" name={CSRF_FIELD} value={props.csrf} />
              <button type="submit">Log out</button>
            </form>
          ) : null}
        </header>
        <main id="main">
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  );
}

/** A message for the screen reader and the eye; role=alert for failures. */
export function Flash(props: { kind: 'ok' | 'error'; text: string }) {
  return (
    <p class={`flash ${props.kind}`} role={props.kind === 'error' ? 'alert' : 'status'}>
      {props.text}
    </p>
  );
}

export function fmtRate(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  return n >= 1000 ? `${Math.round(n).toLocaleString('en-US')}/s` : `${n.toFixed(1)}/s`;
}

export function fmtInt(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : n.toLocaleString('en-US');
}

export function fmtAge(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.floor(s)} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

export function fmtTime(ms: number | Date | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  const d = ms instanceof Date ? ms : new Date(ms);
  return Number.isFinite(d.getTime()) ? d.toISOString().replace('T', ' ').replace('Z', ' UTC') : '–';
}
