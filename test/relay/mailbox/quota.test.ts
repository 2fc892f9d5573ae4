import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { npubEncode } from 'nostr-tools/nip19';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import type { SqliteStore } from '../../../relay/store/sqlite.js';
import { makeKey, type Key } from '../../helpers/events.js';
import { authenticate, publishAll, seqReq, signFast } from '../../helpers/mailbox.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';
import { testBackends } from '../../helpers/backends.js';

useWebSocketImplementation(WebSocket);

// Per-recipient mailbox quota and delivery accounting: a full mailbox refuses the sender with a
// clear reason instead of dropping anything; reading the mailbox frees it; the ledger knows what
// each agent has been delivered, persists it in coalesced writes, and sums the global backlog.
// The same quota on SQLite and on PostgreSQL (ledger and counts in the shared database, the policy over replayed reads).
describe.each(testBackends({ late: false }))('mailbox quota ($name)', (backend) => {
  let t: TestRelay;
  let sender: Key;
  let agent: Key;
  beforeEach(async () => {
    t = await backend.start({ mailboxQuota: 5 });
    sender = makeKey();
    agent = makeKey();
  });
  afterEach(async () => {
    await t.close();
  });

  it('refuses the sender with rate-limited once the mailbox is full, through a standard client', async () => {
    const relay = await Relay.connect(t.url);
    const mail = Array.from({ length: 5 }, (_, i) => signFast(sender, { kind: 4, content: `${i}`, tags: [['p', agent.pk]] }));
    for (const m of mail) await relay.publish(m);
    const sixth = signFast(sender, { kind: 4, content: 'six', tags: [['p', agent.pk]] });
    await expect(relay.publish(sixth)).rejects.toThrow(`rate-limited: mailbox of ${npubEncode(agent.pk)} is full`);
    // Nothing was stored for it, and nothing already stored was dropped.
    expect(await t.relay.ctx.store.isKnown(sixth.id)).toBeUndefined();
    expect(await t.relay.mailbox!.status(agent.pk)).toEqual({ deliveredSeq: 0, undelivered: 5 });
    // An event naming the full mailbox among other recipients is refused as a whole.
    const other = makeKey();
    await expect(
      relay.publish(
        signFast(sender, {
          tags: [
            ['p', other.pk],
            ['p', agent.pk],
          ],
        }),
      ),
    ).rejects.toThrow(/^rate-limited: mailbox of npub1/);
    // Other mailboxes, state kinds (replaceable, addressable), and resubmissions still pass.
    await relay.publish(signFast(sender, { tags: [['p', other.pk]] }));
    await relay.publish(signFast(sender, { kind: 3, tags: [['p', agent.pk]] }));
    await relay.publish(
      signFast(sender, {
        kind: 30000,
        tags: [
          ['d', 'x'],
          ['p', agent.pk],
        ],
      }),
    );
    const c = await RawClient.connect(t.url);
    const dup = await c.publish(mail[0]!);
    expect(dup).toEqual(['OK', mail[0]!.id, true, 'duplicate: already have this event']);
    c.close();
    relay.close();
  });

  it('a burst to an empty mailbox is admitted up to the quota, not past it', async () => {
    const w = await RawClient.connect(t.url);
    const burst = Array.from({ length: 20 }, (_, i) => signFast(sender, { content: `${i}`, tags: [['p', agent.pk]] }));
    const oks = await publishAll(w, burst);
    expect(oks.filter((o) => o[2] === true)).toHaveLength(5);
    expect(oks.filter((o) => o[2] === false).every((o) => String(o[3]).startsWith('rate-limited: mailbox of npub1'))).toBe(true);
    expect((await t.relay.mailbox!.status(agent.pk)).undelivered).toBe(5);
    w.close();
  });

  it('reading the mailbox frees exactly what was delivered', async () => {
    const w = await RawClient.connect(t.url);
    const mail = Array.from({ length: 5 }, (_, i) => signFast(sender, { kind: 1059, content: `${i}`, tags: [['p', agent.pk]] }));
    await publishAll(w, mail);
    const more = Array.from({ length: 3 }, (_, i) => signFast(sender, { kind: 1059, content: `more${i}`, tags: [['p', agent.pk]] }));
    expect((await w.publish(more[0]!))[2]).toBe(false);

    const a = await RawClient.connect(t.url);
    await authenticate(a, agent, t.url);
    const page = await seqReq(a, 'in', { '#p': [agent.pk], seq_after: 0, limit: 2 });
    expect(page.events).toHaveLength(2);
    expect(await t.relay.mailbox!.status(agent.pk)).toEqual({ deliveredSeq: page.events[1]!.seq, undelivered: 3 });
    // Two slots are free, not three.
    const oks = await publishAll(w, more);
    expect(oks.map((o) => o[2])).toEqual([true, true, false]);

    const rest = await seqReq(a, 'in2', { '#p': [agent.pk], seq_after: page.cursor! });
    expect(rest.events).toHaveLength(5);
    expect((await t.relay.mailbox!.status(agent.pk)).undelivered).toBe(0);
    const again = signFast(sender, { kind: 1059, content: 'again', tags: [['p', agent.pk]] });
    expect(await w.publish(again)).toEqual(['OK', again.id, true, '']);
    // Delivered live on the open tail subscription.
    await waitFor(async () => (await t.relay.mailbox!.status(agent.pk)).undelivered === 0, 'live delivery accounted');
    a.close();
    w.close();
  });

  it('an unauthenticated reader does not count as delivery', async () => {
    const w = await RawClient.connect(t.url);
    await publishAll(
      w,
      Array.from({ length: 3 }, (_, i) => signFast(sender, { content: `${i}`, tags: [['p', agent.pk]] })),
    );
    const r = await seqReq(w, 'peek', { '#p': [agent.pk], seq_after: 0 });
    expect(r.events).toHaveLength(3);
    const stranger = await RawClient.connect(t.url);
    await authenticate(stranger, makeKey(), t.url);
    expect((await seqReq(stranger, 'peek', { '#p': [agent.pk], seq_after: 0 })).events).toHaveLength(3);
    expect(await t.relay.mailbox!.status(agent.pk)).toEqual({ deliveredSeq: 0, undelivered: 3 });
    w.close();
    stranger.close();
  });
});

