import { randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';

/** How the HTTP form guards itself. */
export interface HttpGuard {
  /** Accepted Host header values (host:port), lower case. */
  hosts: ReadonlySet<string>;
  /** Accepted Origin header values (scheme://host:port); a request without Origin is accepted. */
  origins: ReadonlySet<string>;
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token: string | undefined;
}

/** Host and Origin values that name this loopback listener (localhost, 127.0.0.1, [::1]) and the host given. */
export function makeLoopbackGuard(host: string, port: number, token: string | undefined, extraOrigins: readonly string[] = []): HttpGuard {
  const names = new Set(['localhost', '127.0.0.1', '[::1]', host.includes(':') && !host.startsWith('[') ? `[${host}]` : host]);
  const hosts = new Set([...names].map((n) => `${n}:${port}`.toLowerCase()));
  const origins = new Set([...[...names].flatMap((n) => [`http://${n}:${port}`, `https://${n}:${port}`]), ...extraOrigins].map((o) => o.toLowerCase()));
  return { hosts, origins, token };
}

/** Why a request is refused before it reaches MCP (DNS rebinding, missing token), or undefined. */
export function checkRequest(guard: HttpGuard, headers: IncomingMessage['headers']): { status: number; message: string } | undefined {
  const host = (headers.host ?? '').toLowerCase();
  if (!guard.hosts.has(host)) return { status: 403, message: `Host ${JSON.stringify(headers.host ?? '')} is not allowed (DNS rebinding protection)` };
  const origin = headers.origin?.toLowerCase();
  if (origin !== undefined && origin !== 'null' && !guard.origins.has(origin))
    return { status: 403, message: `Origin ${JSON.stringify(headers.origin)} is not allowed` };
  if (origin === 'null') return { status: 403, message: 'Origin "null" is not allowed' };
  if (guard.token !== undefined) {
    const m = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '');
    const given = Buffer.from(m?.[1]?.trim() ?? '');
    const want = Buffer.from(guard.token);
    if (given.length !== want.length || !timingSafeEqual(given, want)) return { status: 401, message: 'missing or wrong bearer token' };
  }
  return undefined;
}

function refuse(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

/** Open sessions at most (each holds a server; clients that vanish without DELETE leave theirs). */
const MAX_SESSIONS = 64;

/** Largest JSON-RPC request body accepted. */
const MAX_BODY = 4 * 1024 * 1024;

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(Object.assign(new Error('body is not JSON'), { status: 400 }));
      }
    });
    req.on('error', reject);
  });
}

/**
 * The streamable HTTP form on `/mcp`: guard first (Host, Origin, bearer token), then one stateful
 * MCP session per `initialize`, each with its own server over the shared bridge. `guard` is read per
 * request (it names the port, known only once listening when port 0 was asked for).
 */
export function createMcpHttpServer(guard: () => HttpGuard, makeServer: () => McpServer, log: (msg: string, fields: Record<string, unknown>) => void): Server {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  return createServer((req, res) => {
    void (async () => {
      const refused = checkRequest(guard(), req.headers);
      if (refused) {
        log('refused', { status: refused.status, reason: refused.message });
        return refuse(res, refused.status, refused.message, refused.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
      }
      if (new URL(req.url ?? '/', 'http://x').pathname !== '/mcp') return refuse(res, 404, 'not found: the MCP endpoint is /mcp');
      const sid = req.headers['mcp-session-id'];
      const existing = typeof sid === 'string' ? sessions.get(sid) : undefined;
      if (req.method === 'POST') {
        const body = await readJson(req);
        if (existing) return existing.handleRequest(req, res, body);
        if (sid !== undefined) return refuse(res, 404, 'unknown session: initialize again');
        if (!isInitializeRequest(body)) return refuse(res, 400, 'no session: the first request must be initialize (without Mcp-Session-Id)');
        if (sessions.size >= MAX_SESSIONS) return refuse(res, 503, `too many open sessions (${MAX_SESSIONS}): close one (DELETE /mcp) first`);
        const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void sessions.set(id, transport),
        });
        transport.onclose = () => {
          if (transport.sessionId) sessions.delete(transport.sessionId);
        };
        await makeServer().connect(transport);
        return transport.handleRequest(req, res, body);
      }
      if (req.method === 'GET' || req.method === 'DELETE') {
        if (!existing)
          return refuse(res, sid === undefined ? 400 : 404, sid === undefined ? 'Mcp-Session-Id header required' : 'unknown session: initialize again');
        return existing.handleRequest(req, res);
      }
      res.setHeader('allow', 'GET, POST, DELETE');
      return refuse(res, 405, `method ${req.method} not allowed`);
    })().catch((err: Error & { status?: number }) => {
      if (!res.headersSent) refuse(res, err.status ?? 500, err.status ? err.message : 'internal error');
      if (!err.status) log('request failed', { message: err.message });
    });
  });
}
