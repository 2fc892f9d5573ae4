import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { makeReason } from '../../shared/reason.js';
import { logClientMistake } from '../client-mistakes.js';
import { countRejection, type RelayStats } from '../context.js';
import { normalizeIp, type RateLimiter } from '../policies/rate-limit.js';

/** What the HTTP limits need. */
export interface HttpLimitsOptions {
  /** Largest request body in bytes (also fastify's `bodyLimit`, which cuts chunked bodies). */
  maxBodyBytes: number;
  /** The relay's rate limiter (its HTTP bucket); undefined when rate limits are off. */
  limiter: RateLimiter | undefined;
  stats: RelayStats;
}

/** The media type of a Content-Type header, lower-cased and without parameters ('' when absent). */
export function getMediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Whether a request announces a body: a Content-Length over 0 or a Transfer-Encoding (chunked). */
export function hasRequestBody(headers: IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}

/** Whether a request is a WebSocket upgrade (limited by the connection gate, not here). */
export function isUpgradeRequest(headers: IncomingHttpHeaders): boolean {
  return (headers.upgrade ?? '').toLowerCase() === 'websocket';
}

/**
 * Answers a refused request at once in plain text. With a body still unread the connection is closed after the
 * answer (`Connection: close`), so Node does not go on reading and discarding what the client sends.
 */
function refuse(reply: FastifyReply, code: number, text: string, bodyPending: boolean) {
  if (bodyPending) reply.header('connection', 'close');
  return reply.code(code).type('text/plain; charset=utf-8').send(`${text}\n`);
}

/**
 * Limits on every plain HTTP route (NIP-11, NIP-86, /metrics, /health, /ready, /presence, the dashboard, and
 * paths that do not exist), checked in `onRequest`, before fastify reads or parses any body:
 *
 * 1. the per-IP HTTP rate (the relay's token buckets): `429 rate-limited: …` with Retry-After;
 * 2. a body of a type no route parses (only the types with a registered content-type parser are accepted; the
 *    relay registers none but NIP-86's): `415 invalid: …`;
 * 3. a declared body over `maxBodyBytes`: `413 invalid: …`.
 *
 * fastify's own `bodyLimit` is the same figure, so a chunked body is cut at it while being read. WebSocket
 * upgrades go to the connection gate instead (their own per-IP rate).
 */
export function registerHttpLimits(app: FastifyInstance, opts: HttpLimitsOptions): void {
  const { limiter, maxBodyBytes, stats } = opts;
  const mistake = (log: Parameters<typeof logClientMistake>[0], message: string) =>
    logClientMistake(log, { mistakes: 0 }, stats.clientMistakes, 'http_body', 'debug', { message });
  app.addHook('onRequest', async (req, reply) => {
    if (isUpgradeRequest(req.headers)) return;
    const bodyPending = hasRequestBody(req.headers);
    const limited = limiter?.admitHttp(normalizeIp(req.ip));
    if (limited) {
      countRejection(stats, limited);
      const perMinute = limiter!.limits.httpPerIp;
      reply.header('retry-after', String(Math.max(1, Math.ceil(60 / perMinute))));
      return refuse(reply, 429, limited, bodyPending);
    }
    if (!bodyPending) return;
    const type = getMediaType(req.headers['content-type']);
    if (type === '' || !app.hasContentTypeParser(type)) {
      mistake(req.log, `HTTP body of type ${type.slice(0, 60) || 'none'}`);
      return refuse(
        reply,
        415,
        makeReason('invalid', `no route takes a body of type ${type.slice(0, 60) || '(none)'}: NIP-86 calls are POST / with application/nostr+json+rpc`),
        bodyPending,
      );
    }
    const length = Number(req.headers['content-length'] ?? 0);
    if (!(length <= maxBodyBytes)) {
      mistake(req.log, `HTTP body of ${req.headers['content-length']} bytes`);
      return refuse(reply, 413, makeReason('invalid', `request body larger than ${maxBodyBytes} bytes`), bodyPending);
    }
  });
}