describe('delivery ledger', () => {
  it('persists coalesced, survives a restart, and sums the global backlog', async () => {
    const t = await startRelay({ mailboxQuota: 0, mailboxFlushMs: 60000 });
    const dbPath = t.dbPath;
    const sender = makeKey();
    const agents = [makeKey(), makeKey(), makeKey()];
    const w = await RawClient.connect(t.url);
    const evs = agents.flatMap((a, i) => Array.from({ length: 4 + i }, (_, j) => signFast(sender, { content: `${i}.${j}`, tags: [['p', a.pk]] })));
    // One event addressed to two agents counts for each, once (even with a repeated tag).
    evs.push(
      signFast(sender, {
        tags: [
          ['p', agents[0]!.pk],
          ['p', agents[1]!.pk],
          ['p', agents[1]!.pk],
        ],
      }),
    );
    await publishAll(w, evs);
    w.close();

    const c = await RawClient.connect(t.url);
    await authenticate(c, agents[0]!, t.url);
    await authenticate(c, agents[1]!, t.url);
    const read = await seqReq(c, 'x', { '#p': [agents[0]!.pk], seq_after: 0, limit: 3 });
    expect(read.events).toHaveLength(3);
    c.close();

    const mb = t.relay.mailbox!;
    expect(await mb.status(agents[0]!.pk)).toEqual({ deliveredSeq: read.events[2]!.seq, undelivered: 2 });
    expect(await mb.status(agents[1]!.pk)).toEqual({ deliveredSeq: 0, undelivered: 6 });
    expect(await mb.status(agents[2]!.pk)).toEqual({ deliveredSeq: 0, undelivered: 6 });
    // Nothing written yet: deliveries only touch memory until the (long) flush interval.
    const rows = () => (t.relay.ctx.store as SqliteStore).db.prepare('SELECT pubkey, delivered_seq FROM mailbox_delivery').all();
    expect(rows()).toEqual([]);
    // Agents 0 and 1 authenticated here, agent 2 never did: the backlog covers known agents.
    expect(await mb.backlog()).toEqual({ agents: 2, waiting: 2, undelivered: 8 });
    expect(rows()).toHaveLength(2);
    await t.close({ keep: true });

    const t2 = await startRelay({ db: dbPath, mailboxQuota: 0 }, {}, t.dir);
    try {
      expect(await t2.relay.mailbox!.status(agents[0]!.pk)).toEqual({ deliveredSeq: read.events[2]!.seq, undelivered: 2 });
      expect(await t2.relay.mailbox!.backlog()).toEqual({ agents: 2, waiting: 2, undelivered: 8 });
    } finally {
      await t2.close();
    }
  });
});
