/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
// The smaller pages: login, transaction lookup and timeline, live tail, wallets, bench report.
import type { Topology } from '../../core/topology/schema.ts';
import type { BenchSummary } from '../data/bench.ts';
import type { TransactionTrail } from '../data/transaction.ts';
import type { AlertRow, WalletRow } from '../data/wallets.ts';
import { Flash, fmtInt, fmtTime } from './layout.tsx';

export function LoginForm(props: { error?: string }) {
  return (
    <form method="post" action="/login" class="login">
      {props.error ? <Flash kind="error" text={props.error} /> : null}
      <p>
        The console opens with an operator key: <code>rill keys create --scope operator</code>. It is checked once; the browser then keeps only a session
        cookie.
      </p>
      <label for="key">Operator key</label>
      <input id="key" name="key" type="password" autocomplete="off" required size={60} />
      <button type="submit">Log in</button>
    </form>
  );
}

export function TransactionSearch(props: { id: string }) {
  return (
    <search>
      <form method="get" action="/transactions" class="filters">
        <label>
          Transaction id <input name="id" value={props.id} placeholder="tx_01J…" size={34} required />
        </label>
        <button type="submit">Find</button>
      </form>
    </search>
  );
}

export function TransactionView(props: { t: TransactionTrail }) {
  const t = props.t;
  const ev = t.event ?? {};
  const row = t.row ?? {};
  const field = (k: string) => String(row[k] ?? ev[k] ?? '–');
  return (
    <section aria-label="Transaction">
      <dl class="detail">
        <dt>id</dt>
        <dd>{t.id}</dd>
        <dt>status</dt>
        <dd>
          <strong class={`status ${t.status}`} id="tx-status">
            {t.status}
          </strong>
        </dd>
        <dt>merchant</dt>
        <dd>{t.merchantId ?? '–'}</dd>
        <dt>type · amount</dt>
        <dd>{`${field('type')} · ${field('amount')} ${field('currency')} (minor units)`}</dd>
        <dt>partition</dt>
        <dd>{t.partition ?? '–'}</dd>
        {row.failure_reason || row.failure_code ? (
          <>
            <dt>failure</dt>
            <dd>{[row.failure_code, row.failure_reason].filter(Boolean).map(String).join(': ')}</dd>
          </>
        ) : null}
        <dt>ledger lines</dt>
        <dd>{t.ledger.length ? t.ledger.map((l) => `${l.account} ${l.amount > 0 ? '+' : ''}${l.amount} ${l.currency}`).join(', ') : '–'}</dd>
      </dl>
      <h2>Timeline</h2>
      <ol class="timeline" id="timeline">
        {t.steps.map((s) => (
          <li class={s.kind}>
            <time>{fmtTime(s.at)}</time> <strong>{s.title}</strong> <span>{s.detail}</span>
          </li>
        ))}
      </ol>
      <p class="note">
        From what Redis still holds (stream entries within their retention, retries, dead letters) and Postgres (the sink's row and ledger lines).
      </p>
    </section>
  );
}

export function TailForm(props: { topology: Topology; topic: string; merchant: string; type: string }) {
  return (
    <form method="get" action="/tail" class="filters">
      <label>
        Topic{' '}
        <select name="topic">
          {Object.keys(props.topology.topics).map((t) => (
            <option value={t} selected={t === props.topic}>
              {t}
            </option>
          ))}
        </select>
      </label>
      <label>
        Merchant <input name="merchant" value={props.merchant} size={16} />
      </label>
      <label>
        Type <input name="type" value={props.type} size={12} placeholder="payin" />
      </label>
      <button type="submit">Tail</button>
    </form>
  );
}

export function TailTable(props: { streamUrl: string; topic: string }) {
  return (
    <div hx-ext="sse" sse-connect={props.streamUrl}>
      <p role="status" id="tail-state" sse-swap="state">
        Connecting…
      </p>
      <table class="tail">
        <caption>{`New events on ${props.topic}, newest first (the last 200 are kept)`}</caption>
        <thead>
          <tr>
            <th scope="col">entry</th>
            <th scope="col">partition · lane</th>
            <th scope="col">transaction</th>
            <th scope="col">type</th>
            <th scope="col">merchant</th>
            <th scope="col">amount</th>
            <th scope="col">status</th>
          </tr>
        </thead>
        <tbody id="tail-rows" sse-swap="events" hx-swap="afterbegin"></tbody>
      </table>
    </div>
  );
}

export function TailRow(props: { id: string; partition: number; lane: string; tx: string | undefined; event: Record<string, unknown> }) {
  const e = props.event;
  const s = (k: string) => (e[k] === undefined ? '–' : String(e[k]));
  return (
    <tr data-tx={props.tx ?? ''}>
      <td>{props.id}</td>
      <td>{`${props.partition} · ${props.lane}`}</td>
      <td>{props.tx ? <a href={`/transactions?id=${encodeURIComponent(props.tx)}`}>{props.tx}</a> : '–'}</td>
      <td>{s('type')}</td>
      <td>{s('merchant_id')}</td>
      <td class="num">{e.amount === undefined ? '–' : `${s('amount')} ${s('currency')}`}</td>
      <td>{s('status')}</td>
    </tr>
  );
}

export function WalletsView(props: {
  rows: WalletRow[];
  alerts: AlertRow[];
  merchant: string;
  lowOnly: boolean;
  offset: number;
  more: boolean;
  limit: number;
}) {
  const link = (offset: number) =>
    `/wallets?${new URLSearchParams({ merchant: props.merchant, low: props.lowOnly ? '1' : '', offset: String(offset) }).toString()}`;
  return (
    <div>
      <form method="get" action="/wallets" class="filters">
        <label>
          Merchant <input name="merchant" value={props.merchant} size={16} />
        </label>
        <label>
          <input type="checkbox" name="low" value="1" checked={props.lowOnly} /> low balances only
        </label>
        <button type="submit">Show</button>
      </form>
      <table>
        <caption>Wallet balances, lowest first (minor units)</caption>
        <thead>
          <tr>
            <th scope="col">merchant</th>
            <th scope="col">currency</th>
            <th scope="col">balance</th>
            <th scope="col">low-balance threshold</th>
            <th scope="col">updated</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((w) => (
            <tr class={w.low ? 'low' : undefined}>
              <th scope="row">{w.merchantId}</th>
              <td>{w.currency}</td>
              <td class="num">
                {fmtInt(w.balance)}
                {w.low ? <span class="badge">low</span> : null}
              </td>
              <td class="num">{fmtInt(w.threshold)}</td>
              <td>{fmtTime(w.updatedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <nav aria-label="Wallet pages" class="pager">
        {props.offset > 0 ? <a href={link(Math.max(0, props.offset - props.limit))}>Previous page</a> : null}
        {props.more ? <a href={link(props.offset + props.limit)}>Next page</a> : null}
      </nav>
      <h2>Low-balance alerts</h2>
      {props.alerts.length ? (
        <table>
          <caption>The latest wallet_low events on the alerts topic</caption>
          <thead>
            <tr>
              <th scope="col">at</th>
              <th scope="col">merchant</th>
              <th scope="col">balance</th>
              <th scope="col">threshold</th>
              <th scope="col">transaction</th>
            </tr>
          </thead>
          <tbody>
            {props.alerts.map((a) => (
              <tr>
                <td>{fmtTime(a.at)}</td>
                <th scope="row">{a.merchantId}</th>
                <td class="num">{`${fmtInt(a.balance)} ${a.currency}`}</td>
                <td class="num">{fmtInt(a.threshold)}</td>
                <td>
                  <a href={`/transactions?id=${encodeURIComponent(a.txId)}`}>{a.txId}</a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>No low-balance alerts on the alerts topic.</p>
      )}
    </div>
  );
}

export function BenchView(props: { bench: BenchSummary | undefined }) {
  const b = props.bench;
  if (!b)
    return (
      <p>
        No bench report yet: run <code>rill bench --profile standard</code>.
      </p>
    );
  const v = (x: { value: number; unit: string; label: string } | null) => (x ? `${fmtInt(Math.round(x.value))} ${x.unit}` : '–');
  return (
    <div>
      <p>{`Profile ${b.profile}, started ${b.startedAt}, ${Math.round(b.wallSeconds)} s, on ${b.machine}.`}</p>
      <table>
        <caption>Targets</caption>
        <thead>
          <tr>
            <th scope="col">comparison</th>
            <th scope="col">Rill</th>
            <th scope="col">baseline</th>
            <th scope="col">ratio</th>
            <th scope="col">target</th>
            <th scope="col">result</th>
          </tr>
        </thead>
        <tbody>
          {b.comparisons.map((c) => (
            <tr>
              <th scope="row">{c.title}</th>
              <td class="num">{v(c.rill)}</td>
              <td class="num">{c.baseline ? `${v(c.baseline)} (${c.baseline.label})` : '–'}</td>
              <td class="num">{c.ratio === null || c.ratio === undefined ? '–' : `${c.ratio.toFixed(2)}×`}</td>
              <td>{c.target?.text ?? '–'}</td>
              <td class={c.met ? 'ok' : c.met === false ? 'bad' : undefined}>{c.met === null || c.met === undefined ? 'n/a' : c.met ? 'met' : 'missed'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <figure>
        <img src="/bench/chart.svg" alt="Bench chart: throughput and latency per scenario, Rill beside its baselines" class="chart" />
        <figcaption>
          The chart from <code>bench/results/latest-standard.svg</code>; the full report is <code>bench/results/latest-standard.md</code>.
        </figcaption>
      </figure>
    </div>
  );
}
