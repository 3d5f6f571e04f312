// Raw HTTP/1.1 over a TCP socket: what no well-behaved client library would send. Request lines,
// header lines and body framing are generated as bytes; answers are parsed back from the socket.
import { connect } from 'node:net';
import fc from 'fast-check';
import type { AuthSpec, KeyName } from './arbitraries.ts';
import { authArb, bodyArb, headerName, headerValue, methodArb, routePathArb, strayPathArb } from './arbitraries.ts';
import type { RouteInfo } from './harness.ts';
import type { KeyRing } from './runner.ts';
import { authHeader } from './runner.ts';

type Framing =
  | { kind: 'length' }
  | { kind: 'length-off'; delta: number }
  | { kind: 'none' }
  | { kind: 'chunked'; pieces: number; ext: string; last: string }
  | { kind: 'chunked-bad'; size: string }
  | { kind: 'length+chunked' }
  | { kind: 'two-lengths'; other: number }
  | { kind: 'odd-length'; value: string }
  | { kind: 'odd-te'; value: string };

export interface RawRequest {
  method: string;
  target: string;
  version: string;
  auth: AuthSpec;
  contentType: string | undefined;
  lines: string[];
  framing: Framing;
  body: Uint8Array;
  eol: string;
  pipelined: boolean;
}

const TARGET_ODDITIES = [
  '*',
  '',
  ' ',
  'http://ingest.test/healthz',
  'https://evil.example/v1/transactions',
  '//evil.example/v1/transactions',
  'healthz',
  '/v1/transactions\u0000',
  '/v1/trans actions',
  '/v1/transactions?\u00ff',
  '/v1/\u00e9',
  '/v1/%',
  '/\u{1F4B3}',
  '/v1/transactions\\..\\metrics',
  '/v1/transactions#x',
];

const rawLine: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(headerName, headerValue(80)).map(([k, v]) => `${k}: ${v}`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'NoColonHere',
      ' Leading-Space: x',
      'X-Folded: a\r\n  continued',
      'X-Space : y',
      'Bad Name: x',
      'X-Nul: a\u0000b',
      'X-Del: \u007f',
      ': empty-name',
      'X-Empty:',
      'Host: a',
      'Host: [::1',
      'Host: a, b',
      'Host:',
      'Expect: 100-continue',
      'Expect: something-else',
      'Connection: keep-alive, Upgrade',
      'Upgrade: websocket',
      'Upgrade: h2c',
      'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA',
      'Transfer-Encoding: identity',
      'Content-Encoding: gzip',
      'Idempotency-Key: k1',
      'Idempotency-Key: k1',
      'Authorization: Bearer x',
      'Content-Type: text/plain',
      'X-Http-Method-Override: DELETE',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => `X-Utf8: ${s}`) },
  { weight: 1, arbitrary: fc.integer({ min: 8_000, max: 40_000 }).map((n) => `X-Big: ${'b'.repeat(n)}`) },
  { weight: 1, arbitrary: fc.integer({ min: 50, max: 200 }).map((n) => Array.from({ length: n }, (_, i) => `X-Many-${i}: ${'m'.repeat(100)}`).join('\r\n')) },
);

const framingArb: fc.Arbitrary<Framing> = fc.oneof(
  { weight: 24, arbitrary: fc.constant<Framing>({ kind: 'length' }) },
  { weight: 1, arbitrary: fc.integer({ min: -20, max: -1 }).map((delta): Framing => ({ kind: 'length-off', delta })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20 }).map((delta): Framing => ({ kind: 'length-off', delta })) }, // the body ends early: the client gives up
  { weight: 1, arbitrary: fc.constant<Framing>({ kind: 'none' }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('chunked' as const),
      pieces: fc.integer({ min: 1, max: 5 }),
      ext: fc.constantFrom('', '', ';a=b', ';x', ' ; y="z"'),
      last: fc.constantFrom('0\r\n\r\n', '0\r\n\r\n', '0\r\nX-Trailer: t\r\n\r\n', '000\r\n\r\n', ''),
    }),
  },
  { weight: 1, arbitrary: fc.constantFrom('zz', '-1', 'fffffffffffffffff', ' 5', '5 ', '0x5', '').map((size): Framing => ({ kind: 'chunked-bad', size })) },
  { weight: 1, arbitrary: fc.constant<Framing>({ kind: 'length+chunked' }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 100 }).map((other): Framing => ({ kind: 'two-lengths', other })) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('-1', 'abc', '1e3', '99999999999999999999', '0x10', ' 10', '10, 10', '+10')
      .map((value): Framing => ({ kind: 'odd-length', value })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('gzip, chunked', 'chunked, identity', 'Chunked', ' chunked', 'chunked;q=1', 'x-custom')
      .map((value): Framing => ({ kind: 'odd-te', value })),
  },
);

