import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import type { NostrEvent } from '../../../shared/event.js';
import { makeKey } from '../../helpers/events.js';
import { authenticate, publishAll, seqEvents, seqReq, signFast } from '../../helpers/mailbox.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';

useWebSocketImplementation(WebSocket);

// Private inboxes: every private kind (NIP-04 DMs, NIP-59 gift wraps, and a configured Roost
// mailbox kind) is served, from storage and live, in both REQ modes and by COUNT, only to a
// connection authenticated as its author or its p-tagged recipient.
const MAILBOX_KIND = 4242;
const PRIVATE = [4, 1059, MAILBOX_KIND];

describe.each(PRIVATE)('private kind %i', (kind) => {
  let t: TestRelay;
  const author = makeKey();
  const recipient = makeKey();
  const stranger = makeKey();
  let dm: NostrEvent;
  let pub: NostrEvent;
  let anon: RawClient;
  let strangerC: RawClient;

  beforeAll(async () => {
    t = await startRelay({ mailboxPrivateKinds: String(MAILBOX_KIND) });
    const w = await RawClient.connect(t.url);
    dm = signFast(author, { kind, content: 'secret', tags: [['p', recipient.pk]] });
    pub = signFast(author, { kind: 1, content: 'public', tags: [['p', recipient.pk]] });
    for (const ok of await publishAll(w, [dm, pub])) expect(ok[2]).toBe(true);
    w.close();
    anon = await RawClient.connect(t.url);
    strangerC = await RawClient.connect(t.url);
    await authenticate(strangerC, stranger, t.url);
  });
  afterAll(async () => {
    anon.close();
    strangerC.close();
    await t.close();
  });

  it('is advertised as private in NIP-11', async () => {
    const info = (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { roost: { private_kinds: number[] } };
    expect(info.roost.private_kinds).toEqual(PRIVATE);
  });

  it('an unauthenticated REQ naming the kind gets an AUTH challenge and CLOSED auth-required', async () => {
    for (const [sub, filter] of [
      ['u1', { kinds: [kind] }],
      ['u2', { kinds: [kind], '#p': [recipient.pk] }],
      ['u3', { kinds: [kind], '#p': [recipient.pk], seq_after: 0 }],
      ['u4', { kinds: [kind], authors: [author.pk], seq_after: 0, limit: 5 }],
    ] as const) {
      const before = anon.of('AUTH').length;
      const r = await seqReq(anon, sub, filter);
      expect(r.closed, sub).toMatch(/^auth-required: /);
      expect(r.events).toEqual([]);
      expect(anon.of('AUTH').length, sub).toBe(before + 1);
    }
  });

  it('an authenticated stranger naming the kind is restricted', async () => {
    for (const [sub, filter] of [
      ['s1', { kinds: [kind] }],
      ['s2', { kinds: [kind], '#p': [recipient.pk] }],
      ['s3', { kinds: [kind], authors: [author.pk], seq_after: 0 }],
    ] as const) {
      const r = await seqReq(strangerC, sub, filter);
      expect(r.closed, sub).toMatch(/^restricted: /);
    }
  });

  it('filters that do not name the kind never return it to others, in either mode', async () => {
    for (const c of [anon, strangerC]) {
      for (const [sub, filter] of [
        ['n1', { ids: [dm.id] }],
        ['n2', { authors: [author.pk] }],
        ['n3', { '#p': [recipient.pk] }],
        ['n4', { '#p': [recipient.pk], seq_after: 0 }],
        ['n5', { authors: [author.pk], seq_after: 0, limit: 10 }],
        ['n6', {}],
      ] as const) {
        const r = await seqReq(c, sub, filter);
        expect(r.closed).toBeUndefined();
        const ids = r.events.map((e) => e.id);
        expect(ids, sub).not.toContain(dm.id);
        if (sub !== 'n1') expect(ids, sub).toContain(pub.id);
        c.send(['CLOSE', sub]);
      }
    }
  });

  it('COUNT leaks nothing: refused when naming the kind, zero otherwise', async () => {
    anon.send(['COUNT', 'c1', { kinds: [kind] }]);
    expect((await anon.closedOf('c1'))[2]).toMatch(/^auth-required: /);
    strangerC.send(['COUNT', 'c2', { kinds: [kind], '#p': [recipient.pk] }]);
    expect((await strangerC.closedOf('c2'))[2]).toMatch(/^restricted: /);
    for (const c of [anon, strangerC]) {
      for (const [sub, filter, want] of [
        ['c3', { ids: [dm.id] }, 0],
        ['c4', { authors: [author.pk] }, 1],
        ['c5', { '#p': [recipient.pk] }, 1],
      ] as const) {
        c.send(['COUNT', sub, filter]);
        const f = await c.next((x) => (x[0] === 'COUNT' || x[0] === 'CLOSED') && x[1] === sub);
        expect(f, sub).toEqual(['COUNT', sub, { count: want }]);
        c.frames.splice(c.frames.indexOf(f), 1);
      }
    }
  });

  it('live delivery reaches the recipient and the author, never a stranger or an anonymous reader', async () => {
    const rc = await RawClient.connect(t.url);
    await authenticate(rc, recipient, t.url);
    const ac = await RawClient.connect(t.url);
    await authenticate(ac, author, t.url);
    for (const c of [rc, ac, strangerC, anon]) {
      await seqReq(c, 'live-plain', { '#p': [recipient.pk], since: dm.created_at + 1 });
      await seqReq(c, 'live-seq', { '#p': [recipient.pk], seq_after: t.relay.ctx.store.lastSeq() });
    }
    const dm2 = signFast(author, { kind, content: 'secret 2', tags: [['p', recipient.pk]], created_at: dm.created_at + 2 });
    const barrier = signFast(author, { kind: 1, content: 'barrier', tags: [['p', recipient.pk]], created_at: dm.created_at + 3 });
    const w = await RawClient.connect(t.url);
    await publishAll(w, [dm2]);
    await publishAll(w, [barrier]);
    w.close();
    for (const c of [rc, ac, strangerC, anon]) {
      await c.next((x) => x[0] === 'EVENT' && x[1] === 'live-seq' && (x[2] as NostrEvent).id === barrier.id, 'barrier');
      await c.next((x) => x[0] === 'EVENT' && x[1] === 'live-plain' && (x[2] as NostrEvent).id === barrier.id, 'barrier');
      const got = c.frames.filter((x) => x[0] === 'EVENT').map((x) => (x[2] as NostrEvent).id);
      const allowed = c === rc || c === ac;
      expect(got.filter((id) => id === dm2.id).length).toBe(allowed ? 2 : 0);
      c.send(['CLOSE', 'live-plain']);
      c.send(['CLOSE', 'live-seq']);
    }
    // Seq-mode frames carry the seq for the private event too.
    expect(seqEvents(rc, 'live-seq').map((e) => e.id)).toEqual([dm2.id, barrier.id]);
    rc.close();
    ac.close();
  });

  it('the recipient and the author read it from storage in both modes and count it', async () => {
    for (const who of [recipient, author]) {
      const c = await RawClient.connect(t.url);
      await authenticate(c, who, t.url);
      const named = who === recipient ? { '#p': [recipient.pk] } : { authors: [author.pk] };
      const plain = await c.req('r1', { kinds: [kind], ...named });
      expect(plain.map((e) => e.id)).toContain(dm.id);
      const tail = await seqReq(c, 'r2', { kinds: [kind], ...named, seq_after: 0 });
      expect(tail.events.map((e) => e.id)).toContain(dm.id);
      const page = await seqReq(c, 'r3', { ...named, seq_after: 0, limit: 10 });
      expect(page.events.map((e) => e.id)).toContain(dm.id);
      c.send(['COUNT', 'r4', { kinds: [kind], ...named }]);
      expect((await c.next((x) => x[0] === 'COUNT' && x[1] === 'r4'))[2]).toEqual({ count: 2 });
      c.close();
    }
  });

  it('a standard client (nostr-tools) is asked to authenticate and then gets the message', async () => {
    const relay = await Relay.connect(t.url);
    let reason = '';
    await new Promise<void>((resolve) => {
      relay.subscribe([{ kinds: [kind], '#p': [recipient.pk] }], {
        onevent: () => undefined,
        oneose: () => resolve(),
        onclose: (r) => {
          reason = r;
          resolve();
        },
      });
    });
    expect(reason).toMatch(/^auth-required: /);
    const { finalizeEvent } = await import('nostr-tools/pure');
    await relay.auth(async (tmpl) => finalizeEvent(tmpl, recipient.sk));
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      relay.subscribe([{ kinds: [kind], '#p': [recipient.pk] }], {
        onevent: (e) => got.push(e.id),
        oneose: () => resolve(),
        onclose: (r) => reject(new Error(r)),
      });
    });
    expect(got).toContain(dm.id);
    relay.close();
  });
});

