import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import type { NostrEvent } from '../../../shared/event.js';
import { makeKey, type Key } from '../../helpers/events.js';
import { publishAll, seqEvents, seqReq, signFast } from '../../helpers/mailbox.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';

useWebSocketImplementation(WebSocket);

// The sequence extension on the wire (docs/protocol.md, "Sequence extension"), through a bare
// WebSocket client against a real relay on a real SQLite file.
describe('sequence extension', () => {
  let t: TestRelay;
  let c: RawClient;
  const sender = makeKey();
  let inbox: Key;
  let mail: NostrEvent[];
  let seqs: number[];

  beforeAll(async () => {
    t = await startRelay({ maxLimit: 10, defaultLimit: 10, maxSubscriptions: 3 });
    c = await RawClient.connect(t.url);
    inbox = makeKey();
    // Interleave unrelated events so the inbox's seqs are not contiguous.
    const evs: NostrEvent[] = [];
    mail = [];
    for (let i = 0; i < 35; i++) {
      const m = signFast(sender, { content: `m${i}`, tags: [['p', inbox.pk]] });
      mail.push(m);
      evs.push(m, signFast(sender, { content: `noise${i}` }));
    }
    for (const ok of await publishAll(c, evs)) expect(ok[2]).toBe(true);
    const all = await seqReq(c, 'all', { '#p': [inbox.pk], seq_after: 0 });
    c.send(['CLOSE', 'all']);
    seqs = all.events.map((e) => e.seq);
    expect(seqs).toHaveLength(35);
  });
  afterAll(async () => {
    c.close();
    await t.close();
  });

  it('leaves plain NIP-01 frames untouched when the extension is not used', async () => {
    const start = c.frames.length;
    const evs = await c.req('plain', { '#p': [inbox.pk], limit: 3 });
    expect(evs).toHaveLength(3);
    const frames = c.frames.slice(start);
    for (const f of frames.filter((x) => x[0] === 'EVENT')) expect(f).toHaveLength(3);
    expect(frames.find((x) => x[0] === 'EOSE')).toEqual(['EOSE', 'plain']);
    c.send(['CLOSE', 'plain']);
  });

  it('pages through a backlog larger than max limit by keyset, exactly once and in order', async () => {
    const got: string[] = [];
    const gotSeqs: number[] = [];
    let cursor = 0;
    const mores: boolean[] = [];
    // Each page on a fresh subscription id: finished pages must not hold subscription slots (max 3).
    for (let page = 0; page < 10; page++) {
      const r = await seqReq(c, `page${page}`, { '#p': [inbox.pk], seq_after: cursor, limit: 10 });
      expect(r.closed).toBeUndefined();
      expect(r.events.length).toBeLessThanOrEqual(10);
      got.push(...r.events.map((e) => e.id));
      gotSeqs.push(...r.events.map((e) => e.seq));
      mores.push(r.more!);
      cursor = r.cursor!;
      if (!r.more) break;
    }
    expect(got).toEqual(mail.map((m) => m.id));
    expect(gotSeqs).toEqual([...gotSeqs].sort((a, b) => a - b));
    expect(mores).toEqual([true, true, true, false]);
    // Caught up: the cursor is the newest seq even though the last inbox event is older (noise after it).
    expect(cursor).toBe(t.relay.ctx.store.lastSeq());
    expect(cursor).toBeGreaterThan(gotSeqs.at(-1)!);
  });

  it('the last page goes live and EVENT frames carry the seq', async () => {
    const r = await seqReq(c, 'tail-page', { '#p': [inbox.pk], seq_after: seqs.at(-1)!, limit: 10 });
    expect(r).toMatchObject({ events: [], more: false });
    const live = signFast(sender, { content: 'live', tags: [['p', inbox.pk]] });
    await c.publish(live);
    const f = await c.next((x) => x[0] === 'EVENT' && x[1] === 'tail-page', 'live event');
    expect((f[2] as NostrEvent).id).toBe(live.id);
    expect(f[3]).toEqual({ seq: t.relay.ctx.store.lastSeq() });
    c.send(['CLOSE', 'tail-page']);
  });

  it('serves a bounded range (seq_after, seq_until] and never goes live', async () => {
    const r = await seqReq(c, 'range', { '#p': [inbox.pk], seq_after: seqs[4]!, seq_until: seqs[9]! });
    expect(r.events.map((e) => e.seq)).toEqual(seqs.slice(5, 10));
    expect(r).toMatchObject({ cursor: seqs[9], more: false });
    const r2 = await seqReq(c, 'range2', { '#p': [inbox.pk], seq_after: 0, seq_until: seqs[30]!, limit: 10 });
    expect(r2.events.map((e) => e.seq)).toEqual(seqs.slice(0, 10));
    expect(r2).toMatchObject({ cursor: seqs[9], more: true });
  });

  it('tail mode streams a backlog of several chunks, then EOSE with the cursor, then live', async () => {
    const k = makeKey();
    const evs = Array.from({ length: 1234 }, (_, i) => signFast(sender, { content: `t${i}`, tags: [['p', k.pk]] }));
    await publishAll(c, evs);
    const start = c.frames.length;
    const r = await seqReq(c, 'tail', { '#p': [k.pk], seq_after: 0 });
    expect(r.events.map((e) => e.id)).toEqual(evs.map((e) => e.id));
    expect(r).toMatchObject({ cursor: t.relay.ctx.store.lastSeq(), more: false });
    const live = signFast(sender, { content: 'after', tags: [['p', k.pk]] });
    await c.publish(live);
    await waitFor(() => seqEvents(c, 'tail', start).length === 1235, 'live after tail');
    expect(seqEvents(c, 'tail', start).at(-1)!.id).toBe(live.id);
    c.send(['CLOSE', 'tail']);
  });

  it('a standard client sending seq_after gets the backlog in seq order, then live events', async () => {
    const relay = await Relay.connect(t.url);
    const got: string[] = [];
    let eose = false;
    const sub = relay.subscribe([{ '#p': [inbox.pk], seq_after: seqs[29]! } as never], {
      onevent: (e) => got.push(e.id),
      oneose: () => (eose = true),
    });
    await waitFor(() => eose, 'EOSE');
    const raw = await seqReq(c, 'compare', { '#p': [inbox.pk], seq_after: seqs[29]! });
    c.send(['CLOSE', 'compare']);
    expect(raw.events.slice(0, 5).map((e) => e.id)).toEqual(mail.slice(30).map((m) => m.id));
    expect(got).toEqual(raw.events.map((e) => e.id));
    const live = signFast(sender, { content: 'live for nostr-tools', tags: [['p', inbox.pk]] });
    await relay.publish(live);
    await waitFor(() => got.includes(live.id), 'live event');
    sub.close();
    relay.close();
  });

  it('refuses a cursor ahead of the newest seq, mismatched ranges, and COUNT with a range', async () => {
    const ahead = await seqReq(c, 'ahead', { '#p': [inbox.pk], seq_after: t.relay.ctx.store.lastSeq() + 1 });
    expect(ahead.closed).toMatch(/^invalid: history-reset: seq_after \d+ is ahead of this relay's newest sequence number/);
    const mixed = await seqReq(c, 'mixed', { '#p': [inbox.pk], seq_after: 1 }, { kinds: [1], seq_after: 2 });
    expect(mixed.closed).toMatch(/^invalid: every filter of a sequence REQ/);
    const noAfter = await seqReq(c, 'noafter', { seq_until: 5 });
    expect(noAfter.closed).toMatch(/^invalid: seq_until needs seq_after/);
    c.send(['COUNT', 'cnt', { '#p': [inbox.pk], seq_after: 0 }]);
    expect((await c.closedOf('cnt'))[2]).toMatch(/^invalid: COUNT does not take sequence ranges/);
  });

  it('advertises the extension in NIP-11 under roost, with only standard NIPs in supported_nips', async () => {
    const res = await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } });
    const info = (await res.json()) as { supported_nips: number[]; roost: Record<string, unknown> };
    expect(info.roost).toMatchObject({ seq: true, seq_page_limit: 10, private_kinds: [4, 1059], mailbox_quota: 10000 });
    expect(info.supported_nips.every((n) => [1, 9, 11, 40, 42, 45, 70, 77, 86].includes(n))).toBe(true);
  });
});

describe('tail backfill of large events', () => {
  it('paces a backlog far larger than the outbound cap instead of cutting the client off', async () => {
    const t = await startRelay({ maxOutboundBytes: 262144 });
    try {
      const c = await RawClient.connect(t.url, { maxPayload: 1 << 24 });
      const sender = makeKey();
      const k = makeKey();
      const big = 'x'.repeat(60_000);
      const evs = Array.from({ length: 120 }, (_, i) => signFast(sender, { content: `${i}:${big}`, tags: [['p', k.pk]] }));
      await publishAll(c, evs);
      // 120 x 60 kB = 7 MB, about 27 times the cap: sent in one go it would cut the client off.
      const r = await seqReq(c, 'big', { '#p': [k.pk], seq_after: 0 });
      expect(r.events.map((e) => e.id)).toEqual(evs.map((e) => e.id));
      expect(t.relay.ctx.stats.slowClientsCut).toBe(0);
      expect(c.closed).toBe(false);
      c.close();
    } finally {
      await t.close();
    }
  });
});
