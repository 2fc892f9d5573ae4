import { describe, expect, it } from 'vitest';
import type { SqliteStore } from '../../../relay/store/sqlite.js';
import { makeKey, nowSeconds } from '../../helpers/events.js';
import { authenticate, publishAll, seqReq, signFast } from '../../helpers/mailbox.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';
import { testBackends } from '../../helpers/backends.js';
import { PostgresStore } from '../../../relay/store/postgres.js';

// Retention by kind and age (advertised in NIP-11), which never removes mail still undelivered to
// an agent unless told to, and NIP-40 expiry, which removes expired mail from disk and from the
// undelivered count. Time moves through an injected clock; the sweeps run on their own timers.
const HOUR = 3600;
const DAY = 86400;

/** Ids of every event on disk (expired or not). */
async function storedIds(t: TestRelay): Promise<Set<string>> {
  const store = t.relay.ctx.store;
  if (store instanceof PostgresStore) return new Set((await store.pool.query<{ id: string }>('SELECT id FROM events')).rows.map((r) => r.id));
  return new Set((store as SqliteStore).db.prepare('SELECT id FROM events').pluck().all() as string[]);
}

async function orphanTags(t: TestRelay): Promise<number> {
  const store = t.relay.ctx.store;
  const sql = 'SELECT count(*) AS n FROM tags WHERE seq NOT IN (SELECT seq FROM events)';
  if (store instanceof PostgresStore) return (await store.pool.query<{ n: number }>(sql)).rows[0]!.n;
  return ((store as SqliteStore).db.prepare(sql).get() as { n: number }).n;
}

