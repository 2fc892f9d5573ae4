import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKey, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { type AttackedRelay, startAttackedRelay } from './support.js';

// Issue 14 point 8: a paused stored answer used to hold all its rows, so readers that asked for
// large answers and stopped reading grew the heap without bound (OOM at --max-old-space-size=512
// after 2 s for one connection). Now a pending answer holds seqs and reads bodies as it drains.
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
    for (let a = 0; a < 20; a++) {
      const c = await RawClient.connect(relay.url);
      c.ws.pause(); // reads nothing from now on
      for (let s = 0; s < 50; s++) c.send(['REQ', `s${s}`, { authors: [author.pk], limit: 500 }]);
      attackers.push(c);
    }
    const honest = await RawClient.connect(relay.url);
    const latencies: number[] = [];
    let peakRss = rssBefore;
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
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.ceil(latencies.length * 0.99) - 1]!;
    expect(relay.child.exitCode).toBeNull();
    expect(p99).toBeLessThan(100);
    // Unsent frames (queued strings count in the heap) are capped at max_outbound_bytes (8 MiB) per connection;
    // paused answers used to pin their rows in the heap on top of that.
    expect((peakRss - rssBefore) / 2 ** 20).toBeLessThan(20 * 8 + 96);
    expect((peakHeap - heapBefore) / 2 ** 20).toBeLessThan(20 * 8 + 48);
    for (const c of attackers) c.ws.terminate();
    honest.close();
  }, 20_000);
});
