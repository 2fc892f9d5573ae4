import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { NostrEvent } from '../../shared/event.js';
import { makeKey, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';

// Floods and slow clients: the relay's memory stays bounded, a subscriber that never reads is cut
// off at the outbound cap, and other clients keep working.
const SOAK = process.env.ROOST_SOAK === '1';

describe('floods and slow clients', () => {
  let t: TestRelay;
  beforeAll(async () => (t = await startRelay({ maxOutboundBytes: 262144, maxSubscriptions: 100 })));
  afterAll(async () => t.close());

  it('cuts off a subscriber that never reads, and keeps serving the others', async () => {
    const key = makeKey();
    const big = 'y'.repeat(40_000);
    // 16 MB of stored events: more than the kernel's loopback buffers can absorb.
    const events = Array.from({ length: 400 }, (_, i) => signEvent(key, { content: big + i }));
    const pub = await RawClient.connect(t.url);
    for (let i = 0; i < events.length; i += 20) {
      const batch = events.slice(i, i + 20);
      for (const e of batch) pub.send(['EVENT', e]);
      await Promise.all(batch.map((e) => pub.ok(e.id)));
    }
    // The stalled reader stops reading from its socket, then asks for everything.
    const stalled = new WebSocket(t.url);
    await new Promise((r) => stalled.once('open', r));
    (stalled as unknown as { _socket: { pause(): void } })._socket.pause();
    stalled.send(JSON.stringify(['REQ', 'flood', { authors: [key.pk], limit: 500 }]));
    try {
      // The relay paces the stored answer instead of buffering it; live events then pile up
      // behind it until they pass the outbound cap, and the reader is cut off.
      await waitFor(() => t.relay.ctx.connections.size === 2 && [...t.relay.ctx.connections].some((c) => c.subs.get('flood')?.held), 'stored answer paused');
      for (let i = 0; i < 10; i++) await pub.publish(signEvent(key, { content: big + 'live' + i }));
      await waitFor(() => t.relay.ctx.stats.slowClientsCut >= 1, 'slow client cut off');
      await waitFor(() => t.relay.ctx.connections.size === 1, 'stalled connection released');
    } finally {
      stalled.terminate();
    }
    // Others are unaffected: a new reader gets the whole history.
    const healthy = await RawClient.connect(t.url);
    expect((await healthy.req('all', { authors: [key.pk], limit: 500 })).length).toBe(events.length + 10);
    expect(t.relay.ctx.index.size).toBe(1);
    healthy.close();
    pub.close();
    await waitFor(() => t.relay.ctx.connections.size === 0, 'all closed');
  });

  it('survives thousands of connections opened and dropped, and its heap returns near baseline', async () => {
    const N = SOAK ? 5000 : 600;
    expect(typeof global.gc, 'vitest runs with --expose-gc').toBe('function');
    global.gc?.();
    const base = process.memoryUsage().heapUsed;
    for (let round = 0; round < 3; round++) {
      const socks = await Promise.all(
        Array.from({ length: N / 3 }, async (_, i) => {
          const ws = new WebSocket(t.url);
          await new Promise((r, j) => {
            ws.once('open', r);
            ws.once('error', j);
          });
          ws.send(JSON.stringify(['REQ', `s${i}`, { kinds: [1], limit: 1 }]));
          return ws;
        }),
      );
      await waitFor(() => t.relay.ctx.connections.size >= socks.length, 'all connected');
      for (const ws of socks) ws.terminate();
      await waitFor(() => t.relay.ctx.connections.size === 0, 'all released');
    }
    expect(t.relay.ctx.index.size).toBe(0);
    // Full collections, with a turn of the event loop between, so only live objects are counted.
    for (let i = 0; i < 3; i++) {
      global.gc?.();
      await new Promise((r) => setTimeout(r, 50));
    }
    const after = process.memoryUsage().heapUsed;
    console.log(`flood: ${N} connections opened and dropped; heap ${(base / 1e6).toFixed(1)} MB → ${(after / 1e6).toFixed(1)} MB`);
    // Generous bound: the relay holds nothing per closed connection.
    expect(after - base).toBeLessThan(16e6);
    const c = await RawClient.connect(t.url);
    expect((await c.publish(signEvent(makeKey())))[2]).toBe(true);
    c.close();
  });

  it('spam from one key does not starve another publisher', async () => {
    const spammer = makeKey();
    const spam = Array.from({ length: 400 }, (_, i) => signEvent(spammer, { content: `spam ${i}` }));
    const s = await RawClient.connect(t.url);
    for (const e of spam) s.send(['EVENT', e]);
    const other = await RawClient.connect(t.url);
    const mine: NostrEvent = signEvent(makeKey(), { content: 'important' });
    const ok = await other.publish(mine);
    expect(ok[2]).toBe(true);
    await waitFor(() => s.of('OK').length === spam.length, 'every spam event answered');
    s.close();
    other.close();
  });
});
