import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The relay accepts `GET /` upgrades on the HTTP server's 'upgrade' event, without fastify (relay/upgrade.ts).
 * What fastify gave that path must still hold: the client address under `trustProxy` (rate limits and IP
 * blocks are keyed by it), the connection gate, and fastify's answers for every other upgrade.
 */

/** A raw upgrade request: its status and body (101 once switched). */
function upgrade(url: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), {
      method,
      agent: false,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      // The server closes right after its answer: what arrived is the answer.
      const done = () => resolve({ status: res.statusCode ?? 0, body });
      res.on('end', done);
      res.on('close', done);
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      resolve({ status: 101, body: '' });
    });
    req.on('error', reject);
    req.end();
  });
}

const ips = (t: TestRelay) => [...t.relay.ctx.connections].map((c) => c.ip);

describe('the relay WebSocket route outside fastify', () => {
  let t: TestRelay | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('takes the client address from X-Forwarded-For only behind a trusted proxy, as fastify does', async () => {
    t = await startRelay({ trustProxy: '127.0.0.1' });
    const proxied = await RawClient.connect(t.url, { headers: { 'x-forwarded-for': '198.51.100.7, 203.0.113.9' } });
    await waitFor(() => t!.relay.ctx.connections.size === 1);
    // The nearest address not behind a trusted proxy: 203.0.113.9 (127.0.0.1 is trusted, it is not).
    expect(ips(t)).toEqual(['203.0.113.9']);
    proxied.close();
    await waitFor(() => t!.relay.ctx.connections.size === 0);
    await t.close();

    t = await startRelay({ trustProxy: 'true' });
    const all = await RawClient.connect(t.url, { headers: { 'x-forwarded-for': '198.51.100.7, 203.0.113.9' } });
    await waitFor(() => t!.relay.ctx.connections.size === 1);
    expect(ips(t)).toEqual(['198.51.100.7']);
    all.close();
    await t.close();

    // Without a trusted proxy the header is the client's own claim and is ignored.
    t = await startRelay({ trustProxy: 'false' });
    const direct = await RawClient.connect(t.url, { headers: { 'x-forwarded-for': '198.51.100.7' } });
    await waitFor(() => t!.relay.ctx.connections.size === 1);
    expect(ips(t)).toEqual(['127.0.0.1']);
    direct.close();
  });

  it('refuses an address blocked behind a trusted proxy, with 403 before the upgrade', async () => {
    t = await startRelay({ trustProxy: '127.0.0.1' });
    t.relay.operator.admin.blockIp('198.51.100.7', 'test');
    expect(await upgrade(t.httpUrl, '/', { 'x-forwarded-for': '198.51.100.7' })).toEqual({ status: 403, body: 'blocked: your address is blocked\n' });
    expect((await upgrade(t.httpUrl, '/?x=1', { 'x-forwarded-for': '198.51.100.8' })).status).toBe(101);
    expect(t.relay.ctx.stats.rejections.get('blocked')).toBe(1);
  });

  it('leaves every other upgrade to fastify: unknown paths 404, a bad handshake 400', async () => {
    t = await startRelay();
    // fastify answers 404 and destroys the socket in the same turn, so the answer may be lost: never an upgrade.
    const elsewhere = await upgrade(t.httpUrl, '/nowhere').catch((err: Error) => ({ status: 0, body: err.message }));
    expect([404, 0]).toContain(elsewhere.status);
    expect((await upgrade(t.httpUrl, '/', { 'sec-websocket-key': 'short' })).status).toBe(400);
    const c = await RawClient.connect(t.url);
    const events = await c.req('s', { kinds: [1] });
    expect(events).toEqual([]);
    c.close();
  });
});
