import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKey, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { type AttackedRelay, startAttackedRelay } from './support.js';

// Issue 14 point 8: a paused stored answer used to hold all its rows, so readers that asked for
// large answers and stopped reading grew the heap without bound (OOM at --max-old-space-size=512
// after 2 s for one connection). Now a pending answer holds seqs and reads bodies as it drains.
// Checked against builds of d8bdeba (just before the streaming change) and 2e4d805 (before points 6-9),
// run with ROOST_SECURITY_DIST=<their dist/>: both die within a second ("JavaScript heap out of memory" in
// better-sqlite3's Statement.all materialising answers) and this test fails on `relay stays up`.
describe('security: readers that stop reading cannot exhaust memory', () => {
  let relay: AttackedRelay;
  const author = makeKey();
  const honestKey = makeKey();
  beforeAll(async () => {
    relay = await startAttackedRelay({ NODE_OPTIONS: '--max-old-space-size=256' });
    const c = await RawClient.connect(relay.url);
    const body = 'b'.repeat(60_000);
    for (let i = 0; i < 500; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => c.publish(signEvent(author, { content: body + (i + j) }))));
    }
    for (let i = 0; i < 20; i++) await c.publish(signEvent(honestKey, { content: `note ${i}` }));
    c.send(['COUNT', 'n', { authors: [author.pk] }]);
    expect((await c.next((m) => m[0] === 'COUNT', 'COUNT'))[2]).toEqual({ count: 500 });
    c.close();
  }, 30_000);
  afterAll(() => relay.stop());

  it('20 connections × 50 REQs (limit 500 over 60 KB events) never reading: relay up, RSS bounded, honest REQ→EOSE p99 < 100 ms', async () => {
    const rssBefore = await relay.metric('process_resident_memory_bytes');
    const heapBefore = await relay.metric('nodejs_heap_size_used_bytes');
    let peakHeap = heapBefore;
    const attackers: RawClient[] = [];
    const latencies: number[] = [];
    let peakRss = rssBefore;
    let honest: RawClient | undefined;
    let failure: unknown;
    try {
      for (let a = 0; a < 20; a++) {
        const c = await RawClient.connect(relay.url);
        c.ws.on('error', () => {}); // a relay that died resets it: reported below, by the relay's own state
        c.ws.pause(); // reads nothing from now on
        for (let s = 0; s < 50; s++) c.send(['REQ', `s${s}`, { authors: [author.pk], limit: 500 }]);
        attackers.push(c);
      }
      honest = await RawClient.connect(relay.url);
      honest.ws.on('error', () => {});
      for (let i = 0; i < 60; i++) {
        const start = performance.now();
        const events = await honest.req(`h${i}`, { authors: [honestKey.pk], limit: 20 });
        latencies.push(performance.now() - start);
        expect(events).toHaveLength(20);
        honest.send(['CLOSE', `h${i}`]);
        if (i % 5 === 0) {
          peakRss = Math.max(peakRss, await relay.metric('process_resident_memory_bytes'));
          peakHeap = Math.max(peakHeap, await relay.metric('nodejs_heap_size_used_bytes'));
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    } catch (err) {
      failure = err;
      await Promise.race([relay.exited, new Promise((r) => setTimeout(r, 2000))]);
    }
    const died = /FATAL ERROR[^\n]*|[^\n]*heap out of memory/.exec(relay.output());
    expect(died?.[0], 'relay stays up').toBeUndefined();
    expect(relay.child.exitCode, 'relay stays up').toBeNull();
    if (failure !== undefined) throw failure;
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.ceil(latencies.length * 0.99) - 1]!;
    expect(p99).toBeLessThan(100);
    // Unsent frames (queued strings count in the heap) are capped at max_outbound_bytes (8 MiB) per connection;
    // paused answers used to pin their rows in the heap on top of that.
    expect((peakRss - rssBefore) / 2 ** 20).toBeLessThan(20 * 8 + 96);
    expect((peakHeap - heapBefore) / 2 ** 20).toBeLessThan(20 * 8 + 48);
    for (const c of attackers) c.ws.terminate();
    honest?.close();
  }, 20_000);
});
