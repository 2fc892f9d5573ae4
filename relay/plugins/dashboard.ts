import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RoostError } from '../config.js';
import type { FigureSampler } from '../operator/figures.js';
import { secretsEqual } from './metrics.js';

/** Settings of the dashboard. */
export interface DashboardOptions {
  sampler: FigureSampler;
  /** Admin token; empty serves the dashboard to anyone who can reach it. */
  token: string;
  /** Most live streams at once. */
  maxStreams?: number;
  /** Links from events to their traces (docs/observability.md); absent: no trace section data. */
  traces?: DashboardTraces;
}

/** An event and the trace its spans are in (the dashboard's link). */
export interface EventTraceLink {
  eventId: string;
  kind: number;
  /** 32 hex characters; null when the relay knows of no trace for the event. */
  traceId: string | null;
}

/** Where the dashboard reads trace ids from. */
export interface DashboardTraces {
  /** Trace UI URL with `{traceId}` (ROOST_TRACE_URL); empty: the page shows the id only. */
  urlTemplate: string;
  /** Whether the relay exports spans at all. */
  exporting: boolean;
  /** Recently traced public events, newest first. */
  recent(): EventTraceLink[];
  /** The trace of a stored event; undefined when the relay does not hold it. */
  lookup(eventId: string): EventTraceLink | undefined;
}

const EVENT_ID = /^[0-9a-f]{64}$/;

const COOKIE = 'roost_dashboard';
const MAX_UNSENT_BYTES = 1 << 20;
const ASSETS: Record<string, string> = {
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** Finds relay/dashboard/ (hand-written HTML, CSS and JS) from the source or the compiled tree. */
export function findDashboardDir(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'relay', 'dashboard');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    dir = dirname(dir);
  }
  throw new RoostError('ROOST_ERR_DASHBOARD_MISSING', `relay/dashboard/ not found above ${from}`);
}

function readCookie(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

const digest = (token: string) => createHash('sha256').update(`roost-dashboard:${token}`).digest('hex');

/**
 * The operator dashboard: GET /dashboard (the page), /dashboard/figures (JSON), /dashboard/stream
 * (server-sent events, one sample a second) and the page's two static files. With a token set,
 * the page and data need it: `?token=` once (it becomes an HttpOnly cookie holding its hash and
 * the URL is cleaned by a redirect), the cookie, or `Authorization: Bearer`.
 */
export function registerDashboard(app: FastifyInstance, opts: DashboardOptions): { closeStreams(): void } {
  const dir = findDashboardDir();
  const page = readFileSync(join(dir, 'index.html'), 'utf8');
  const assets = new Map(Object.entries(ASSETS).map(([name, type]) => [name, { type, body: readFileSync(join(dir, name), 'utf8') }]));
  const streams = new Set<ServerResponse>();
  const maxStreams = opts.maxStreams ?? 32;
  const expectedCookie = opts.token ? digest(opts.token) : '';

  const allowed = (req: FastifyRequest): boolean => {
    if (!opts.token) return true;
    const bearer = /^Bearer\s+(.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (bearer !== undefined && secretsEqual(bearer, opts.token)) return true;
    const cookie = readCookie(req, COOKIE);
    return cookie !== undefined && secretsEqual(cookie, expectedCookie);
  };
  const deny = (reply: FastifyReply) => reply.code(401).headers(SECURITY_HEADERS).type('text/html; charset=utf-8').send(LOGIN_PAGE);

  app.get('/dashboard', async (req, reply) => {
    const query = req.query as Record<string, unknown>;
    if (opts.token && typeof query.token === 'string') {
      if (!secretsEqual(query.token, opts.token)) return deny(reply);
      const secure = req.protocol === 'https' ? '; Secure' : '';
      reply.header('set-cookie', `${COOKIE}=${expectedCookie}; Path=/dashboard; HttpOnly; SameSite=Strict${secure}`);
      return reply.code(303).headers(SECURITY_HEADERS).header('location', '/dashboard').send();
    }
    if (!allowed(req)) return deny(reply);
    return reply.headers(SECURITY_HEADERS).type('text/html; charset=utf-8').send(page);
  });

  app.get('/dashboard/:asset', async (req, reply) => {
    const asset = assets.get((req.params as { asset: string }).asset);
    if (!asset) return reply.code(404).send({ error: 'not found' });
    return reply.headers(SECURITY_HEADERS).header('cache-control', 'no-cache').type(asset.type).send(asset.body);
  });

  app.get('/dashboard/figures', async (req, reply) => {
    if (!allowed(req)) return reply.code(401).send({ error: 'unauthorized' });
    reply.headers(SECURITY_HEADERS);
    return { figures: opts.sampler.latest(), history: opts.sampler.history() };
  });

  app.get('/dashboard/traces', async (req, reply) => {
    if (!allowed(req)) return reply.code(401).send({ error: 'unauthorized' });
    reply.headers(SECURITY_HEADERS);
    const t = opts.traces;
    return { urlTemplate: t?.urlTemplate ?? '', exporting: t?.exporting ?? false, recent: t?.recent() ?? [] };
  });

  app.get('/dashboard/traces/:eventId', async (req, reply) => {
    if (!allowed(req)) return reply.code(401).send({ error: 'unauthorized' });
    reply.headers(SECURITY_HEADERS);
    const eventId = (req.params as { eventId: string }).eventId;
    if (!EVENT_ID.test(eventId)) return reply.code(400).send({ error: 'an event id is 64 lowercase hex characters' });
    const found = opts.traces?.lookup(eventId);
    if (!found) return reply.code(404).send({ error: 'no such event on this relay' });
    return found;
  });

  app.get('/dashboard/stream', (req, reply) => {
    if (!allowed(req)) return reply.code(401).send({ error: 'unauthorized' });
    if (streams.size >= maxStreams) return reply.code(503).send({ error: 'too many dashboard streams' });
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ figures: opts.sampler.latest(), history: opts.sampler.history() })}\n\n`);
    streams.add(res);
    const unsubscribe = opts.sampler.subscribe((figures, point) => {
      // A viewer that stopped reading is let go rather than buffered for.
      if (res.writableLength > MAX_UNSENT_BYTES) {
        res.destroy();
        return;
      }
      res.write(`data: ${JSON.stringify({ figures, point })}\n\n`);
    });
    const done = () => {
      unsubscribe();
      streams.delete(res);
    };
    req.raw.on('close', done);
    res.on('error', done);
  });

  return {
    closeStreams() {
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}

const LOGIN_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Roost dashboard — sign in</title><link rel="stylesheet" href="/dashboard/dashboard.css"></head>
<body class="login"><form method="get" action="/dashboard" class="card">
<h1>Roost dashboard</h1><p>This relay's dashboard needs its admin token (ROOST_ADMIN_TOKEN).</p>
<input type="password" name="token" placeholder="admin token" autocomplete="current-password" autofocus required>
<button type="submit">Open</button></form></body></html>
`;
