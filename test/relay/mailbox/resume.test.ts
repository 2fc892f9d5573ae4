import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import type { NostrEvent } from '../../../shared/event.js';
import { makeKey } from '../../helpers/events.js';
import { authenticate, seqReq, signFast } from '../../helpers/mailbox.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay } from '../../helpers/relay.js';

useWebSocketImplementation(WebSocket);

// Resume guarantees: from a cursor, an agent gets every stored, matching, unexpired event with a
// higher seq exactly once and in seq order — after a disconnect, after the relay restarted on the
// same database file, and after the agent itself restarted with a cursor it persisted.
describe('resume from a cursor', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'roost-resume-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Publishes through nostr-tools, which must see every one accepted. */
  async function publish(url: string, events: NostrEvent[]): Promise<void> {
    const relay = await Relay.connect(url);
    await Promise.all(events.map((e) => relay.publish(e)));
    relay.close();
  }

  it('after a disconnect, with other traffic in between', async () => {
    const t = await startRelay({}, {}, dir);
    try {
      const agent = makeKey();
      const sender = makeKey();
      const first = Array.from({ length: 30 }, (_, i) => signFast(sender, { kind: 4, content: `a${i}`, tags: [['p', agent.pk]] }));
      await publish(t.url, first);
      const c1 = await RawClient.connect(t.url);
      await authenticate(c1, agent, t.url);
      const p1 = await seqReq(c1, 'inbox', { '#p': [agent.pk], seq_after: 0, limit: 12 });
      expect(p1.events.map((e) => e.content)).toEqual(first.slice(0, 12).map((e) => e.content));
      c1.ws.terminate();

      const noise = Array.from({ length: 20 }, (_, i) => signFast(sender, { content: `noise${i}` }));
      const second = Array.from({ length: 10 }, (_, i) => signFast(sender, { kind: 4, content: `b${i}`, tags: [['p', agent.pk]] }));
      await publish(t.url, [...noise, ...second]);

      const c2 = await RawClient.connect(t.url);
      await authenticate(c2, agent, t.url);
      const rest = await seqReq(c2, 'inbox', { '#p': [agent.pk], seq_after: p1.cursor! });
      expect(rest.events.map((e) => e.content)).toEqual([...first.slice(12), ...second].map((e) => e.content));
      const all = [...p1.events, ...rest.events].map((e) => e.seq);
      expect(all).toEqual([...new Set(all)].sort((a, b) => a - b));
      c2.close();
    } finally {
      await t.close();
    }
  });

  it('after the relay restarted on the same database file, and after the agent restarted', async () => {
    const agent = makeKey();
    const sender = makeKey();
    const cursorFile = join(dir, 'agent-cursor');
    const before = Array.from({ length: 50 }, (_, i) => signFast(sender, { kind: 1059, content: `x${i}`, tags: [['p', agent.pk]] }));

    const t1 = await startRelay({}, {}, dir);
    await publish(t1.url, before);
    const c1 = await RawClient.connect(t1.url);
    await authenticate(c1, agent, t1.url);
    const page = await seqReq(c1, 'inbox', { '#p': [agent.pk], seq_after: 0, limit: 20 });
    expect(page.more).toBe(true);
    writeFileSync(cursorFile, String(page.cursor));
    const lastSeqBefore = t1.relay.ctx.store.lastSeq();
    c1.close();
    await t1.close();

    // A fresh relay process on the same file: sequence numbers continue, delivery accounting persisted.
    const t2 = await startRelay({ db: join(dir, 'roost.db') }, {}, dir);
    try {
      expect(await t2.relay.mailbox!.status(agent.pk)).toEqual({ deliveredSeq: page.events.at(-1)!.seq, undelivered: 30 });
      const after = Array.from({ length: 25 }, (_, i) => signFast(sender, { kind: 1059, content: `y${i}`, tags: [['p', agent.pk]] }));
      await publish(t2.url, after);
      expect((await t2.relay.mailbox!.status(agent.pk)).undelivered).toBe(55);

      // The agent restarted too: only its persisted cursor survives.
      const cursor = Number(readFileSync(cursorFile, 'utf8'));
      const c2 = await RawClient.connect(t2.url);
      await authenticate(c2, agent, t2.url);
      const rest = await seqReq(c2, 'inbox', { '#p': [agent.pk], seq_after: cursor });
      expect(rest.events.map((e) => e.content)).toEqual([...before.slice(20), ...after].map((e) => e.content));
      expect(rest.events.filter((e) => e.content.startsWith('y')).every((e) => e.seq > lastSeqBefore)).toBe(true);
      const seqs = [...page.events, ...rest.events].map((e) => e.seq);
      expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
      expect(await t2.relay.mailbox!.status(agent.pk)).toEqual({ deliveredSeq: seqs.at(-1), undelivered: 0 });
      c2.close();
    } finally {
      await t2.close();
    }
  });

  it('an idle cursor advances with EOSE, so resuming skips nothing and rescans nothing', async () => {
    const t = await startRelay({}, {}, dir);
    try {
      const agent = makeKey();
      const sender = makeKey();
      const c = await RawClient.connect(t.url);
      const r0 = await seqReq(c, 'a', { '#p': [agent.pk], seq_after: 0 });
      expect(r0.cursor).toBe(0);
      await publish(
        t.url,
        Array.from({ length: 15 }, (_, i) => signFast(sender, { content: `n${i}` })),
      );
      c.send(['CLOSE', 'a']);
      const r1 = await seqReq(c, 'b', { '#p': [agent.pk], seq_after: 0 });
      expect(r1).toMatchObject({ events: [], cursor: 15, more: false });
      const mine = signFast(sender, { content: 'mine', tags: [['p', agent.pk]] });
      c.send(['CLOSE', 'b']);
      await publish(t.url, [mine]);
      const r2 = await seqReq(c, 'c', { '#p': [agent.pk], seq_after: r1.cursor! });
      expect(r2.events.map((e) => [e.id, e.seq])).toEqual([[mine.id, 16]]);
      c.close();
    } finally {
      await t.close();
    }
  });
});
