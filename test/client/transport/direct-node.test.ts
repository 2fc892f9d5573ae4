import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { useWebSocketImplementation } from 'nostr-tools/relay';
import { generateSecretKey, finalizeEvent } from 'nostr-tools/pure';
import { loadNodeRtc } from '../../../client/node/rtc.js';
import type { RtcFactory } from '../../../client/transport/rtc.js';
import type { DeliveryPath } from '../../../client/transport/webrtc.js';
import { startMiniAgent, type MiniAgent, type MiniAgentOptions } from '../../helpers/direct-agent.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';

useWebSocketImplementation(WebSocket);

// Two Node agents, WebRTC over loopback (node-datachannel bound to 127.0.0.1), signalling and
// the fallback path through a real Roost relay.
describe('direct links, Node ↔ Node', () => {
  let relay: TestRelay;
  let rtc: RtcFactory;
  const agents: MiniAgent[] = [];
  const fast = { pingIntervalMs: 200, deadAfterMs: 1500, connectTimeoutMs: 8000 };

  beforeAll(async () => {
    relay = await startRelay();
    rtc = await loadNodeRtc({ bindAddress: '127.0.0.1' });
  });
  afterAll(async () => {
    for (const a of agents) await a.close();
    await relay.close();
  });

  async function agent(opts: Partial<MiniAgentOptions> = {}): Promise<MiniAgent> {
    const a = await startMiniAgent(relay.url, { rtc, ...opts, transport: { ...fast, ...opts.transport } });
    agents.push(a);
    return a;
  }

  it('opens a verified link, and the same send API carries messages both ways directly', async () => {
    const a = await agent();
    const b = await agent();
    expect(await a.sendText(b.pubkey, 'before')).toBe('relay');
    await a.transport.connect(b.pubkey);
    await waitFor(() => b.transport.isDirect(a.pubkey), 'B verified A');
    expect(a.transport.isDirect(b.pubkey)).toBe(true);
    expect(await a.sendText(b.pubkey, 'hello B')).toBe('direct');
    expect(await b.sendText(a.pubkey, 'hello A')).toBe('direct');
    await waitFor(() => b.received.length === 2 && a.received.length === 1, 'messages');
    expect(b.received.map((m) => [m.content, m.path])).toEqual([
      ['before', 'relay'],
      ['hello B', 'direct'],
    ]);
    expect(a.received.map((m) => [m.content, m.path, m.from])).toEqual([['hello A', 'direct', b.pubkey]]);
  });

  for (const killer of ['receiver', 'sender'] as const) {
    it(`loses nothing and doubles nothing when the ${killer} kills the direct path mid-stream`, async () => {
      const a = await agent();
      const N = 120;
      const KILL_AT = 41;
      let b!: MiniAgent;
      b = await agent({
        onMessage: () => {
          if (b.received.length === KILL_AT) {
            if (killer === 'receiver') b.transport.disconnect(a.pubkey, 'killed by the test');
            else a.transport.disconnect(b.pubkey, 'killed by the test');
          }
        },
      });
      await a.transport.connect(b.pubkey);
      const sends: Array<Promise<DeliveryPath>> = [];
      const ids: string[] = [];
      // A steady stream (bursts of 8 every 5 ms), so acknowledgements flow while it is cut.
      for (let i = 0; i < N; i++) {
        const msg = a.makeMessage(b.pubkey, `m${i}`);
        ids.push(msg.id);
        sends.push(a.send(b.pubkey, msg));
        if (i % 8 === 7) await new Promise((r) => setTimeout(r, 5));
      }
      const paths = await Promise.all(sends);
      await waitFor(() => b.received.length >= N, `all ${N} messages`, 15_000);
      await new Promise((r) => setTimeout(r, 300)); // a late duplicate would show up here
      const got = b.received.map((m) => m.id);
      expect(got.length).toBe(N);
      expect(new Set(got).size).toBe(N);
      expect(new Set(got)).toEqual(new Set(ids));
      const byPath = { direct: 0, relay: 0 };
      for (const m of b.received) byPath[m.path]++;
      expect(byPath.direct).toBeGreaterThanOrEqual(KILL_AT);
      expect(byPath.relay).toBeGreaterThan(0);
      // Sender view: acknowledged ones went direct, the rest through the relay.
      expect(paths.filter((p) => p === 'direct').length).toBeGreaterThan(0);
      expect(paths.filter((p) => p === 'relay').length).toBeGreaterThan(0);
      expect(paths.filter((p) => p === 'direct').length).toBeLessThanOrEqual(byPath.direct);
      expect(a.transport.isDirect(b.pubkey)).toBe(false);
      // Later messages take the relay, and a new link takes over again.
      expect(await a.sendText(b.pubkey, 'after')).toBe('relay');
      await a.transport.connect(b.pubkey);
      expect(await a.sendText(b.pubkey, 'direct again')).toBe('direct');
      await waitFor(() => b.received.length === N + 2, 'last two');
      expect(
        b.received
          .slice(N)
          .map((m) => m.path)
          .sort(),
      ).toEqual(['direct', 'relay']);
    });
  }

  it('when both sides connect at once, one link wins and both verify it', async () => {
    const a = await agent();
    const b = await agent();
    await Promise.all([a.transport.connect(b.pubkey), b.transport.connect(a.pubkey)]);
    expect(a.transport.isDirect(b.pubkey) && b.transport.isDirect(a.pubkey)).toBe(true);
    expect(await b.sendText(a.pubkey, 'x')).toBe('direct');
  });

  it('refuses a peer whose SDP fingerprint differs from the one it signed', async () => {
    const b = await agent();
    const a = await agent({
      wrapSignalling: (s) => ({
        onSignal: (h) => s.onSignal(h),
        send: (peer, p) => s.send(peer, p.type === 'offer' ? { ...p, fingerprint: 'sha-256 ' + Array(32).fill('AB').join(':') } : p),
      }),
    });
    const err = await a.transport.connect(b.pubkey).catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe('ROOST_ERR_DIRECT_REFUSED');
    expect(b.transport.state(a.pubkey)).toBeUndefined();
    expect(await a.sendText(b.pubkey, 'still arrives')).toBe('relay');
    await waitFor(() => b.received.length === 1, 'relay message');
  });

  it('refuses a peer whose challenge answer is signed by another key', async () => {
    const seenByB: Array<[string, string | undefined]> = [];
    const b = await agent({ transport: { onLinkChange: (_p, state, reason) => seenByB.push([state, reason]) } });
    const mallory = generateSecretKey();
    const a = await agent({
      // A signals honestly but answers the data-channel challenge with someone else's key.
      wrapIdentity: (id) => ({ ...id, sign: (t) => (t.kind === 25051 ? (finalizeEvent(t, mallory) as never) : id.sign(t)) }),
    });
    const err = await a.transport.connect(b.pubkey).catch((e: unknown) => e);
    // B refuses before sending `ready`, so A never counts the link as verified either. A hears
    // B's bye (refused) or sees the channel close first (failed), whichever comes first.
    expect(['ROOST_ERR_DIRECT_REFUSED', 'ROOST_ERR_DIRECT_FAILED']).toContain((err as { code: string }).code);
    const refusal = ['closed', 'peer failed the challenge: signed by someone else'];
    await waitFor(() => seenByB.some((e) => e[1] === refusal[1]), 'B refused the proof');
    // (An earlier entry may be a setup attempt libdatachannel dropped and A retried.)
    expect(seenByB.at(-1)).toEqual(refusal);
    expect(seenByB.some(([state]) => state === 'verified')).toBe(false);
    expect(a.transport.isDirect(b.pubkey) || b.transport.isDirect(a.pubkey)).toBe(false);
  });

  it('an agent that accepts nobody answers an offer with bye, and the caller fails fast', async () => {
    const b = await agent({ transport: { accept: () => false } });
    const a = await agent();
    const t0 = Date.now();
    const err = await a.transport.connect(b.pubkey).catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe('ROOST_ERR_DIRECT_REFUSED');
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
