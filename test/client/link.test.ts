import { afterEach, describe, expect, it } from 'vitest';
import { getBackoffDelay, Identity, NodeWebSocket, RelayLink } from '../../client/node/index.js';
import type WebSocket from 'ws';
import { startCuttableProxy } from '../helpers/cuttable-proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay } from '../helpers/relay.js';
import { signEvent, makeKey } from '../helpers/events.js';
import { waitFor } from '../helpers/wait.js';
import { tempDir } from './helpers.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('relay link', () => {
  it('backoff: exponential ceiling with full jitter, capped', () => {
    const rows: Array<[attempt: number, random: number, expected: number]> = [
      [0, 0.999, 499],
      [1, 0.5, 500],
      [3, 1 - 1e-9, 3999],
      [10, 0.5, 15_000],
      [40, 0.25, 7500],
      [5, 0, 0],
    ];
    for (const [attempt, r, expected] of rows) expect(getBackoffDelay(attempt, 500, 30_000, () => r)).toBe(expected);
  });

  it('answers NIP-42 AUTH before going ready, and re-sends standing subscriptions after a reconnect', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    let relay = await startRelay({ db: `${dir}/roost.db` }, {}, dir);
    const port = relay.port;
    const me = Identity.generate();
    const link = new RelayLink(relay.url, { WebSocket: NodeWebSocket, identity: me, reconnectBaseMs: 20, reconnectMaxMs: 100 });
    cleanups.push(() => link.close());
    const seen: string[] = [];
    link.subscribe('mine', { filters: () => [{ '#t': ['roost-link'] }], onEvent: (ev) => seen.push(ev.content) });
    link.start();
    expect(await link.whenReady(5000)).toBe(true);
    expect(link.authed).toBe(true);
    const author = makeKey();
    const ok = await link.publish(signEvent(author, { tags: [['t', 'roost-link']], content: 'one' }));
    expect(ok.accepted).toBe(true);
    await waitFor(() => seen.includes('one'), 'live event');

    await relay.close({ keep: true });
    await waitFor(() => !link.isReady, 'link notices the relay went away');
    relay = await startRelay({ port, db: `${dir}/roost.db` }, {}, dir);
    cleanups.push(() => relay.close());
    expect(await link.whenReady(5000)).toBe(true);
    await link.publish(signEvent(author, { tags: [['t', 'roost-link']], content: 'two' }));
    await waitFor(() => seen.includes('two'), 'event after reconnect');
  });

  it('against a relay that challenges on demand, asks for the challenge and is authenticated when ready', async () => {
    const relay = await startRelay({ authChallenge: 'demand' });
    cleanups.push(() => relay.close());
    const me = Identity.generate();
    const dm = signEvent(makeKey(), { kind: 4, tags: [['p', me.pubkey]], content: 'for your eyes' });
    const c = await RawClient.connect(relay.url);
    expect((await c.publish(dm))[2]).toBe(true);
    c.ws.close();
    // authWaitMs far beyond the test's patience: readiness must come from the probe, not the fallback.
    const link = new RelayLink(relay.url, { WebSocket: NodeWebSocket, identity: me, authWaitMs: 60_000 });
    cleanups.push(() => link.close());
    const seen: string[] = [];
    // The inbox's kind-less filter: it sees private events only on an authenticated connection.
    link.subscribe('inbox', { filters: () => [{ '#p': [me.pubkey] }], onEvent: (ev) => seen.push(ev.id) });
    link.start();
    expect(await link.whenReady(10_000)).toBe(true);
    expect(link.authed).toBe(true);
    await waitFor(() => seen.includes(dm.id), 'kind-4 mail through the #p subscription');
  });

  it('re-sends an EVENT refused auth-required once the challenge that came with the refusal is answered', async () => {
    const relay = await startRelay({ authChallenge: 'demand' });
    cleanups.push(() => relay.close());
    // A socket that never sends the probe: the link goes ready unauthenticated, as with a relay that ignores it.
    class NoProbe extends (NodeWebSocket as unknown as typeof WebSocket) {
      override send(data: string): void {
        if (!data.includes('"auth:probe"')) super.send(data);
      }
    }
    const me = Identity.generate();
    const link = new RelayLink(relay.url, { WebSocket: NoProbe as never, identity: me, authWaitMs: 50 });
    cleanups.push(() => link.close());
    link.start();
    expect(await link.whenReady(10_000)).toBe(true);
    expect(link.authed).toBe(false);
    // NIP-70: a protected event is taken only from its authenticated author.
    const ok = await link.publish(me.sign({ kind: 1, tags: [['-']], content: 'protected', created_at: Math.floor(Date.now() / 1000) }));
    expect(ok).toEqual({ relay: link.url, accepted: true, reason: '' });
    expect(link.authed).toBe(true);
  });

  it('detects a dead connection with application-level pings and reconnects', async () => {
    const relay = await startRelay();
    cleanups.push(() => relay.close());
    const proxy = await startCuttableProxy(relay.port);
    cleanups.push(() => proxy.close());
    const drops: string[] = [];
    const link = new RelayLink(proxy.url, {
      WebSocket: NodeWebSocket,
      identity: Identity.generate(),
      pingIntervalMs: 150,
      pingTimeoutMs: 200,
      reconnectBaseMs: 20,
      reconnectMaxMs: 100,
      authWaitMs: 200,
      // A reconnect made while the proxy is frozen loses its handshake bytes (the proxy drops them):
      // it must be given up quickly too, or it outlasts the wait below.
      connectTimeoutMs: 400,
    });
    cleanups.push(() => link.close());
    link.on('disconnected', (reason) => drops.push(reason));
    link.start();
    expect(await link.whenReady(5000)).toBe(true);
    // Idle but healthy: pings are answered, the link stays up.
    await new Promise((r) => setTimeout(r, 500));
    expect(drops).toEqual([]);
    expect(link.isReady).toBe(true);

    proxy.freeze(true);
    await waitFor(() => drops.includes('ping timeout'), 'ping timeout', 3000);
    proxy.freeze(false);
    expect(await link.whenReady(5000)).toBe(true);
    expect(proxy.connections()).toBeGreaterThanOrEqual(2);
  });

  it('a publish on a link that is not connected fails with ROOST_ERR_DISCONNECTED', async () => {
    const link = new RelayLink('ws://127.0.0.1:9', { WebSocket: NodeWebSocket, reconnectBaseMs: 1000 });
    cleanups.push(() => link.close());
    const err = await link.publish(signEvent(makeKey())).catch((e) => e);
    expect(err.code).toBe('ROOST_ERR_DISCONNECTED');
  });
});
