// Requests node:http rejects before the app sees them (malformed, headers too large, bad
// Expect): answered as problem+json like every other error. And a parse error that arrives while
// a response is still being produced (bytes after a `Connection: close` request) must not
// overwrite that response: the request may have been accepted already, and a client told 400
// would send it again.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { problemType } from '../core/http/problem.ts';

const BY_CODE: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'request-header-fields-too-large', 'Request Header Fields Too Large'],
  HPE_UNEXPECTED_CONTENT_LENGTH: [400, 'invalid-request', 'Bad Request'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request-timeout', 'Request Timeout'],
};

interface InFlight {
  once(ev: string, fn: () => void): void;
  headersSent: boolean;
  req?: { complete: boolean };
}

export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const inFlight = (socket as Socket & { _httpMessage?: InFlight })._httpMessage;
    if (inFlight && !(inFlight.req && !inFlight.req.complete && !inFlight.headersSent)) {
      // let the response being produced finish, then close: never write a second answer over it
      inFlight.once('finish', () => socket.end());
      return;
    }
    // nothing answered yet, or the body itself broke (a bad chunk: the app will never get it whole);
    // the app's read then fails as the socket closes, and its late answer goes nowhere
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const [status, slug, title] = BY_CODE[err.code ?? ''] ?? [400, 'invalid-request', 'Bad Request'];
    const body = JSON.stringify({ type: problemType(slug), title, status, detail: 'The request could not be parsed as HTTP.' });
    socket.end(
      `HTTP/1.1 ${status} ${title}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
}
