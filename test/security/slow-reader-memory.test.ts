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
      await Promise.all(Array.from({ length: 50 }, () => c.publish(signEvent(author, { content: body }))));
    }
    for (let i = 0; i < 20; i++) await c.publish(signEvent(honestKey, { content: `note ${i}` }));
    c.close();
  }, 30_000);
  afterAll(() => relay.stop());

  it('20 connections × 50 REQs (limit 500 over 60 KB events) never reading: relay up, RSS bounded, honest REQ→EOSE p99 < 100 ms', async () => {
    const rssBefore = await relay.metric('process_resident_memory_bytes');
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
      if (i % 10 === 0) peakRss = Math.max(peakRss, await relay.metric('process_resident_memory_bytes'));
      await new Promise((r) => setTimeout(r, 50));
    }
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.ceil(latencies.length * 0.99) - 1]!;
    expect(relay.child.exitCode).toBeNull();
    expect(p99).toBeLessThan(100);
    // Before the fix: +182 MiB in this window, growing until the stall cut-off or an OOM.
    expect((peakRss - rssBefore) / 2 ** 20).toBeLessThan(64);
    for (const c of attackers) c.ws.terminate();
    honest.close();
  }, 20_000);
});
