import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { NostrEvent, VerifiedEvent } from '../../shared/event.js';
import { bytesToHex, encodeVarint, Negentropy, NegentropySet } from '../../shared/nip77.js';
import { type Key, makeKey, nowSeconds, signEvent } from '../helpers/events.js';
import { loadNostrToolsNip77, type NostrToolsNip77 } from '../helpers/nostr-tools-nip77.js';
import { authenticate } from '../helpers/mailbox.js';
import { createRng } from '../helpers/prng.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { testBackends } from '../helpers/backends.js';
import { waitFor } from '../helpers/wait.js';

useWebSocketImplementation(WebSocket);

/** Seeded events: `n` signed kind-1 events by a few keys, with created_at spread over a day (many ties). */
function makeEvents(seed: number, n: number, keys: Key[]): NostrEvent[] {
  const rng = createRng(seed);
  const base = nowSeconds() - 86_400;
  return Array.from({ length: n }, (_, i) => signEvent(rng.pick(keys), { created_at: base + rng.int(0, 3600), content: `e${seed}-${i}` }));
}

/** Stores events straight into the relay's store (seeding only; the wire is what is under test). */
async function seed(t: TestRelay, events: NostrEvent[]): Promise<void> {
  await Promise.all(events.map((e) => t.relay.ctx.store.write(e as VerifiedEvent)));
}

/** Runs nostr-tools' NegentropySync against the relay; resolves with what it learnt. */
async function syncWithNostrTools(nip77: NostrToolsNip77, url: string, mine: NostrEvent[], filter: Record<string, unknown>) {
  const relay = await Relay.connect(url);
  const storage = new nip77.NegentropyStorageVector();
  for (const e of mine) storage.insert(e.created_at, e.id);
  storage.seal();
  const have: string[] = [];
  const need: string[] = [];
  let rounds = 0;
  const sent = relay.send.bind(relay);
  relay.send = async (m: string) => {
    if (m.startsWith('["NEG-')) rounds++;
    return sent(m);
  };
  const done = new Promise<string | undefined>((resolve) => {
    const sync = new nip77.NegentropySync(relay, storage, filter, {
      onhave: (id) => have.push(id),
      onneed: (id) => need.push(id),
      onclose: (reason) => resolve(reason),
    });
    void sync.start();
  });
  const reason = await done;
  relay.close();
  return { have: have.sort(), need: need.sort(), reason, rounds };
}

const ids = (events: NostrEvent[]) => events.map((e) => e.id).sort();

