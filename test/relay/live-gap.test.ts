import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKey, nowSeconds, signEvent } from '../helpers/events.js';
import { expectEachComplete, publishSpread, RawClient } from '../helpers/raw-client.js';
import type { TestRelay } from '../helpers/relay.js';
import { testBackends } from '../helpers/backends.js';

// History then live, with no gap and no duplicate: subscriptions open at random moments while
// publishers write at full speed; each must end up with every matching event exactly once.
// Run against each store backend: SQLite, and one answering every read later (as a networked one does).
describe.each(testBackends())('stored → live hand-over ($name)', (backend) => {
  let t: TestRelay;
  beforeAll(async () => (t = await backend.start({ maxLimit: 5000, defaultLimit: 5000, maxSubscriptions: 1000 })));
  afterAll(async () => t.close());

  it('delivers every event exactly once to subscriptions opened during a write flood', async () => {
    const author = makeKey();
    const TOTAL = 600;
    const base = nowSeconds() - TOTAL;
    const events = Array.from({ length: TOTAL }, (_, i) => signEvent(author, { content: `m${i}`, created_at: base + i }));
    const pubs = await Promise.all([1, 2, 3].map(() => RawClient.connect(t.url)));
    const sub = await RawClient.connect(t.url);
    // Three publishers, each keeping 16 events in flight.
    const publishing = publishSpread(pubs, events);
    const subIds: string[] = [];
    let n = 0;
    let done = false;
    void publishing.then(() => (done = true));
    while (!done) {
      const id = `s${n++}`;
      subIds.push(id);
      sub.send(['REQ', id, { authors: [author.pk] }]);
      const seqId = `q${n}`;
      subIds.push(seqId);
      sub.send(['REQ', seqId, { authors: [author.pk], seq_after: 0 }]);
      await new Promise((r) => setTimeout(r, 15));
    }
    await publishing;
    expect(subIds.length).toBeGreaterThan(6);
    await expectEachComplete(sub, subIds, TOTAL, 15_000);
    for (const p of pubs) p.close();
    sub.close();
  });
});