export function rawRequestArb(routes: readonly RouteInfo[], topics: readonly string[]): fc.Arbitrary<RawRequest> {
  const oddMethod = fc.constantFrom('CONNECT', 'TRACE', 'GE T', 'G\u00c9T', '', 'POST\u0000', 'PRI');
  const one = (method: fc.Arbitrary<string>, target: fc.Arbitrary<string>): fc.Arbitrary<RawRequest> =>
    fc.record({
      method: fc.oneof({ weight: 16, arbitrary: method }, { weight: 1, arbitrary: oddMethod }),
      target,
      version: fc.oneof(
        { weight: 24, arbitrary: fc.constant('HTTP/1.1') },
        { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'http/1.1', 'HTTP/1', 'HTTP/0.9', '', 'HTTP/1.1 extra') },
      ),
      auth: authArb,
      contentType: fc.oneof(
        { weight: 6, arbitrary: fc.constant('application/json') },
        { weight: 1, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: headerValue(60) },
      ),
      lines: fc.oneof({ weight: 2, arbitrary: fc.constant([] as string[]) }, { weight: 3, arbitrary: fc.array(rawLine, { minLength: 1, maxLength: 2 }) }),
      framing: framingArb,
      body: fc.oneof({ weight: 4, arbitrary: bodyArb }, { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) }),
      eol: fc.oneof({ weight: 40, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '\n\r') }),
      pipelined: fc.boolean(),
    });
  const anyMethod = methodArb();
  return fc.oneof(
    ...routes.map((r) => ({ weight: 3, arbitrary: one(methodArb(r.method), routePathArb(r, topics)) })),
    { weight: 1, arbitrary: one(anyMethod, strayPathArb) },
    { weight: 1, arbitrary: one(anyMethod, fc.constantFrom(...TARGET_ODDITIES)) },
  );
}

/**
 * The bytes on the wire, and whether the request is complete (a server that waits for the rest is
 * right to wait: the client then gives up). The tap key is never used on HEAD (see runner.ts).
 */