// On SQLite and on PostgreSQL (whose store answers NEG-OPEN's read asynchronously).
describe.each(testBackends({ late: false }))('NIP-77 negentropy on the relay ($name)', (backend) => {
  let t: TestRelay;
  let nip77: NostrToolsNip77;
  const keys = Array.from({ length: 8 }, makeKey);
  // 10k events in common, 1 % apart on each side.
  const common = makeEvents(1, 10_000, keys);
  const onlyRelay = makeEvents(2, 100, keys);
  const onlyClient = makeEvents(3, 100, keys);

  beforeAll(async () => {
    nip77 = await loadNostrToolsNip77();
    t = await backend.start({ negentropyFrameBytes: 8192, negentropyMaxSessions: 2 });
    await seed(t, [...common, ...onlyRelay]);
  }, 60_000);
  afterAll(async () => {
    await t.close();
  });

  it('is advertised in NIP-11 with its bounds', async () => {
    const info = (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as {
      supported_nips: number[];
      limitation: Record<string, unknown>;
    };
    expect(info.supported_nips).toContain(77);
    expect(info.limitation).toMatchObject({ max_negentropy_records: 500000, max_negentropy_sessions: 2, negentropy_frame_bytes: 8192 });
  });

  it("converges with nostr-tools' NegentropySync from divergent sets, in both directions", async () => {
    const first = await syncWithNostrTools(nip77, t.url, [...common, ...onlyClient], {});
    expect(first.reason).toBeUndefined();
    expect(first.have).toEqual(ids(onlyClient));
    expect(first.need).toEqual(ids(onlyRelay));
    // 8 KiB frames: a 10k set takes several rounds, still a handful.
    expect(first.rounds).toBeGreaterThan(2);

    // Each side takes what it lacks: the client uploads its `have`, and holds the relay's `need`.
    const client = await RawClient.connect(t.url);
    for (const e of onlyClient) expect((await client.publish(e))[2]).toBe(true);
    client.close();
    const again = await syncWithNostrTools(nip77, t.url, [...common, ...onlyClient, ...onlyRelay], {});
    expect(again.have).toEqual([]);
    expect(again.need).toEqual([]);
  }, 60_000);

  it('reconciles against an empty side and under a filter', async () => {
    const empty = await syncWithNostrTools(nip77, t.url, [], { authors: [keys[0]!.pk] });
    const stored = [...common, ...onlyRelay, ...onlyClient].filter((e) => e.pubkey === keys[0]!.pk);
    expect(empty.need).toEqual(ids(stored));
    expect(empty.have).toEqual([]);
    const nothing = await syncWithNostrTools(nip77, t.url, onlyClient.slice(0, 5), { kinds: [7] });
    expect(nothing.have).toEqual(ids(onlyClient.slice(0, 5)));
    expect(nothing.need).toEqual([]);
  }, 30_000);

  it('bounds sessions per connection, replaces a reused id, and frees sessions on disconnect', async () => {
    const c = await RawClient.connect(t.url);
    const init = bytesToHex(new Negentropy(NegentropySet.from([]), 'initiator').initiate());
    for (const id of ['a', 'b', 'a']) c.send(['NEG-OPEN', id, { kinds: [1] }, init]);
    await waitFor(() => c.of('NEG-MSG').length === 3, 'three answers');
    c.send(['NEG-OPEN', 'c', { kinds: [1] }, init]);
    const err = await c.next((f) => f[0] === 'NEG-ERR' && f[1] === 'c', 'NEG-ERR c');
    expect(err[2]).toBe('blocked: too many negentropy sessions on this connection (max 2)');
    expect(t.relay.ctx.negentropy.open).toBe(2);
    expect(t.relay.ctx.negentropy.records).toBe(2 * (common.length + onlyRelay.length + onlyClient.length));
    c.send(['NEG-CLOSE', 'a']);
    c.send(['NEG-MSG', 'a', init]);
    expect((await c.next((f) => f[0] === 'NEG-ERR' && f[1] === 'a', 'NEG-ERR a'))[2]).toMatch(/^closed: /);
    c.close();
    await waitFor(() => t.relay.ctx.negentropy.open === 0, 'sessions freed on disconnect');
    expect(t.relay.ctx.negentropy.records).toBe(0);
  });

  it('refuses fuzzed malformed NEG frames with NEG-ERR or NOTICE, and every connection stays usable', async () => {
    const rng = createRng(2077);
    const fuzzer = await RawClient.connect(t.url);
    const bystander = await RawClient.connect(t.url);
    const valid = bytesToHex(
      new Negentropy(NegentropySet.from(common.slice(0, 3000).map((e) => ({ timestamp: e.created_at, id: e.id }))), 'initiator').initiate(),
    );
    const hexOf = (b: number[]) => bytesToHex(Uint8Array.from(b));
    const frames: unknown[] = [
      ['NEG-OPEN', 'x', {}, 'zz'], // bad hex
      ['NEG-OPEN', 'x', {}, '616'], // odd length
      ['NEG-OPEN', 'x', {}, ''], // empty
      ['NEG-OPEN', 'x', {}, hexOf([0x61, 0x85])], // truncated varint
      ['NEG-OPEN', 'x', {}, hexOf([0x61, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])], // varint past 2^53
      ['NEG-OPEN', 'x', {}, hexOf([0x61, 0, 0, 2, ...encodeVarint(2 ** 40)])], // huge id count
      ['NEG-OPEN', 'x', {}, hexOf([0x61, 0, 33])], // id prefix over 32 bytes
      ['NEG-OPEN', 'x', {}, hexOf([0x61, 0, 0, 9])], // unknown mode
      ['NEG-OPEN', 'x', {}, hexOf([0x20])], // not a version byte
      ['NEG-OPEN', 'x', { seq_after: 0 }, valid],
      ['NEG-OPEN', 'x', { bogus: 1 }, valid],
      ['NEG-OPEN', 'x', {}],
      ['NEG-OPEN', 'x', {}, valid, 'extra'],
      ['NEG-OPEN', 7, {}, valid],
      ['NEG-OPEN', '', {}, valid],
      ['NEG-MSG', 'nope', valid],
      ['NEG-MSG', 'x'],
      ['NEG-CLOSE'],
      ['NEG-OPEN', 'x', {}, 12],
    ];
    for (let i = 0; i < 300; i++) {
      const r = rng.int(0, 2);
      if (r === 0) frames.push(['NEG-OPEN', `f${i}`, {}, hexOf(Array.from({ length: rng.int(1, 40) }, (_, j) => (j === 0 ? 0x61 : rng.int(0, 255))))]);
      else if (r === 1) {
        // A valid first message cut short or with bytes flipped.
        const b = [...Uint8Array.from(Buffer.from(valid, 'hex'))].slice(0, rng.int(1, valid.length / 2));
        for (let k = rng.int(1, 3); k > 0 && b.length > 1; k--) b[rng.int(1, b.length - 1)] = rng.int(0, 255);
        frames.push(['NEG-OPEN', `f${i}`, {}, hexOf(b)]);
      } else frames.push(['NEG-MSG', `f${i}`, hexOf(Array.from({ length: rng.int(1, 20) }, () => rng.int(0, 255)))]);
      frames.push(['NEG-CLOSE', `f${i}`]);
    }
    // Every frame gets exactly one answer, except a well-formed NEG-CLOSE (none).
    const expected = frames.filter((f) => !((f as unknown[])[0] === 'NEG-CLOSE' && (f as unknown[]).length === 2)).length;
    for (const f of frames) fuzzer.send(f);
    await waitFor(() => fuzzer.frames.length >= expected, 'an answer to every frame', 30_000);
    expect(fuzzer.frames).toHaveLength(expected);
    for (const reply of fuzzer.frames) {
      expect(['NEG-ERR', 'NEG-MSG', 'NOTICE']).toContain(reply[0]);
      if (reply[0] !== 'NEG-MSG') expect(String(reply.at(-1))).toMatch(/^(invalid|blocked|closed): /);
    }
    expect(fuzzer.of('NEG-ERR').length).toBeGreaterThan(200);
    // The bystander and the fuzzer itself are still served.
    expect(await bystander.req('ok', { authors: [keys[1]!.pk], limit: 1 })).toHaveLength(1);
    const ok = await syncWithNostrTools(nip77, t.url, common.slice(0, 10), { ids: ids(common.slice(0, 10)) });
    expect(ok.have).toEqual([]);
    fuzzer.close();
    bystander.close();
    await waitFor(() => t.relay.ctx.negentropy.open === 0, 'sessions freed');
  }, 60_000);
});

describe('NIP-77 bounds and private kinds', () => {
  let t: TestRelay;
  let nip77: NostrToolsNip77;
  const alice = makeKey();
  const bob = makeKey();
  const publicEvents = makeEvents(9, 60, [alice]);
  const dm = signEvent(alice, { kind: 4, tags: [['p', bob.pk]], content: 'secret' });

  beforeAll(async () => {
    nip77 = await loadNostrToolsNip77();
    t = await startRelay({ negentropyMaxRecords: 50, negentropyMaxTotalRecords: 60 });
    await seed(t, [...publicEvents, dm]);
  });
  afterAll(async () => {
    await t.close();
  });

  it('refuses a filter matching more than the advertised record bound with blocked:, and bounds records across connections', async () => {
    const c = await RawClient.connect(t.url);
    const init = bytesToHex(new Negentropy(NegentropySet.from([]), 'initiator').initiate());
    c.send(['NEG-OPEN', 'all', { kinds: [1] }, init]);
    const err = await c.next((f) => f[0] === 'NEG-ERR', 'NEG-ERR');
    expect(err[2]).toBe('blocked: this filter matches more than 50 events; split it (since/until, authors, kinds)');
    const info = (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { limitation: Record<string, unknown> };
    expect(info.limitation.max_negentropy_records).toBe(50);

    const half = { kinds: [1], until: publicEvents.map((e) => e.created_at).sort((a, b) => a - b)[39] };
    c.send(['NEG-OPEN', 'h1', half, init]);
    await c.next((f) => f[0] === 'NEG-MSG' && f[1] === 'h1', 'h1');
    const other = await RawClient.connect(t.url);
    other.send(['NEG-OPEN', 'h2', half, init]);
    expect((await other.next((f) => f[0] === 'NEG-ERR', 'h2 refused'))[2]).toBe('blocked: too many negentropy sessions open on this relay; try again later');
    c.close();
    await waitFor(() => t.relay.ctx.negentropy.records === 0, 'records freed');
    other.send(['NEG-OPEN', 'h3', half, init]);
    await other.next((f) => f[0] === 'NEG-MSG' && f[1] === 'h3', 'h3 after the first connection left');
    other.close();
  });

  it('serves private kinds only to their authenticated recipient, under the same rules as REQ', async () => {
    const anon = await syncWithNostrTools(nip77, t.url, [], { authors: [alice.pk], kinds: [1, 4], limit: 10 });
    // nostr-tools reports a NEG-ERR as a close without reason.
    expect(anon.need).toEqual([]);
    const raw = await RawClient.connect(t.url);
    const init = bytesToHex(new Negentropy(NegentropySet.from([]), 'initiator').initiate());
    raw.send(['NEG-OPEN', 'dm', { kinds: [4] }, init]);
    expect((await raw.next((f) => f[0] === 'NEG-ERR', 'NEG-ERR'))[2]).toMatch(/^auth-required: /);
    expect(raw.of('AUTH')).toHaveLength(1);
    // A filter that does not name the kind simply never matches it.
    raw.send(['NEG-OPEN', 'any', { authors: [alice.pk], since: dm.created_at - 1 }, init]);
    const msg = (await raw.next((f) => f[0] === 'NEG-MSG' && f[1] === 'any', 'any'))[2] as string;
    const learnt = new Negentropy(NegentropySet.from([]), 'initiator');
    learnt.initiate();
    expect(learnt.reconcile(Buffer.from(msg, 'hex')).need).not.toContain(dm.id);

    await authenticate(raw, bob, t.url);
    raw.send(['NEG-OPEN', 'dm2', { kinds: [4], '#p': [bob.pk] }, init]);
    const m2 = (await raw.next((f) => f[0] === 'NEG-MSG' && f[1] === 'dm2', 'dm2'))[2] as string;
    const bobSide = new Negentropy(NegentropySet.from([]), 'initiator');
    bobSide.initiate();
    expect(bobSide.reconcile(Buffer.from(m2, 'hex')).need).toEqual([dm.id]);
    raw.close();
  });
});