// The same rules on SQLite and on PostgreSQL (the sweep, the ledger it consults and the events in the shared database).
describe.each(testBackends({ late: false }))('retention ($name)', (backend) => {
  it('removes events past their kind age, first rule wins, keeping undelivered mail of known agents', async () => {
    const t = await backend.start({ retention: '1:1h, 7+9000-9999:1d, *:30d', retentionSweepSeconds: 1, mailboxQuota: 0 });
    try {
      const now = nowSeconds();
      const author = makeKey();
      const agent = makeKey();
      const unknown = makeKey();
      // The agent has authenticated once, so the relay keeps its undelivered mail.
      const a = await RawClient.connect(t.url);
      await authenticate(a, agent, t.url);

      const ev = {
        oldNote: signFast(author, { kind: 1, created_at: now - 2 * HOUR }),
        newNote: signFast(author, { kind: 1, created_at: now - 10 * 60 }),
        oldMail: signFast(author, { kind: 1, created_at: now - 2 * HOUR, tags: [['p', agent.pk]] }),
        oldToUnknown: signFast(author, { kind: 1, created_at: now - 2 * HOUR, tags: [['p', unknown.pk]] }),
        reaction2h: signFast(author, { kind: 7, created_at: now - 2 * HOUR }),
        reaction2d: signFast(author, { kind: 7, created_at: now - 2 * DAY }),
        custom2d: signFast(author, { kind: 9500, created_at: now - 2 * DAY }),
        article2d: signFast(author, { kind: 30023, created_at: now - 2 * DAY, tags: [['d', 'a']] }),
        dm40d: signFast(author, { kind: 4, created_at: now - 40 * DAY, tags: [['p', agent.pk]] }),
      };
      const w = await RawClient.connect(t.url);
      for (const ok of await publishAll(w, Object.values(ev))) expect(ok[2]).toBe(true);

      const info = (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { retention: unknown };
      expect(info.retention).toEqual([{ kinds: [1], time: HOUR }, { kinds: [7, [9000, 9999]], time: DAY }, { time: 30 * DAY }]);

      // The sweep runs on its timer (a pass may have started while the events were still arriving,
      // so wait for a pass that saw them all).
      const want = [ev.newNote.id, ev.oldMail.id, ev.reaction2h.id, ev.article2d.id, ev.dm40d.id].sort();
      await waitFor(async () => JSON.stringify([...(await storedIds(t))].sort()) === JSON.stringify(want), 'retention sweep', 10_000);
      expect([...(await storedIds(t))].sort()).toEqual(want);
      expect(await orphanTags(t)).toBe(0);

      // Once delivered, the agent's old mail goes the way of everything else.
      const r = await seqReq(a, 'in', { '#p': [agent.pk], seq_after: 0 });
      expect(r.events.map((e) => e.id)).toEqual([ev.oldMail.id, ev.dm40d.id]);
      expect(await t.relay.mailbox!.sweepRetention()).toBe(2);
      expect((await storedIds(t)).has(ev.oldMail.id)).toBe(false);
      expect((await storedIds(t)).has(ev.dm40d.id)).toBe(false);
      a.close();
      w.close();
    } finally {
      await t.close();
    }
  });

  it('with retentionKeepUndelivered off, undelivered mail ages out like the rest', async () => {
    const t = await backend.start({ retention: '*:1d', retentionKeepUndelivered: false });
    try {
      const agent = makeKey();
      const a = await RawClient.connect(t.url);
      await authenticate(a, agent, t.url);
      const old = signFast(makeKey(), { kind: 4, created_at: nowSeconds() - 2 * DAY, tags: [['p', agent.pk]] });
      const w = await RawClient.connect(t.url);
      await publishAll(w, [old]);
      expect((await t.relay.mailbox!.status(agent.pk)).undelivered).toBe(1);
      expect(await t.relay.mailbox!.sweepRetention()).toBe(1);
      expect((await t.relay.mailbox!.status(agent.pk)).undelivered).toBe(0);
      a.close();
      w.close();
    } finally {
      await t.close();
    }
  });

  it('an empty setting keeps everything and advertises no retention', async () => {
    const t = await backend.start();
    try {
      const info = (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as Record<string, unknown>;
      expect(info.retention).toBeUndefined();
      expect(await t.relay.mailbox!.sweepRetention()).toBe(0);
    } finally {
      await t.close();
    }
  });
});

describe('NIP-40 expiry of mail', () => {
  it('expired mail is never delivered on resume, leaves the undelivered count, and is swept from disk', async () => {
    let offset = 0;
    const t = await startRelay({ expirySweepSeconds: 1, mailboxQuota: 3 }, { now: () => nowSeconds() + offset });
    try {
      const agent = makeKey();
      const sender = makeKey();
      const a = await RawClient.connect(t.url);
      await authenticate(a, agent, t.url);
      const now = nowSeconds();
      const keep = signFast(sender, { kind: 4, content: 'keep', tags: [['p', agent.pk]] });
      const fleeting = signFast(sender, {
        kind: 4,
        content: 'fleeting',
        tags: [
          ['p', agent.pk],
          ['expiration', String(now + 60)],
        ],
      });
      const keep2 = signFast(sender, { kind: 4, content: 'keep2', tags: [['p', agent.pk]] });
      const w = await RawClient.connect(t.url);
      for (const ok of await publishAll(w, [keep, fleeting, keep2])) expect(ok[2]).toBe(true);
      expect((await t.relay.mailbox!.status(agent.pk)).undelivered).toBe(3);
      // The mailbox is full until the fleeting message expires.
      expect((await w.publish(signFast(sender, { kind: 4, tags: [['p', agent.pk]] })))[2]).toBe(false);

      offset = 120;
      expect((await t.relay.mailbox!.status(agent.pk)).undelivered).toBe(2);
      const late = signFast(sender, { kind: 4, content: 'late', tags: [['p', agent.pk]], created_at: nowSeconds() + 60 });
      expect((await w.publish(late))[2]).toBe(true);
      await waitFor(async () => !(await storedIds(t)).has(fleeting.id), 'expiry sweep', 5000);
      expect(await orphanTags(t)).toBe(0);
      const r = await seqReq(a, 'in', { '#p': [agent.pk], seq_after: 0 });
      expect(r.events.map((e) => e.content)).toEqual(['keep', 'keep2', 'late']);
      expect(await t.relay.mailbox!.status(agent.pk)).toEqual({ deliveredSeq: r.events[2]!.seq, undelivered: 0 });
      a.close();
      w.close();
    } finally {
      await t.close();
    }
  });
});