export function encodeRaw(r: RawRequest, keys: KeyRing): { bytes: Buffer; complete: boolean } {
  const auth = r.method.toUpperCase() === 'HEAD' && r.auth.kind === 'key' && r.auth.key === 'tap' ? { ...r.auth, key: 'a' as KeyName } : r.auth;
  const head: string[] = [`${r.method} ${r.target}${r.version ? ` ${r.version}` : ''}`, 'Host: ingest.test'];
  const a = authHeader(auth, keys);
  if (a !== undefined) head.push(`Authorization: ${a}`);
  if (r.contentType !== undefined) head.push(`Content-Type: ${r.contentType}`);
  head.push(...r.lines);
  const body = Buffer.from(r.body);
  let payload = body;
  let complete = true;
  const f = r.framing;
  switch (f.kind) {
    case 'length':
      head.push(`Content-Length: ${body.length}`);
      break;
    case 'length-off':
      head.push(`Content-Length: ${Math.max(0, body.length + f.delta)}`);
      complete = f.delta <= 0 || body.length + f.delta <= 0;
      break;
    case 'none':
      break;
    case 'chunked': {
      head.push('Transfer-Encoding: chunked');
      const parts: Buffer[] = [];
      const step = Math.max(1, Math.ceil(body.length / f.pieces));
      for (let i = 0; i < body.length; i += step) {
        const c = body.subarray(i, i + step);
        parts.push(Buffer.from(`${c.length.toString(16)}${f.ext}\r\n`), c, Buffer.from('\r\n'));
      }
      parts.push(Buffer.from(f.last));
      payload = Buffer.concat(parts);
      complete = f.last !== '';
      break;
    }
    case 'chunked-bad':
      head.push('Transfer-Encoding: chunked');
      payload = Buffer.concat([Buffer.from(`${f.size}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
      complete = false; // a parser that reads a size we did not mean waits for bytes that never come
      break;
    case 'length+chunked':
      head.push(`Content-Length: ${body.length}`, 'Transfer-Encoding: chunked');
      break;
    case 'two-lengths':
      head.push(`Content-Length: ${body.length}`, `Content-Length: ${f.other}`);
      complete = f.other <= body.length;
      break;
    case 'odd-length':
      head.push(`Content-Length: ${f.value}`);
      complete = false;
      break;
    case 'odd-te':
      head.push(`Transfer-Encoding: ${f.value}`);
      complete = false;
      break;
  }
  // the last request on the connection asks to close it (data after `Connection: close` is a
  // case of its own: 'an accepted event is never answered with an error' in ingest-fuzz.test.ts)
  if (!r.pipelined) head.push('Connection: close');
  // UTF-8 on the wire: non-ASCII in a request line or header is raw bytes to the parser
  const bytes = [Buffer.from(head.join(r.eol) + r.eol + r.eol, 'utf8'), payload];
  if (r.pipelined) bytes.push(Buffer.from('GET /healthz HTTP/1.1\r\nHost: ingest.test\r\nConnection: close\r\n\r\n'));
  return { bytes: Buffer.concat(bytes), complete: complete && r.eol === '\r\n' };
}

export interface RawAnswer {
  status: number;
  headers: Headers;
  body: string;
}

/** Writes the bytes, reads until the server closes (or `waitMs`), and parses every answer in order. */
export function sendRaw(
  port: number,
  bytes: Buffer,
  waitMs: number,
  head = false,
): Promise<{ answers: RawAnswer[]; closedByServer: boolean; raw: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closedByServer = false;
    let error: string | undefined;
    let sse = false;
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // an event stream does not end: having seen its head is enough
      if (!sse && /content-type: text\/event-stream/i.test(Buffer.concat(chunks).toString('latin1'))) {
        sse = true;
        setTimeout(() => socket.destroy(), 20);
      }
    });
    socket.on('end', () => {
      closedByServer = true;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') closedByServer = true;
      else error = err.message;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks);
      resolve({ answers: parseAnswers(raw, head), closedByServer, raw, ...(error ? { error } : {}) });
    });
    socket.write(bytes, () => undefined);
  });
}

/** HTTP/1.x answers from bytes (Content-Length, chunked, or until the end), 1xx skipped. */
export function parseAnswers(raw: Buffer, firstIsHead = false): RawAnswer[] {
  const out: RawAnswer[] = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf('\r\n\r\n', at, 'latin1');
    if (end < 0) break;
    const lines = raw.subarray(at, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!m) break;
    const headers = new Headers();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
    }
    at = end + 4;
    const status = Number(m[1]);
    let body: Buffer = Buffer.alloc(0);
    if (status >= 200 && status !== 204 && status !== 304 && !(firstIsHead && out.length === 0)) {
      const len = headers.get('content-length');
      if (len !== null) {
        body = raw.subarray(at, at + Number(len));
        at += Number(len);
      } else if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
        const parts: Buffer[] = [];
        for (;;) {
          const eol = raw.indexOf('\r\n', at, 'latin1');
          if (eol < 0) break;
          const size = parseInt(raw.subarray(at, eol).toString('latin1'), 16);
          at = eol + 2;
          if (!size) {
            at += 2;
            break;
          }
          parts.push(raw.subarray(at, at + size));
          at += size + 2;
        }
        body = Buffer.concat(parts);
      } else {
        body = raw.subarray(at);
        at = raw.length;
      }
    }
    if (status >= 200) out.push({ status, headers, body: body.toString('utf8') });
  }
  return out;
}
