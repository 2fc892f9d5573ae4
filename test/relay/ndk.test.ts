import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { makeKey, nowSeconds } from '../helpers/events.js';
import type { TestRelay } from '../helpers/relay.js';
import { testBackends } from '../helpers/backends.js';
import { waitFor } from '../helpers/wait.js';

// NDK uses the global WebSocket, which Node 20 lacks; give it the ws implementation.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
const { default: NDK, NDKEvent, NDKPrivateKeySigner } = await import('@nostr-dev-kit/ndk');

describe.each(testBackends({ late: false }))('NIP-01 with NDK ($name)', (backend) => {
  let t: TestRelay;
  beforeAll(async () => (t = await backend.start()));
  afterAll(async () => t.close());

  it('publishes, fetches and subscribes', async () => {
    const key = makeKey();
    const signer = new NDKPrivateKeySigner(Buffer.from(key.sk).toString('hex'));
    const ndk = new NDK({ explicitRelayUrls: [t.url], signer, enableOutboxModel: false });
    await ndk.connect(5000);
    await waitFor(() => ndk.pool.connectedRelays().length === 1, 'NDK connected');

    const seen: string[] = [];
    const sub = ndk.subscribe({ kinds: [1], authors: [key.pk] }, { closeOnEose: false });
    sub.on('event', (e: { id: string }) => seen.push(e.id));

    const ev = new NDKEvent(ndk, { kind: 1, content: 'hello from NDK', tags: [['t', 'roost']], created_at: nowSeconds() } as never);
    const published = await ev.publish();
    expect([...published].map((r) => r.url.replace(/\/$/, ''))).toEqual([t.url]);
    await waitFor(() => seen.includes(ev.id), 'live event via NDK');

    const fetched = await ndk.fetchEvents({ '#t': ['roost'], authors: [key.pk] });
    expect([...fetched].map((e) => e.id)).toEqual([ev.id]);
    const replaced1 = new NDKEvent(ndk, { kind: 0, content: '{"name":"a"}', tags: [], created_at: nowSeconds() - 10 } as never);
    const replaced2 = new NDKEvent(ndk, { kind: 0, content: '{"name":"b"}', tags: [], created_at: nowSeconds() } as never);
    await replaced1.publish();
    await replaced2.publish();
    const profile = await ndk.fetchEvent({ kinds: [0], authors: [key.pk] });
    expect(profile?.content).toBe('{"name":"b"}');
    sub.stop();
    for (const r of ndk.pool.relays.values()) r.disconnect();
  });
});
