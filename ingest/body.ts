// Request body guards for JSON routes: media type (415), size (413, chunked bodies included) and
// reading the bytes.
//
// Not hono's bodyLimit: it touches the body stream even when Content-Length already decides, and
// with @hono/node-server 2.1 a touched-but-unread body is not drained, so the next request on that
// keep-alive connection fails ("other side closed"). Here a declared length is judged from the
// header alone, and an error answer to an upload we did not read closes the connection.
import type { Context, MiddlewareHandler } from 'hono';
import { ProblemError } from '../core/errors.ts';
import { badRequest, payloadTooLarge, unsupportedMediaType } from '../core/http/problem.ts';

const JSON_MEDIA = ['application/json'] as const;

/** Only `application/json` (UTF-8), not compressed: anything else is 415 before we read a byte. */
export function requireJson(): MiddlewareHandler {
  return async (c, next) => {
    acceptedMediaType(c.req.header('content-type'), c.req.header('content-encoding'), JSON_MEDIA, 'JSON');
    await next();
  };
}

/**
 * Which of `accepted` (lower case, preferred first) the body is, by Content-Type; 415 for anything
 * else, a charset other than UTF-8 or a compressed body. `what` names the bodies in that answer.
 */
export function acceptedMediaType<M extends string>(
  contentType: string | undefined,
  contentEncoding: string | undefined,
  accepted: readonly M[],
  what: string,
): M {
  const [media, ...params] = (contentType ?? '').split(';').map((s) => s.trim().toLowerCase());
  const found = accepted.find((m) => m === media);
  if (found === undefined) {
    throw unsupportedMediaType(`Content-Type must be ${accepted.join(' or ')}${contentType ? `, not ${truncate(contentType)}` : ''}.`, {
      headers: acceptPost(accepted),
    });
  }
  const charset = params
    .find((p) => p.startsWith('charset='))
    ?.slice('charset='.length)
    .replace(/"/g, '');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw unsupportedMediaType(`${what} bodies must be UTF-8.`, { headers: acceptPost(accepted) });
  }
  if (contentEncoding !== undefined && contentEncoding.trim().toLowerCase() !== 'identity') {
    throw unsupportedMediaType('Compressed request bodies are not accepted.', { headers: acceptPost(accepted) });
  }
  return found;
}

function acceptPost(accepted: readonly string[]): Record<string, string> {
  return { 'accept-post': accepted.join(', ') };
}

/** The body's bytes, at most `maxBytes` of them; 413 past that, also without Content-Length. */
export async function readBody(c: Context, maxBytes: number): Promise<Uint8Array> {
  try {
    return await readBodyBytes(c, maxBytes);
  } catch (err) {
    // the client hung up mid-upload: its problem, not an outage (no 503, no error log)
    if (!(err instanceof ProblemError) && (c.req.raw.signal.aborted || isAbort(err))) {
      throw badRequest('The client closed the connection before the body was complete.');
    }
    if (String((err as { code?: unknown }).code ?? '').startsWith('HPE_')) throw badRequest('The request body is not valid HTTP (chunked encoding).');
    throw err;
  }
}

function isAbort(err: unknown): boolean {
  const e = err as { code?: string; name?: string; message?: string };
  return e.code === 'ECONNRESET' || e.code === 'ERR_STREAM_PREMATURE_CLOSE' || e.name === 'AbortError' || e.message === 'aborted';
}

async function readBodyBytes(c: Context, maxBytes: number): Promise<Uint8Array> {
  const declared = c.req.header('content-length');
  if (declared !== undefined && !c.req.header('transfer-encoding')) {
    // Node's parser never delivers more than Content-Length, so the header is the whole check
    if (Number(declared) > maxBytes) throw tooLarge(maxBytes);
    return new Uint8Array(await c.req.arrayBuffer());
  }
  const stream = c.req.raw.body;
  if (!stream) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    // stop reading, but do not cancel: that would destroy the socket before the 413 is sent
    if (size > maxBytes) throw tooLarge(maxBytes);
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/**
 * Error answers to uploads that may be left unread (chunked, or larger than we read) carry
 * `Connection: close`: the client then sends its next request on a fresh connection instead of
 * behind the rest of an upload nobody will read.
 */
export function closeAfterUnreadUpload(maxBytes: number): MiddlewareHandler {
  return async (c, next) => {
    await next();
    if (c.res.status < 400) return;
    const declared = c.req.header('content-length');
    const unbounded = c.req.header('transfer-encoding') !== undefined;
    if (unbounded || (declared !== undefined && Number(declared) > maxBytes)) c.res.headers.set('connection', 'close');
  };
}

function tooLarge(maxBytes: number) {
  return payloadTooLarge(`The request body exceeds ${maxBytes} bytes.`, { headers: { connection: 'close' } });
}

function truncate(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}
