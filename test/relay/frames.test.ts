import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeTextFrames } from '../../relay/connection.js';
import { makeKey, nowSeconds, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';

// A turn's frames leave a connection framed by Roost in one socket write (not one header and one payload write per
// frame through `ws`): every payload length form of RFC 6455 (7-bit, 16-bit, 64-bit) and multi-byte UTF-8 must reach
// a real WebSocket parser as the same messages, in order.
/** ws's own frame parser (exported at run time, not in its type declarations). */
type Receiver = { on(event: 'message', fn: (data: Buffer, isBinary: boolean) => void): void; write(chunk: Buffer): void };
const { Receiver } = WebSocket as unknown as { Receiver: new (opts: { isServer: boolean; maxPayload: number }) => Receiver };

const texts = ['', 'a', 'x'.repeat(125), 'y'.repeat(126), 'z'.repeat(65535), 'w'.repeat(65536), 'é☃😀'.repeat(9000), '["EOSE","s"]'];

describe('frames written together', () => {
  it('parse back, through ws, to the same text messages in order', async () => {
    const frames = texts.map((t, i) => (i % 2 === 0 ? t : Buffer.from(t)));
    const sizes = texts.map((t) => Buffer.byteLength(t));
    const total = sizes.reduce((a, n) => a + n + (n < 126 ? 2 : n < 65536 ? 4 : 10), 0);
    const bytes = encodeTextFrames(frames, sizes, total);
    expect(bytes.length).toBe(total);
    const got: string[] = [];
    const receiver = new Receiver({ isServer: false, maxPayload: 1 << 20 });
    receiver.on('message', (data, isBinary) => {
      expect(isBinary).toBe(false);
      got.push(data.toString('utf8'));
    });
    // Split at odd places, as TCP would.
    for (let at = 0; at < bytes.length; at += 7919) receiver.write(bytes.subarray(at, Math.min(bytes.length, at + 7919)));
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual(texts);
  });

  describe('over a real socket', () => {
    let relay: TestRelay;
    beforeAll(async () => {
      relay = await startRelay();
    });
    afterAll(async () => {
      await relay.close();
    });

    it('a stored answer of small, 16-bit and 64-bit length events with multi-byte text arrives whole, then EOSE', async () => {
      const key = makeKey();
      const contents = ['hi', 'é'.repeat(200), '☃'.repeat(21_000), 'x'.repeat(60_000), '😀'.repeat(16_000)];
      const c = await RawClient.connect(relay.url);
      const events = contents.map((content, i) => signEvent(key, { kind: 1, content, created_at: nowSeconds() - 100 + i }));
      for (const ev of events) expect(await c.publish(ev)).toEqual(['OK', ev.id, true, '']);
      for (const limit of [3, 500]) {
        const got = await c.req(`s${limit}`, { authors: [key.pk], limit });
        const want = events.slice().reverse().slice(0, limit);
        expect(got.map((e) => e.id)).toEqual(want.map((e) => e.id));
        expect(got.every((e, k) => e.content === want[k]!.content)).toBe(true);
      }
      const page = await c.req('seq', { authors: [key.pk], seq_after: 0, limit: 10 });
      expect(page.map((e) => (e.content as string).length)).toEqual(contents.map((t) => t.length));
      expect(page.every((e, k) => e.content === contents[k])).toBe(true);
      c.close();
    });
  });
});
