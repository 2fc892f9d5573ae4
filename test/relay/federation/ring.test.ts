import { describe, expect, it } from 'vitest';
import { makeKey } from '../../helpers/events.js';
import { freePort } from '../../helpers/process.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';
import { fast, makeEvents, statsOf, storedIds, tempDirs } from './helpers.js';

const tempDir = tempDirs('roost-fedring-');

describe('a ring of three relays (A → B → C → A)', () => {
  it('converges, and the origin chain carried in `via` stops every event before it comes back: no duplicate at all', async () => {
    const [pA, pB, pC] = [await freePort(), await freePort(), await freePort()];
    const url = (p: number) => `ws://127.0.0.1:${p}`;
    // Each relay replicates the previous one: B reads A, C reads B, A reads C.
    const a = await startRelay({ port: pA, replicateFrom: url(pC) }, fast, tempDir());
    const b = await startRelay({ port: pB, replicateFrom: url(pA) }, fast, tempDir());
    const c = await startRelay({ port: pC, replicateFrom: url(pB) }, fast, tempDir());
    await waitFor(() => [a, b, c].every((t) => statsOf(t).live), 'every link live');
    const key = makeKey();
    const clients = await Promise.all([a, b, c].map((t) => RawClient.connect(t.url)));
    const written = ['a', 'b', 'c'].map((tag) => makeEvents([key], 50, tag));
    await Promise.all(written.flatMap((events, i) => events.map((e) => clients[i]!.publish(e))));
    await waitFor(() => [a, b, c].every((t) => storedIds(t).length === 150), 'all three have everything', 20_000);
    expect(storedIds(a)).toEqual(storedIds(b));
    expect(storedIds(b)).toEqual(storedIds(c));
    // Let an echo happen if it would, then count: each relay pulled exactly the other two relays' events.
    await new Promise((r) => setTimeout(r, 500));
    for (const t of [a, b, c]) {
      expect(statsOf(t)).toMatchObject({ pulled: 100, stored: 100, duplicates: 0, rejected: 0 });
      expect(t.relay.ctx.stats.replicationDuplicates).toBe(0);
    }
    for (const cl of clients) cl.close();
    for (const t of [c, b, a]) await t.close();
  }, 60_000);
});
