import { afterEach, describe, expect, it } from 'vitest';
import type { InboxMessage } from '../../client/node/index.js';
import { loadNodeRtc } from '../../client/node/rtc.js';
import * as direct from '../../client/transport/index.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { dmTexts, startRecordingAgent, tempDir } from './helpers.js';

// Direct links through the agent API: `enableDirect` + `connectDirect`, then the same `send` and
// `onMessage` whichever path carries a message; a link killed mid-stream loses and doubles nothing.
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('agent direct links', () => {
  it('sends over a verified direct link, falls back to the relay when it dies, and hands each message over once', async () => {
    const r: TestRelay = await startRelay();
    cleanups.push(() => r.close());
    const rtc = await loadNodeRtc({ bindAddress: '127.0.0.1' });
    const start = async () => {
      const t = tempDir();
      cleanups.push(t.cleanup);
      const a = await startRecordingAgent(t.dir, [r.url]);
      cleanups.push(() => a.agent.close());
      const transport = a.agent.enableDirect({ direct, rtc, transport: { pingIntervalMs: 200, deadAfterMs: 1500, connectTimeoutMs: 8000 } });
      return { ...a, transport };
    };
    const alice = await start();
    const bob = await start();
    await Promise.all([alice.agent.whenConnected(), bob.agent.whenConnected()]);

    await alice.agent.connectDirect(bob.agent.npub);
    await waitFor(() => bob.transport.isDirect(alice.agent.pubkey), 'bob verified alice');
    const first = await alice.agent.send(bob.agent.pubkey, 'over the link');
    expect(first.path).toBe('direct');
    await waitFor(() => dmTexts(bob.got).length === 1, 'first message');
    const dms = () => bob.got.filter((x): x is Extract<InboxMessage, { type: 'dm' }> => x.type === 'dm');
    const m = dms()[0]!;
    expect([m.from, m.relay, m.content]).toEqual([alice.agent.pubkey, 'direct', 'over the link']);

    // A stream cut in the middle by the receiver.
    const N = 40;
    const texts = Array.from({ length: N }, (_, i) => `m${i}`);
    const sends: Array<Promise<{ path: string }>> = [];
    for (let i = 0; i < N; i++) {
      sends.push(alice.agent.send(bob.agent.pubkey, texts[i]!));
      if (i === 15) {
        // Cut once part of the stream has arrived over the link, with the rest still in flight.
        await waitFor(() => dmTexts(bob.got).length >= 6, 'part of the stream over the link');
        bob.transport.disconnect(alice.agent.pubkey, 'killed by the test');
      }
      if (i % 5 === 4) await new Promise((res) => setTimeout(res, 5));
    }
    const paths = (await Promise.all(sends)).map((s) => s.path);
    await waitFor(() => dmTexts(bob.got).length >= N + 1, `all ${N} messages`, 20_000);
    await new Promise((res) => setTimeout(res, 500)); // a late duplicate would show up here
    const got = dmTexts(bob.got).slice(1);
    expect(got.length).toBe(N);
    expect(new Set(got)).toEqual(new Set(texts));
    const via = dms()
      .slice(1)
      .map((x) => x.relay);
    expect(via.filter((v) => v === 'direct').length).toBeGreaterThan(0);
    expect(via.filter((v) => v === r.url).length).toBeGreaterThan(0);
    expect(paths.includes('relay')).toBe(true);
  }, 60_000);
});
