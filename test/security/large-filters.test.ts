import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKey, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { type AttackedRelay, startAttackedRelay } from './support.js';

// Issue 14 point 9: a REQ within the advertised limits (#a with 16 values, #b/#c/#d with 1000
// each) exceeded SQLite's bound-variable limit, was answered `error: internal error`, and kept its
// subscription slot, so 50 of them locked the connection out of subscribing.
describe('security: large filters within the limits are answered', () => {
  let relay: AttackedRelay;
  beforeAll(async () => {
    relay = await startAttackedRelay();
  });
  afterAll(() => relay.stop());

  const values = (p: string, n: number) => Array.from({ length: n }, (_, i) => `${p}${i}`);
  const big = { '#a': values('a', 16), '#b': values('b', 1000), '#c': values('c', 1000), '#d': values('d', 1000) };

  it('answers 50 such REQs (stored match included), then still opens subscriptions after closing them', async () => {
    const c = await RawClient.connect(relay.url);
    const match = signEvent(makeKey(), {
      tags: [
        ['a', 'a15'],
        ['b', 'b999'],
        ['c', 'c0'],
        ['d', 'd500'],
      ],
    });
    expect((await c.publish(match))[2]).toBe(true);
    expect(JSON.stringify(['REQ', 's', big]).length).toBeLessThan(131_072); // the advertised max_message_length
    for (let i = 0; i < 50; i++) c.send(['REQ', `s${i}`, big]);
    await c.next(() => c.of('EOSE').length + c.of('CLOSED').length >= 50, '50 answers', 15_000);
    expect(c.of('CLOSED')).toEqual([]);
    expect(c.of('EVENT').map((f) => (f[2] as { id: string }).id)).toEqual(Array(50).fill(match.id));
    for (let i = 0; i < 50; i++) c.send(['CLOSE', `s${i}`]);
    c.send(['COUNT', 'n', big, { ids: [match.id] }]);
    expect((await c.next((m) => m[0] === 'COUNT', 'COUNT'))[2]).toEqual({ count: 1 });
    const after = await c.req('after', { '#b': values('b', 1000) });
    expect(after.map((e) => e.id)).toEqual([match.id]);
    expect(relay.output()).not.toMatch(/too many SQL variables|"level":50/);
    c.close();
  });
});
