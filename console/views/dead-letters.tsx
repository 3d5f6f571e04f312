/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
// Dead letters: a filter form, one page of them (oldest first, paged server-side by cursor), and
// actions on one, a selection or all (each confirmed, each an audit line), then the audit trail.
import { deadLetteredAt } from '../../core/dead-letter/record.ts';
import type { DeadLetter } from '../../core/dead-letter/record.ts';
import type { AuditEntry } from '../audit.ts';
import { Flash, fmtInt, fmtTime } from './layout.tsx';

export interface DlqQuery {
  stage: string;
  since: string;
  q: string;
  after: string;
}

export interface DlqPage {
  query: DlqQuery;
  stages: string[];
  entries: DeadLetter[];
  total: number | undefined;
  more: boolean;
  /** Entries looked at to fill the page (a text filter may skip many). */
  scanned: number;
  audit: AuditEntry[];
  flash?: { kind: 'ok' | 'error'; text: string };
}

const qs = (q: Partial<DlqQuery>) => new URLSearchParams(Object.entries(q).filter(([, v]) => v !== undefined && v !== '') as [string, string][]).toString();

export function DlqFilters(props: { query: DlqQuery; stages: string[] }) {
  const q = props.query;
  return (
    <form method="get" action="/dead-letters" class="filters">
      <label>
        Stage{' '}
        <select name="stage">
          <option value="">every stage</option>
          {props.stages.map((s) => (
            <option value={s} selected={s === q.stage}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <label>
        Since <input name="since" value={q.since} placeholder="10m, 24h or RFC 3339" size={16} />
      </label>
      <label>
        Contains <input name="q" value={q.q} placeholder="tx id, merchant, error" size={22} />
      </label>
      <button type="submit">Filter</button>
    </form>
  );
}

export function DlqSection(props: { page: DlqPage }) {
  const p = props.page;
  const q = p.query;
  const scope = q.stage ? `of ${q.stage}` : 'of every stage';
  const all = p.total === undefined ? 'all matching' : `all ${fmtInt(p.total)}`;
  return (
    <section id="dlq" aria-live="polite">
      {p.flash ? <Flash kind={p.flash.kind} text={p.flash.text} /> : null}
      <form id="dlq-form" method="post" action="/dead-letters/redrive">
        <input type="hidden" name="stage" value={q.stage} />
        <input type="hidden" name="since" value={q.since} />
        <input type="hidden" name="q" value={q.q} />
        <input type="hidden" name="after" value={q.after} />
        <div class="actions">
          <button type="button" hx-post="/dead-letters/redrive" hx-target="#dlq" hx-swap="outerHTML" hx-confirm="Redrive the selected dead letters?">
            Redrive selected
          </button>
          <button type="button" hx-post="/dead-letters/purge" hx-target="#dlq" hx-swap="outerHTML" hx-confirm="Delete the selected dead letters for good?">
            Purge selected
          </button>
          <button
            type="button"
            hx-post="/dead-letters/redrive"
            hx-vals='{"all":"1"}'
            hx-target="#dlq"
            hx-swap="outerHTML"
            hx-confirm={`Redrive ${all} dead letters ${scope}?`}
          >
            {`Redrive all ${scope}`}
          </button>
          <button
            type="button"
            class="danger"
            hx-post="/dead-letters/purge"
            hx-vals='{"all":"1"}'
            hx-target="#dlq"
            hx-swap="outerHTML"
            hx-confirm={`Delete ${all} dead letters ${scope} for good?`}
          >
            {`Purge all ${scope}`}
          </button>
        </div>
        <table class="dlq">
          <caption>
            {p.total === undefined ? `${p.entries.length} shown` : `${p.entries.length} shown of ${fmtInt(p.total)} dead letters ${scope}`}
            {q.q ? ` containing “${q.q}” (${fmtInt(p.scanned)} looked at)` : ''}
          </caption>
          <thead>
            <tr>
              <th scope="col">
                <input type="checkbox" id="select-all" aria-label="Select every dead letter on this page" />
              </th>
              <th scope="col">dead letter</th>
              <th scope="col">transaction</th>
              <th scope="col">error</th>
              <th scope="col">attempts</th>
              <th scope="col">dead-lettered</th>
              <th scope="col">actions</th>
            </tr>
          </thead>
          <tbody>
            {p.entries.map((d) => (
              <tr data-id={d.id}>
                <td>
                  <input type="checkbox" name="ids" value={d.id} aria-label={`Select ${d.id}`} />
                </td>
                <th scope="row">
                  <a href={`/dead-letters/show?id=${encodeURIComponent(d.id)}`}>{d.id}</a>
                </th>
                <td>
                  <a href={`/transactions?id=${encodeURIComponent(d.tx)}`}>{d.tx}</a>
                </td>
                <td>
                  <strong>{d.error}</strong> {d.message}
                </td>
                <td class="num">{d.attempts}</td>
                <td>{fmtTime(deadLetteredAt(d.entryId))}</td>
                <td class="row-actions">
                  <button
                    type="button"
                    hx-post="/dead-letters/redrive"
                    hx-params="id,stage,since,q,after"
                    hx-vals={JSON.stringify({ id: d.id })}
                    hx-target="#dlq"
                    hx-swap="outerHTML"
                    hx-confirm={`Redrive ${d.id}?`}
                    aria-label={`Redrive ${d.id}`}
                  >
                    Redrive
                  </button>
                  <button
                    type="button"
                    hx-post="/dead-letters/purge"
                    hx-params="id,stage,since,q,after"
                    hx-vals={JSON.stringify({ id: d.id })}
                    hx-target="#dlq"
                    hx-swap="outerHTML"
                    hx-confirm={`Delete ${d.id} for good?`}
                    aria-label={`Purge ${d.id}`}
                  >
                    Purge
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </form>
      {!p.entries.length ? <p class="empty">No dead letters match.</p> : null}
      <nav aria-label="Dead-letter pages" class="pager">
        {q.after ? <a href={`/dead-letters?${qs({ ...q, after: '' })}`}>First page</a> : null}
        {p.more && p.entries.length ? <a href={`/dead-letters?${qs({ ...q, after: p.entries[p.entries.length - 1]!.id })}`}>Next page</a> : null}
      </nav>
      <h2>Audit trail</h2>
      {p.audit.length ? (
        <ul class="audit">
          {p.audit.map((a) => (
            <li>{`${fmtTime(a.at)} · key ${a.actor} · ${a.action} · ${a.detail}`}</li>
          ))}
        </ul>
      ) : (
        <p>No console actions yet.</p>
      )}
    </section>
  );
}

export function DeadLetterDetail(props: { d: DeadLetter; csrf: string }) {
  const d = props.d;
  let pretty = d.event;
  try {
    pretty = JSON.stringify(JSON.parse(d.event), null, 2);
  } catch {
    // unreadable: shown as stored, which may be why it was dead-lettered
  }
  const rows: [string, string][] = [
    ['id', d.id],
    ['stage', d.stage],
    ['transaction', d.tx],
    ['error', d.error],
    ['message', d.message],
    ['attempts', String(d.attempts)],
    ['origin', `${d.originStream} ${d.originId}`],
    ['first failure', fmtTime(d.firstFailedAt)],
    ['last failure', fmtTime(d.lastFailedAt)],
    ['dead-lettered', fmtTime(deadLetteredAt(d.entryId))],
    ['traceparent', d.traceparent ?? '–'],
  ];
  return (
    <div>
      <dl class="detail">
        {rows.map(([k, v]) => (
          <>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </>
        ))}
      </dl>
      <h2>Event</h2>
      <pre>{pretty}</pre>
      <p>
        <a href={`/dead-letters?stage=${encodeURIComponent(d.stage)}`}>Back to the dead letters of {d.stage}</a>
      </p>
    </div>
  );
}
