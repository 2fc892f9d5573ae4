import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import type { WebSocketConstructor } from '../relay-link.js';

/** Most characters of a refused upgrade's body kept in the cause. */
const MAX_REASON_CHARS = 300;
/** How long to wait for that body before giving up on it. */
const REASON_WAIT_MS = 2000;

/**
 * The cause of a refused WebSocket upgrade: status, status text and the relay's reason from the body
 * (Roost answers `429` with `rate-limited: …` and `Retry-After`), on one line.
 */
export function describeRefusedUpgrade(status: number | undefined, statusText: string | undefined, body: string, retryAfter?: string): string {
  const reason = body.replace(/\s+/g, ' ').trim().slice(0, MAX_REASON_CHARS);
  let text = `Unexpected server response: ${status ?? '?'}${statusText ? ` ${statusText}` : ''}`;
  if (reason) text += `: ${reason}`;
  if (retryAfter) text += ` (retry after ${retryAfter.slice(0, 40)})`;
  return text;
}

/**
 * `ws` with one addition: when the server refuses the upgrade with an HTTP answer, the error the link
 * sees carries the status text and the body's reason rather than only `Unexpected server response: 429`.
 */
class ReasonedWebSocket extends WebSocket {
  #cause: string | undefined;

  constructor(url: string) {
    super(url);
    this.on('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        const retryAfter = res.headers['retry-after'];
        this.#cause = describeRefusedUpgrade(res.statusCode, res.statusMessage, body, Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
        res.destroy();
        this.terminate();
      };
      const timer = setTimeout(finish, REASON_WAIT_MS);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.length >= MAX_REASON_CHARS) finish();
      });
      res.on('end', finish);
      res.on('error', finish);
      res.on('close', finish);
    });
  }

  // terminate() during the handshake reports "closed before the connection was established": say why instead.
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error' && this.#cause !== undefined) args = [new Error(this.#cause)];
    return super.emit(event, ...args);
  }
}

/** The `ws` package as the client's WebSocket, reading the reason of a refused upgrade. */
export const NodeWebSocket = ReasonedWebSocket as unknown as WebSocketConstructor;
