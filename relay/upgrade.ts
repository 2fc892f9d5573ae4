import type { IncomingMessage, Server } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { type Duplex, Writable } from 'node:stream';
import proxyAddr from '@fastify/proxy-addr';
import type { WebSocket, WebSocketServer } from 'ws';
import type { UpgradeRefusal } from './operator/index.js';

/**
 * The relay's WebSocket accept path. An upgrade of `GET /` (the relay's one WebSocket route) goes from the
 * HTTP server's 'upgrade' event straight to `ws`, after the same connection gate fastify's `onRequest` hook
 * runs for it: fastify's per-request objects, hooks and routing cost about a tenth of a reconnect storm's
 * CPU (connect, REQ, 20 events, EOSE, close; docs/performance.md) and kept an HTTP response attached to
 * every open socket. Any other upgrade (another path or method) goes to fastify as before.
 */

/** The client address of a request, as fastify's `request.ip` gives it under the same `trustProxy` setting. */
export type ClientAddress = (req: IncomingMessage) => string;

/**
 * `request.ip` without a fastify request: the socket's address, or with `trustProxy` the nearest address
 * of `X-Forwarded-For` not behind a trusted proxy (the same `@fastify/proxy-addr` walk fastify makes).
 */
export function createClientAddress(trustProxy: boolean | string | ((address: string, hop: number) => boolean)): ClientAddress {
  if (trustProxy === false) return (req) => req.socket.remoteAddress ?? '';
  const trust =
    typeof trustProxy === 'function' ? trustProxy : trustProxy === true ? () => true : proxyAddr.compile(trustProxy.split(',').map((s) => s.trim()));
  return (req) => {
    const all = proxyAddr.all(req, trust);
    return all[all.length - 1] ?? '';
  };
}

/** Whether a request target is the relay's WebSocket route: `/`, with or without a query string. */
export function isRelayPath(url: string | undefined): boolean {
  return url === '/' || url?.startsWith('/?') === true;
}

/** Answers a refused upgrade in plain HTTP and closes the socket (the client never gets a WebSocket). */
export function refuseUpgrade(socket: Duplex, refusal: { status: number; body: string; retryAfter?: string }): void {
  const body = Buffer.from(refusal.body);
  const head = [
    `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? ''}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${body.length}`,
    ...(refusal.retryAfter ? [`Retry-After: ${refusal.retryAfter}`] : []),
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), body]));
}

/** What the relay's upgrade path needs. */
export interface UpgradePath {
  server: Server;
  /** A `ws` server in `noServer` mode with the relay's socket options. */
  wss: WebSocketServer;
  clientAddress: ClientAddress;
  /** The connection gate (blocked addresses, the per-IP connection rate). */
  admit(ip: string): UpgradeRefusal | undefined;
  /** Sets up an accepted connection (the same function fastify's WebSocket route calls). */
  accept(socket: WebSocket, ip: string, tcp: Socket): void;
  /** While true, new upgrades are answered 503 (the relay is shutting down). */
  closing(): boolean;
}

/**
 * Takes over the server's 'upgrade' event: relay-route upgrades are accepted here, any other goes to the
 * listeners already registered (@fastify/websocket's, which routes it through fastify). Returns a function
 * that puts the previous listeners back.
 */
export function installUpgradePath(p: UpgradePath): () => void {
  const previous = p.server.listeners('upgrade') as Array<(req: IncomingMessage, socket: Duplex, head: Buffer) => void>;
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (req.method !== 'GET' || !isRelayPath(req.url)) {
      for (const l of previous) l.call(p.server, req, socket, head);
      return;
    }
    // Node removed its own error listener before the event; a reset before `ws` adds its own is not an error.
    socket.on('error', destroyOnError);
    if (p.closing()) {
      refuseUpgrade(socket, { status: 503, body: 'error: the relay is shutting down\n' });
      return;
    }
    const ip = p.clientAddress(req);
    const refused = p.admit(ip);
    if (refused) {
      refuseUpgrade(socket, refused);
      return;
    }
    socket.removeListener('error', destroyOnError);
    // The upgrade event of an HTTP server (not an HTTP/2 one) carries a net.Socket.
    p.wss.handleUpgrade(req, socket, head, (ws) => p.accept(ws, ip, socket as Socket));
  };
  for (const l of previous) p.server.removeListener('upgrade', l);
  p.server.on('upgrade', onUpgrade);
  return () => {
    p.server.removeListener('upgrade', onUpgrade);
  };
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}

/**
 * `end()` without arguments on a stream that has already finished or been destroyed does nothing observable in
 * Node (the ERR_STREAM_ALREADY_FINISHED it makes goes only to a callback, and there is none), but making that
 * error captures a full stack trace. `ws` calls it two or three times on every closed connection (its frame
 * parser ends itself after a close frame and is ended again on the socket's 'end' and 'close'; the socket is
 * ended after the close frame and again on 'end'): about 5 % of a reconnect storm's CPU. This `end` skips
 * exactly that case and otherwise is the stream's own.
 */
function endUnlessFinished(this: Writable, ...args: unknown[]): Writable {
  if (args.length === 0) {
    const state = (this as unknown as { _writableState?: { finished: boolean; destroyed: boolean } })._writableState;
    if (state && (state.finished || state.destroyed)) return this;
  }
  return (Object.getPrototypeOf(this) as { end(...a: unknown[]): Writable }).end.apply(this, args);
}

/** Makes repeated `end()` calls on a connection's TCP socket and `ws` frame parser free (see endUnlessFinished). */
export function quietRepeatedEnds(ws: WebSocket, tcp: Socket): void {
  (tcp as unknown as { end: typeof endUnlessFinished }).end = endUnlessFinished;
  // `_receiver` is ws's frame parser (a Writable); left alone if a version of ws names it otherwise.
  const receiver = (ws as unknown as { _receiver?: unknown })._receiver;
  if (receiver instanceof Writable) (receiver as unknown as { end: typeof endUnlessFinished }).end = endUnlessFinished;
}