describe('a connection authenticated as several identities', () => {
  it('reads the inboxes of each identity it proved, and no other', async () => {
    const t = await startRelay();
    try {
      const a = makeKey();
      const b = makeKey();
      const c = makeKey();
      const s = makeKey();
      const w = await RawClient.connect(t.url);
      const toA = signFast(s, { kind: 4, tags: [['p', a.pk]] });
      const toB = signFast(s, { kind: 4, tags: [['p', b.pk]] });
      const toC = signFast(s, { kind: 4, tags: [['p', c.pk]] });
      await publishAll(w, [toA, toB, toC]);
      w.close();
      const r = await RawClient.connect(t.url);
      await authenticate(r, a, t.url);
      await authenticate(r, b, t.url);
      const got = await seqReq(r, 'x', { kinds: [4], '#p': [a.pk, b.pk], seq_after: 0 });
      expect(got.events.map((e) => e.id).sort()).toEqual([toA.id, toB.id].sort());
      const denied = await seqReq(r, 'y', { kinds: [4], '#p': [a.pk, c.pk], seq_after: 0 });
      expect(denied.closed).toMatch(/^restricted: /);
      const wide = await seqReq(r, 'z', { '#p': [a.pk, b.pk, c.pk], seq_after: 0 });
      expect(wide.events.map((e) => e.id).sort()).toEqual([toA.id, toB.id].sort());
      r.close();
    } finally {
      await t.close();
    }
  });
});
