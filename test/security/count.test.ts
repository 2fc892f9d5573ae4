import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKey, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { type AttackedRelay, startAttackedRelay } from './support.js';

// Issue 14 point 7: COUNT used to read every matching row (bodies included) once per filter:
// ten `{}` filters over large events loaded the store ten times into memory.
describe('security: COUNT is an SQL count', () => {
  let relay: AttackedRelay;
  const key = makeKey();
  beforeAll(async () => {
    relay = await startAttackedRelay();
    const c = await RawClient.connect(relay.url);
    const body = 'a'.repeat(60_000);
    for (let i = 0; i < 300; i += 30) {
      await Promise.all(Array.from({ length: 30 }, (_, j) => c.publish(signEvent(key, { content: body, tags: [['t', `n${i + j}`]] }))));
    }
    c.close();
  }, 30_000);
  afterAll(() => relay.stop());

  it('counts the union of overlapping filters (not the sum)', async () => {
    const c = await RawClient.connect(relay.url);
    c.send(['COUNT', 'u', { '#t': ['n1', 'n2', 'n3'] }, { '#t': ['n2', 'n3', 'n4'] }, { authors: [key.pk], limit: 1 }]);
    const f = await c.next((m) => m[0] === 'COUNT' && m[1] === 'u', 'COUNT');
    expect(f[2]).toEqual({ count: 300 });
    c.send(['COUNT', 'v', { '#t': ['n1', 'n2', 'n3'] }, { '#t': ['n2', 'n3', 'n4'] }]);
    expect((await c.next((m) => m[0] === 'COUNT' && m[1] === 'v', 'COUNT'))[2]).toEqual({ count: 4 });
    c.close();
  });

  it('ten {} filters over 18 MB of events, five times: RSS grows < 60 MiB and the loop is never blocked 300 ms', async () => {
    const c = await RawClient.connect(relay.url);
    const rssBefore = await relay.metric('process_resident_memory_bytes');
    await relay.metric('nodejs_eventloop_lag_max_seconds');
    let peak = rssBefore;
    for (let i = 0; i < 5; i++) {
      c.send(['COUNT', `c${i}`, ...Array.from({ length: 10 }, () => ({}))]);
      const f = await c.next((m) => m[0] === 'COUNT' && m[1] === `c${i}`, 'COUNT');
      expect(f[2]).toEqual({ count: 300 });
      peak = Math.max(peak, await relay.metric('process_resident_memory_bytes'));
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(await relay.metric('nodejs_eventloop_lag_max_seconds')).toBeLessThan(0.3);
    expect((peak - rssBefore) / 2 ** 20).toBeLessThan(60);
    c.close();
  });
});
