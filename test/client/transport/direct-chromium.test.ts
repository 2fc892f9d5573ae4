import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { pino } from 'pino';
import { useWebSocketImplementation } from 'nostr-tools/relay';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadNodeRtc } from '../../../client/node/rtc.js';
import { buildRelay, type Relay } from '../../../relay/app.js';
import { loadConfig } from '../../../relay/config.js';
import { startMiniAgent, type MiniAgent } from '../../helpers/direct-agent.js';
import { createTestNetns, type TestNetns } from '../../helpers/netns.js';
import { waitFor } from '../../helpers/wait.js';

useWebSocketImplementation(WebSocket);

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  // Host candidates as addresses, not mDNS names (libdatachannel does not resolve .local).
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];
const FAST = { pingIntervalMs: 250, deadAfterMs: 1500, connectTimeoutMs: 10_000 };

type Received = Array<{ from: string; id: string; content: string; path: string }>;

// A real Chromium (native RTCPeerConnection) in its own network namespace ↔ a Node agent
// (node-datachannel), signalling and fallback through a real Roost relay.
describe('direct links, Chromium ↔ Node', () => {
  let unavailable: string | undefined;
  let net: TestNetns | undefined;
  let relay: Relay | undefined;
  let dir: string | undefined;
  let node: MiniAgent;
  let browser: Browser | undefined;
  let pageServer: Server | undefined;
  let page: Page;
  let browserPk: string;

  beforeAll(async () => {
    let chromiumPath = '';
    try {
      chromiumPath = execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
    } catch {
      unavailable = 'chromium is not installed (apt-get install -y chromium)';
      return;
    }
    try {
      net = createTestNetns(chromiumPath);
    } catch (err) {
      unavailable = `ip netns is not permitted here: ${(err as Error).message}`;
      return;
    }
    dir = mkdtempSync(join(tmpdir(), 'roost-direct-'));
    const config = loadConfig({ port: 0, host: net.hostS, logLevel: 'silent', commitWindowMs: 1, db: join(dir, 'roost.db') });
    relay = await buildRelay(config, { log: pino({ level: 'silent' }) });
    const address = await relay.app.listen({ port: 0, host: net.hostS });
    const url = address.replace(/^http/, 'ws');
    node = await startMiniAgent(url, { rtc: () => loadNodeRtc({ bindAddress: net!.hostD }), transport: FAST });

    const bundle = await build({
      entryPoints: [join(import.meta.dirname, '../../helpers/direct-browser-entry.ts')],
      bundle: true,
      format: 'iife',
      globalName: 'RoostDirectTest',
      platform: 'browser',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
    });
    // The page is served from the relay's own address: Chromium lets a page reach its own private
    // network, whereas about:blank would count as public and be kept off it.
    const html = `<!doctype html><meta charset="utf-8"><title>roost direct</title><script>${bundle.outputFiles[0]!.text.replace(/<\/script/gi, '<\\/script')}</script>`;
    pageServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html));
    await new Promise<void>((resolve) => pageServer!.listen(0, net!.hostS, resolve));
    const pagePort = (pageServer.address() as { port: number }).port;
    browser = await chromium.launch({ executablePath: net.chromium, args: CHROMIUM_ARGS });
    page = await browser.newPage();
    if (process.env.DIRECT_DEBUG) page.on('console', (m) => console.log(`[chromium] ${m.text()}`));
    await page.goto(`http://${net.hostS}:${pagePort}/`);
    browserPk = await page.evaluate(
      async ({ url, fast }) => {
        const g = globalThis as unknown as { RoostDirectTest: typeof import('../../helpers/direct-browser-entry.js'); agent: MiniAgent };
        g.agent = await g.RoostDirectTest.startMiniAgent(url, { rtc: g.RoostDirectTest.getBrowserRtc()!, transport: fast });
        return g.agent.pubkey;
      },
      { url, fast: FAST },
    );
  }, 60_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await node?.close().catch(() => undefined);
    await relay?.close();
    await new Promise((r) => (pageServer ? pageServer.close(r) : r(undefined)));
    net?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const inPage = <T, A>(fn: (agent: MiniAgent, arg: A) => T | Promise<T>, arg: A): Promise<T> =>
    page.evaluate(
      ({ src, arg }) => {
        const agent = (globalThis as unknown as { agent: MiniAgent }).agent;
        // biome-ignore lint/security/noGlobalEval: page.evaluate carries functions as source text; indirect eval rebuilds them in the page's global scope.
        // biome-ignore lint/complexity/noCommaOperator: `(0, eval)` is what makes the eval indirect.
        return (0, eval)(`(${src})`)(agent, arg) as T;
      },
      { src: fn.toString(), arg },
    );
  const browserReceived = () => inPage((a) => a.received.map((m) => ({ ...m })), null) as Promise<Received>;

  it('Chromium opens a verified link to the Node agent; messages flow both ways directly', async (ctx) => {
    if (unavailable) return ctx.skip(unavailable);
    await inPage((a, peer) => a.transport.connect(peer), node.pubkey);
    // The opener's connect settles on its own side of the handshake; the other side marks the link a moment later.
    await waitFor(() => node.transport.isDirect(browserPk), 'Node sees the link direct');
    expect(await inPage((a, peer) => a.sendText(peer, 'from chromium'), node.pubkey)).toBe('direct');
    expect(await node.sendText(browserPk, 'from node')).toBe('direct');
    await waitFor(() => node.received.some((m) => m.content === 'from chromium'), 'message at Node');
    expect(node.received.map((m) => [m.content, m.path, m.from])).toEqual([['from chromium', 'direct', browserPk]]);
    await waitFor(async () => (await browserReceived()).length === 1, 'message in Chromium');
    expect((await browserReceived()).map((m) => [m.content, m.path, m.from])).toEqual([['from node', 'direct', node.pubkey]]);
  });

  it('the Node agent opens a link to Chromium after the first one closed', async (ctx) => {
    if (unavailable) return ctx.skip(unavailable);
    node.transport.disconnect(browserPk);
    await waitFor(async () => (await inPage((a, peer) => a.transport.state(peer) ?? 'none', node.pubkey)) === 'none', 'Chromium saw the close');
    await node.transport.connect(browserPk);
    await waitFor(() => inPage((a, peer) => a.transport.isDirect(peer), node.pubkey), 'Chromium sees the link direct');
    expect(await node.sendText(browserPk, 'again')).toBe('direct');
    await waitFor(async () => (await browserReceived()).length === 2, 'second message in Chromium');
  });

  it('a silently cut direct path is detected; nothing is lost or doubled through the relay fallback', async (ctx) => {
    if (unavailable) return ctx.skip(unavailable);
    expect(node.transport.isDirect(browserPk)).toBe(true);
    const before = (await browserReceived()).length;
    const N = 60;
    const ids: string[] = [];
    const sends: Array<Promise<string>> = [];
    let cut = false;
    for (let i = 0; i < N; i++) {
      const msg = node.makeMessage(browserPk, `s${i}`);
      ids.push(msg.id);
      sends.push(node.send(browserPk, msg));
      await new Promise((r) => setTimeout(r, 10));
      if (!cut && i >= 20) {
        net!.cutDirect();
        cut = true;
      }
    }
    const paths = await Promise.all(sends);
    await waitFor(async () => (await browserReceived()).length >= before + N, `all ${N} in Chromium`, 20_000);
    await new Promise((r) => setTimeout(r, 300));
    const got = (await browserReceived()).slice(before);
    expect(got.length).toBe(N);
    expect(new Set(got.map((m) => m.id))).toEqual(new Set(ids));
    expect(got.some((m) => m.path === 'direct') && got.some((m) => m.path === 'relay')).toBe(true);
    expect(paths.includes('direct') && paths.includes('relay')).toBe(true);
    expect(node.transport.isDirect(browserPk)).toBe(false);
    await waitFor(async () => !(await inPage((a, peer) => a.transport.isDirect(peer), node.pubkey)), 'Chromium noticed too');
  });
});
