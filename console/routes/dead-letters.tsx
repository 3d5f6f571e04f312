/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
// The dead-letter pages and actions: one page of them (cursor paging, filters; a text filter scans
// on, bounded, until the page is full), one entry, and redrive or purge of one, a selection or all
// matching, through core/dead-letter/dead-letters.ts like `rill dlq`, each an audit line.
import type { Hono, MiddlewareHandler } from 'hono';
import { parseSince } from '../../core/duration.ts';
import type { DeadLetter, DeadLetters, RedriveResult } from '../../core/dead-letter/dead-letters.ts';
import { ConfigError, ProblemError } from '../../core/errors.ts';
import { badRequest, notFound } from '../../core/http/problem.ts';
import type { AuditLog } from '../audit.ts';
import { page, str } from '../page.tsx';
import type { ConsoleEnv } from '../page.tsx';
import { DeadLetterDetail, DlqFilters, DlqSection } from '../views/dead-letters.tsx';
import type { DlqPage, DlqQuery } from '../views/dead-letters.tsx';

const PAGE = 50;
/** Most dead letters a text filter (or an action on all matching it) looks at. */
const SCAN_CAP = 10_000;

export function deadLetterRoutes(app: Hono<ConsoleEnv>, dlq: DeadLetters, audit: AuditLog): void {
  const dlqQuery = (q: Record<string, unknown>): DlqQuery => ({
    stage: str(q.stage),
    since: str(q.since),
    q: str(q.q).slice(0, 200),
    after: str(q.after),
  });
  const checked = (q: DlqQuery) => {
    try {
      if (q.stage) dlq.selectStages(q.stage);
      if (q.after) dlq.parseId(q.after);
      return { stage: q.stage || undefined, since: q.since ? parseSince(q.since, Date.now()) : undefined, after: q.after || undefined };
    } catch (err) {
      if (err instanceof ConfigError) throw badRequest(err.message);
      throw err;
    }
  };
  /** One page of matching dead letters; a text filter scans on (bounded) until the page is full. */
  const findPage = async (q: DlqQuery, limit = PAGE, scanCap = SCAN_CAP) => {
    const f = checked(q);
    const needle = q.q.toLowerCase();
    const matches = (d: DeadLetter) => !needle || [d.id, d.tx, d.error, d.message, d.event].some((s) => s.toLowerCase().includes(needle));
    const entries: DeadLetter[] = [];
    let after = f.after;
    let scanned = 0;
    let total: number | undefined;
    let more = false;
    for (;;) {
      const res = await dlq.list({ stage: f.stage, since: f.since, after, limit: needle ? 500 : limit });
      total ??= res.total;
      for (const d of res.entries) {
        scanned++;
        if (!matches(d)) continue;
        if (entries.length === limit) {
          more = true;
          break;
        }
        entries.push(d);
      }
      if (more || !res.more || !res.entries.length) {
        more ||= res.more && entries.length === limit;
        break;
      }
      if (scanned >= scanCap) {
        more = true;
        break;
      }
      after = res.entries[res.entries.length - 1]!.id;
    }
    return { entries, total: needle || f.since !== undefined ? undefined : total, more, scanned };
  };
  const dlqPage = async (q: DlqQuery, flash?: DlqPage['flash']): Promise<DlqPage> => ({
    query: q,
    stages: dlq.stages(),
    ...(await findPage(q)),
    audit: await audit.recent(10),
    ...(flash ? { flash } : {}),
  });
  app.get('/dead-letters', async (c) => {
    const q = dlqQuery(c.req.query());
    const p = await dlqPage(q);
    return page(
      c,
      'Dead letters',
      '/dead-letters',
      c.get('session').csrf,
      <>
        <DlqFilters query={q} stages={p.stages} />
        <DlqSection page={p} />
      </>,
    );
  });
  app.get('/dead-letters/show', async (c) => {
    const id = c.req.query('id') ?? '';
    let d: DeadLetter | undefined;
    try {
      d = await dlq.get(id);
    } catch (err) {
      if (err instanceof ConfigError) throw badRequest(err.message);
      throw err;
    }
    if (!d) throw notFound(`No dead letter ${id.slice(0, 200)} (it may have been redriven or purged).`);
    return page(c, `Dead letter ${d.id}`, '/dead-letters', c.get('session').csrf, <DeadLetterDetail d={d} csrf={c.get('session').csrf} />);
  });

  /** The ids an action is for: one (`id`), the ticked ones (`ids`), or all matching (`all`). */
  const selection = async (body: Record<string, unknown>, q: DlqQuery): Promise<{ ids: string[] } | { all: true; stage?: string; since?: number }> => {
    const one = str(body.id);
    if (one) return { ids: [one] };
    if (str(body.all) === '1') {
      const f = checked({ ...q, after: '' });
      if (!q.q) return { all: true, ...(f.stage ? { stage: f.stage } : {}), ...(f.since !== undefined ? { since: f.since } : {}) };
      // a text filter: exactly the matching dead letters (bounded)
      const found = await findPage({ ...q, after: '' }, SCAN_CAP, SCAN_CAP);
      return { ids: found.entries.map((d) => d.id) };
    }
    const ids = ([] as unknown[])
      .concat(body.ids ?? [])
      .map(str)
      .filter(Boolean);
    if (!ids.length) throw badRequest('Select at least one dead letter.');
    return { ids };
  };
  const act =
    (action: 'redrive' | 'purge'): MiddlewareHandler<ConsoleEnv> =>
    async (c) => {
      const body = await c.req.parseBody({ all: true });
      const q = dlqQuery(body);
      const actor = c.get('session').keyId;
      let flash: DlqPage['flash'];
      try {
        const sel = await selection(body, q);
        const what =
          'ids' in sel
            ? sel.ids.length === 1
              ? sel.ids[0]!
              : `${sel.ids.length} selected`
            : `all${sel.stage ? ` of ${sel.stage}` : ''}${sel.since !== undefined ? ` since ${new Date(sel.since).toISOString()}` : ''}`;
        if (action === 'redrive') {
          const res = await dlq.redrive(sel);
          await audit.record(
            actor,
            'redrive',
            `${what}: ${res.redriven} redriven${res.missing.length ? `, ${res.missing.length} missing` : ''}${res.failed.length ? `, ${res.failed.length} failed` : ''}`,
          );
          flash = redriveFlash(res);
        } else {
          const n =
            'ids' in sel
              ? await dlq.purge({ ids: sel.ids })
              : sel.since === undefined
                ? await dlq.purge(sel.stage ? { stage: sel.stage } : {})
                : await dlq.purge({ ids: (await findPage({ ...q, after: '' }, SCAN_CAP, SCAN_CAP)).entries.map((d) => d.id) });
          await audit.record(actor, 'purge', `${what}: ${n} purged`);
          flash = { kind: 'ok', text: `Purged ${plural(n)}.` };
        }
      } catch (err) {
        if (err instanceof ConfigError) flash = { kind: 'error', text: err.message };
        else if (err instanceof ProblemError) flash = { kind: 'error', text: err.problem.detail };
        else throw err;
      }
      if (!c.req.header('hx-request')) return c.redirect(`/dead-letters?${new URLSearchParams({ stage: q.stage, since: q.since, q: q.q }).toString()}`, 303);
      return c.html(String(<DlqSection page={await dlqPage({ ...q, after: '' }, flash)} />), flash?.kind === 'error' ? 400 : 200);
    };
  app.post('/dead-letters/redrive', act('redrive'));
  app.post('/dead-letters/purge', act('purge'));
}

function redriveFlash(res: RedriveResult): DlqPage['flash'] {
  const parts = [`Redrove ${plural(res.redriven)}.`];
  if (res.missing.length) parts.push(`${res.missing.length} no longer there (redriven or purged already).`);
  if (res.failed.length) parts.push(`${res.failed.length} refused: ${res.failed.map((f) => `${f.id} (${f.error})`).join(', ')}.`);
  return { kind: res.failed.length ? 'error' : 'ok', text: parts.join(' ') };
}

function plural(n: number): string {
  return `${n} dead letter${n === 1 ? '' : 's'}`;
}
