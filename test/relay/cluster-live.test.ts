import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../shared/event.js';
import { PostgresStore } from '../../relay/store/postgres.js';
import { createPgDatabase } from '../helpers/backends.js';
import { makeKey, nowSeconds, signEvent } from '../helpers/events.js';
import { postgresSkipReason } from '../helpers/postgres.js';
import { expectEachComplete, publishSpread, RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';

// Live fan-out across instances: three relays on one PostgreSQL database. Events are published
// through two of them while subscriptions open, at random moments, on the third; each must end up
// with every event exactly once, stored answer and live delivery together (the hand-over of
// live-gap.test.ts, now across instances: instance C only learns of A's and B's commits by NOTIFY
// and reads the rows itself).
const skip = postgresSkipReason();
if (skip) console.warn(skip);

describe.skipIf(skip !== undefined)('cluster: stored → live across instances', () => {
  const relays: TestRelay[] = [];
  beforeAll(async () => {
    const db = await createPgDatabase();
    const opts = { db, maxLimit: 5000, defaultLimit: 5000, maxSubscriptions: 1000 };
    // No polling: an instance learns of the others' commits only by NOTIFY.
    for (let i = 0; i < 3; i++) relays.push(await startRelay(opts, { store: await PostgresStore.open({ url: db, pollMs: 3_600_000 }) }));
  }, 60_000);
  afterAll(async () => {
    for (const r of relays) await r.close();
  });

  it('delivers events stored through A and B to subscriptions on C exactly once', async () => {
    const [a, b, c] = relays as [TestRelay, TestRelay, TestRelay];
    const author = makeKey();
    const TOTAL = 400;
    const base = nowSeconds() - TOTAL;
    const events = Array.from({ length: TOTAL }, (_, i) => signEvent(author, { content: `m${i}`, created_at: base + i }));
    const pubs = [await RawClient.connect(a.url), await RawClient.connect(b.url)];
    const sub = await RawClient.connect(c.url);
    const publishing = publishSpread(pubs, events);
    const subIds: string[] = [];
    let n = 0;
    let done = false;
    void publishing.then(() => (done = true));
    while (!done) {
      subIds.push(`s${n}`, `q${n}`);
      sub.send(['REQ', `s${n}`, { authors: [author.pk] }]);
      sub.send(['REQ', `q${n}`, { authors: [author.pk], seq_after: 0 }]);
      n++;
      await new Promise((r) => setTimeout(r, 15));
    }
    await publishing;
    expect(subIds.length).toBeGreaterThan(4);
    await expectEachComplete(sub, subIds, TOTAL, 20_000);
    for (const p of pubs) p.close();
    sub.close();
  }, 60_000);

  it('resumes on another instance from a cursor the first one handed out', async () => {
    const [a, b] = relays as [TestRelay, TestRelay];
    const inbox = makeKey();
    const writer = makeKey();
    const ca = await RawClient.connect(a.url);
    const cb = await RawClient.connect(b.url);
    for (let round = 0; round < 20; round++) {
      const ev = signEvent(writer, { content: `r${round}`, tags: [['t', inbox.pk]] });
      await ca.publish(ev);
      // The event's seq as A hands it out, used on B at once: B may not have read it yet. (A's
      // lastSeq() is no stand-in: A hands its own commits to fan-out through the same tail reader.)
      ca.send(['REQ', `a${round}`, { ids: [ev.id], seq_after: 0 }]);
      const handed = await ca.next((f) => f[0] === 'EVENT' && f[1] === `a${round}`, `seq of r${round} on A`);
      ca.send(['CLOSE', `a${round}`]);
      const cursor = (handed[3] as { seq: number }).seq;
      cb.send(['REQ', `r${round}`, { '#t': [inbox.pk], seq_after: cursor - 1 }]);
      const end = await cb.next((f) => (f[0] === 'EOSE' || f[0] === 'CLOSED') && f[1] === `r${round}`, `answer r${round}`);
      expect(end[0], `round ${round}: ${JSON.stringify(end)}`).toBe('EOSE');
      // B's tail may stand exactly one event behind (at cursor - 1: no catch-up needed to answer): then the
      // event follows EOSE live, as soon as B reads it. Either way once.
      await cb.next((f) => f[0] === 'EVENT' && f[1] === `r${round}`, `r${round} on B`);
      expect(cb.of('EVENT', `r${round}`).map((f) => (f[2] as NostrEvent).id)).toEqual([ev.id]);
      cb.send(['CLOSE', `r${round}`]);
    }
    ca.close();
    cb.close();
  });
});
