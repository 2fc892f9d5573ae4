import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { startRecordingAgent, tempDir } from '../client/helpers.js';
import { call, startHttpBridge } from './helpers.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

/** A raw POST with the headers given (fetch cannot set Host). */
function post(url: string, headers: Record<string, string>): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(INIT);
  });
}

async function connect(url: string, token?: string): Promise<Client> {
  const client = new Client({ name: 'roost-test', version: '1.0.0' });
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  cleanups.push(() => client.close().catch(() => undefined));
  return client;
}

describe('roost mcp --http (streamable HTTP, SDK client, real relay)', () => {
  it('serves the tools and the inbox subscription; refuses a foreign Host or Origin; enforces the bearer token', async () => {
    const relay = await startRelay();
    cleanups.push(() => relay.close());
    const home = tempDir('roost-mcp-');
    cleanups.push(home.cleanup);
    const peerHome = tempDir('roost-peer-');
    cleanups.push(peerHome.cleanup);
    const token = 'a-test-token-0123456789';
    const bridge = await startHttpBridge(home.dir, [relay.url], [], { ROOST_MCP_TOKEN: token });
    cleanups.push(() => bridge.close());
    const port = new URL(bridge.url).port;

    // DNS rebinding: a name that resolves to 127.0.0.1 but is not this listener's
    const evil = await post(bridge.url, { host: 'evil.example.com', origin: 'http://evil.example.com', authorization: `Bearer ${token}` });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body).error.message).toMatch(/Host "evil.example.com" is not allowed/);
    const evilOrigin = await post(bridge.url, { host: `localhost:${port}`, origin: 'http://evil.example.com', authorization: `Bearer ${token}` });
    expect(evilOrigin.status).toBe(403);
    expect(JSON.parse(evilOrigin.body).error.message).toMatch(/Origin/);
    // token: missing and wrong are refused; right one with a loopback Host and Origin is served
    const noToken = await post(bridge.url, { host: `127.0.0.1:${port}` });
    expect(noToken.status).toBe(401);
    expect(noToken.headers['www-authenticate']).toBe('Bearer');
    expect((await post(bridge.url, { host: `127.0.0.1:${port}`, authorization: 'Bearer wrong' })).status).toBe(401);
    const ok = await post(bridge.url, { host: `localhost:${port}`, origin: `http://localhost:${port}`, authorization: `Bearer ${token}` });
    expect(ok.status).toBe(200);
    await expect(connect(bridge.url)).rejects.toThrow();

    const client = await connect(bridge.url, token);
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('inbox');
    const me = await call<{ npub: string }>(client, 'whoami');

    // two sessions share one agent; mail is announced on each subscribed session
    const second = await connect(bridge.url, token);
    const updates: string[] = [];
    second.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
    await second.subscribeResource({ uri: 'roost://inbox' });
    const peer = await startRecordingAgent(peerHome.dir, [relay.url]);
    cleanups.push(() => peer.agent.close());
    await peer.agent.send(me.npub, 'over http');
    await waitFor(() => updates.includes('roost://inbox'), 'resources/updated over the GET stream');
    const page = await call<{ messages: Array<{ preview: string }>; next: number }>(client, 'inbox');
    expect(page.messages.map((m) => m.preview)).toEqual(['over http']);
    await call(client, 'ack', { up_to: page.next });
    expect((await call<{ messages: unknown[] }>(second, 'inbox')).messages).toEqual([]);
    await call(client, 'send', { to: peer.agent.npub, text: 'back over http' });
    await waitFor(() => peer.got.some((m) => m.type === 'dm' && m.content === 'back over http'), 'peer got the answer');
  });

  it('without a token, loopback Host/Origin are served and others refused', async () => {
    const relay = await startRelay();
    cleanups.push(() => relay.close());
    const home = tempDir('roost-mcp-');
    cleanups.push(home.cleanup);
    const bridge = await startHttpBridge(home.dir, [relay.url]);
    cleanups.push(() => bridge.close());
    const port = new URL(bridge.url).port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) expect((await post(bridge.url, { host })).status).toBe(200);
    for (const host of [`127.0.0.1:${Number(port) + 1}`, `attacker.test:${port}`, `127.0.0.1`]) expect((await post(bridge.url, { host })).status).toBe(403);
    expect((await post(bridge.url, { host: `localhost:${port}`, origin: 'null' })).status).toBe(403);
    const client = await connect(bridge.url);
    expect((await call<{ npub: string }>(client, 'whoami')).npub).toMatch(/^npub1/);
  });
});
