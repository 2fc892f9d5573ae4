import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import { SimplePool, useWebSocketImplementation as usePoolWebSocket } from 'nostr-tools/pool';
import type { NostrEvent } from '../../shared/event.js';
import { makeKey, nowSeconds, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import type { TestRelay } from '../helpers/relay.js';
import { testBackends } from '../helpers/backends.js';
import { waitFor } from '../helpers/wait.js';

useWebSocketImplementation(WebSocket);
usePoolWebSocket(WebSocket);

// NIP-01 through a client nobody here wrote (nostr-tools), over a real socket, against a real
// relay on a real SQLite file.
describe.each(testBackends({ late: false }))('NIP-01 with nostr-tools ($name)', (backend) => {
  let t: TestRelay;
  beforeAll(async () => {
    t = await backend.start({ maxLimit: 50, defaultLimit: 20 });
  });
  afterAll(async () => {
    await t.close();
  });

  it('publishes, then answers a REQ from storage and delivers live events', async () => {
    const relay = await Relay.connect(t.url);
    const alice = makeKey();
    const first = signEvent(alice, { content: 'first' });
    expect(await relay.publish(first)).toBe('');
    const got: string[] = [];
    let eose = false;
    const sub = relay.subscribe([{ authors: [alice.pk] }], {
      onevent: (e) => got.push(e.id),
      oneose: () => (eose = true),
    });
    await waitFor(() => eose, 'EOSE');
    expect(got).toEqual([first.id]);
    const second = signEvent(alice, { content: 'second' });
    await relay.publish(second);
    await waitFor(() => got.length === 2, 'live event');
    expect(got).toEqual([first.id, second.id]);
    sub.close();
    relay.close();
  });

  it('orders results newest first, then by lowest id, and honours limit per filter', async () => {
    const c = await RawClient.connect(t.url);
    const k = makeKey();
    const base = nowSeconds() - 100;
    const evs: NostrEvent[] = [];
    for (let i = 0; i < 12; i++) evs.push(signEvent(k, { created_at: base + (i % 4), content: `n${i}` }));
    for (const e of evs) expect((await c.publish(e))[2]).toBe(true);
    const expected = [...evs].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? -1 : 1)).map((e) => e.id);
    expect((await c.req('all', { authors: [k.pk] })).map((e) => e.id)).toEqual(expected);
    expect((await c.req('five', { authors: [k.pk], limit: 5 })).map((e) => e.id)).toEqual(expected.slice(0, 5));
    c.close();
  });

  it('clamps limit to the advertised maximum instead of refusing, and limit 0 gives EOSE only', async () => {
    const c = await RawClient.connect(t.url);
    const k = makeKey();
    for (let i = 0; i < 60; i++) await c.publish(signEvent(k, { content: `x${i}`, created_at: nowSeconds() - i }));
    expect((await c.req('big', { authors: [k.pk], limit: 100000 })).length).toBe(50);
    expect((await c.req('dflt', { authors: [k.pk] })).length).toBe(20);
    expect((await c.req('zero', { authors: [k.pk], limit: 0 })).length).toBe(0);
    expect(c.of('CLOSED')).toEqual([]);
    // A limit-0 subscription still goes live.
    const live = signEvent(k, { content: 'live' });
    await c.publish(live);
    await c.next((f) => f[0] === 'EVENT' && f[1] === 'zero', 'live event on limit 0 sub');
    c.close();
  });

  it('supports every filter field and several filters per REQ', async () => {
    const c = await RawClient.connect(t.url);
    const a = makeKey();
    const b = makeKey();
    const t0 = nowSeconds() - 1000;
    const e1 = signEvent(a, { kind: 1, created_at: t0, tags: [['t', 'ai']] });
    const e2 = signEvent(a, { kind: 7, created_at: t0 + 10, tags: [['e', e1.id]] });
    const e3 = signEvent(b, { kind: 1, created_at: t0 + 20, tags: [['p', a.pk]] });
    for (const e of [e1, e2, e3]) await c.publish(e);
    const ids = async (...filters: object[]) => (await c.req(`s${Math.random()}`.slice(0, 20), ...filters)).map((e) => e.id);
    expect(await ids({ ids: [e2.id] })).toEqual([e2.id]);
    expect(await ids({ authors: [a.pk], kinds: [1] })).toEqual([e1.id]);
    expect(await ids({ '#t': ['ai'] })).toEqual([e1.id]);
    expect(await ids({ '#e': [e1.id] })).toEqual([e2.id]);
    expect(await ids({ '#p': [a.pk] })).toEqual([e3.id]);
    expect(await ids({ authors: [a.pk, b.pk], since: t0 + 5, until: t0 + 15 })).toEqual([e2.id]);
    expect(await ids({ ids: [e1.id] }, { ids: [e3.id] }, { ids: [e1.id] })).toEqual([e3.id, e1.id]);
    c.close();
  });

  it('refuses bad ids and signatures with invalid:, and duplicates with duplicate:', async () => {
    const c = await RawClient.connect(t.url);
    const k = makeKey();
    const e = signEvent(k, { content: 'genuine' });
    const tampered = { ...e, content: 'tampered' };
    expect(await c.publish(tampered)).toEqual(['OK', e.id, false, 'invalid: event id does not match its content']);
    const other = signEvent(makeKey(), { content: 'genuine' });
    const forged = { ...e, sig: other.sig };
    c.frames.length = 0;
    expect((await c.publish(forged))[3]).toBe('invalid: bad signature');
    c.frames.length = 0;
    expect(await c.publish(e)).toEqual(['OK', e.id, true, '']);
    c.frames.length = 0;
    expect(await c.publish(e)).toEqual(['OK', e.id, true, 'duplicate: already have this event']);
    c.close();
  });

  it('answers malformed frames with NOTICE and keeps the connection usable', async () => {
    const c = await RawClient.connect(t.url);
    for (const bad of ['not json', '{}', '[1,2]', '["EVENT"]', '["REQ"]', '["CLOSE"]', '["WHAT","x"]', '["EVENT",{"id":1}]']) c.send(bad);
    await waitFor(() => c.of('NOTICE').length === 8, '8 notices');
    for (const n of c.of('NOTICE')) expect(n[1]).toMatch(/^invalid: /);
    const k = makeKey();
    expect((await c.publish(signEvent(k)))[2]).toBe(true);
    expect(c.closed).toBe(false);
    c.close();
  });

  it('handles ephemeral events: delivered live, never stored', async () => {
    const sub = await RawClient.connect(t.url);
    const pub = await RawClient.connect(t.url);
    const k = makeKey();
    await sub.req('eph', { authors: [k.pk] });
    const e = signEvent(k, { kind: 20001, content: 'blink' });
    expect((await pub.publish(e))[2]).toBe(true);
    await sub.next((f) => f[0] === 'EVENT' && f[1] === 'eph' && (f[2] as NostrEvent).id === e.id, 'ephemeral live');
    expect(await pub.req('after', { authors: [k.pk] })).toEqual([]);
    sub.close();
    pub.close();
  });

  it('replaceable and addressable events: latest wins, an older one arriving late is refused with a reason', async () => {
    const c = await RawClient.connect(t.url);
    const k = makeKey();
    const t0 = nowSeconds() - 50;
    const newer = signEvent(k, { kind: 0, created_at: t0 + 10, content: '{"name":"new"}' });
    const older = signEvent(k, { kind: 0, created_at: t0, content: '{"name":"old"}' });
    expect((await c.publish(newer))[2]).toBe(true);
    const late = await c.publish(older);
    expect(late[2]).toBe(false);
    expect(late[3]).toMatch(/^duplicate: a newer version/);
    expect((await c.req('meta', { authors: [k.pk], kinds: [0] })).map((e) => e.id)).toEqual([newer.id]);
    const a1 = signEvent(k, { kind: 30078, created_at: t0, tags: [['d', 'cfg']] });
    const a2 = signEvent(k, { kind: 30078, created_at: t0 + 1, tags: [['d', 'cfg']] });
    await c.publish(a1);
    await c.publish(a2);
    expect((await c.req('addr', { kinds: [30078], authors: [k.pk], '#d': ['cfg'] })).map((e) => e.id)).toEqual([a2.id]);
    c.close();
  });

  it('CLOSE stops delivery; a REQ with the same id replaces the subscription', async () => {
    const c = await RawClient.connect(t.url);
    const k = makeKey();
    await c.req('s', { authors: [k.pk], kinds: [1] });
    await c.req('s', { authors: [k.pk], kinds: [7] });
    const one = signEvent(k, { kind: 1 });
    const seven = signEvent(k, { kind: 7 });
    await c.publish(one);
    await c.publish(seven);
    await c.next((f) => f[0] === 'EVENT' && (f[2] as NostrEvent).id === seven.id);
    expect(c.of('EVENT', 's').map((f) => (f[2] as NostrEvent).id)).toEqual([seven.id]);
    c.send(['CLOSE', 's']);
    const later = signEvent(k, { kind: 7, content: 'later' });
    await c.publish(later);
    await new Promise((r) => setTimeout(r, 100));
    expect(c.of('EVENT', 's').length).toBe(1);
    c.close();
  });

  it('works through SimplePool across two relays', async () => {
    const t2 = await backend.start();
    const pool = new SimplePool();
    const k = makeKey();
    const e = signEvent(k, { content: 'pooled' });
    const acks = await Promise.allSettled(pool.publish([t.url, t2.url], e));
    expect(acks.map((a) => a.status)).toEqual(['fulfilled', 'fulfilled']);
    const found = await pool.querySync([t.url, t2.url], { authors: [k.pk] });
    expect(found.map((x) => x.id)).toEqual([e.id]);
    pool.close([t.url, t2.url]);
    pool.destroy();
    await t2.close();
  });

  it('enforces advertised limits: subscriptions per connection, filters, created_at window, tags, content', async () => {
    const small = await backend.start({
      maxSubscriptions: 2,
      maxFilters: 2,
      maxEventTags: 3,
      maxContentLength: 10,
      createdAtFutureLimit: 60,
      createdAtPastLimit: 3600,
    });
    const c = await RawClient.connect(small.url);
    const k = makeKey();
    await c.req('a', {});
    await c.req('b', {});
    c.send(['REQ', 'c', {}]);
    expect((await c.closedOf('c'))[2]).toMatch(/^blocked: too many open subscriptions/);
    c.send(['CLOSE', 'a']);
    c.send(['REQ', 'd', {}, {}, {}]);
    expect((await c.closedOf('d'))[2]).toMatch(/^invalid: too many filters/);
    const checks: Array<[NostrEvent, RegExp]> = [
      [
        signEvent(k, {
          tags: [
            ['t', '1'],
            ['t', '2'],
            ['t', '3'],
            ['t', '4'],
          ],
        }),
        /^invalid: too many tags/,
      ],
      [signEvent(k, { content: '12345678901' }), /^invalid: content longer than 10/],
      [signEvent(k, { created_at: nowSeconds() + 3600 }), /^invalid: created_at is more than 60s in the future/],
      [signEvent(k, { created_at: nowSeconds() - 7200 }), /^invalid: created_at is more than 3600s in the past/],
    ];
    for (const [e, reason] of checks) {
      const ok = await c.publish(e);
      expect(ok[2]).toBe(false);
      expect(ok[3]).toMatch(reason);
    }
    // Ten emoji are ten characters even though they are twenty UTF-16 units.
    expect((await c.publish(signEvent(k, { content: '😀'.repeat(10) })))[2]).toBe(true);
    const info = (await (await fetch(small.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { limitation: Record<string, unknown> };
    expect(info.limitation).toMatchObject({
      max_subscriptions: 2,
      max_filters: 2,
      max_event_tags: 3,
      max_content_length: 10,
      created_at_upper_limit: 60,
      created_at_lower_limit: 3600,
    });
    c.close();
    await small.close();
  });
});
