import { describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../../shared/event.js';
import { matchFilters } from '../../../shared/filter.js';
import { decodeBase64, encodeBase64 } from '../../../client/crdt/base64.js';
import { createSharedDoc } from '../../../client/crdt/shared-doc.js';
import {
  DocKind,
  assembleSnapshot,
  formatStateVector,
  isRangeCovered,
  makeAwarenessEvent,
  makeDocAddress,
  makeDocFilters,
  makeMembershipEvent,
  makeSnapshotEvents,
  makeUpdateEvent,
  parseAwarenessEvent,
  parseDocAddress,
  parseMembershipEvent,
  parseStateVector,
  parseUpdateEvent,
  SEQ_TAG,
} from '../../../client/crdt/wire.js';
import { isAddressableKind, isEphemeralKind, isRegularKind } from '../../../shared/kinds.js';
import { makeRng, pick, pk } from './sim.js';

const OWNER = pk(0);
const ADDRESS = makeDocAddress(OWNER, 'mesh/status');

/** Turns a template into a (fake-signed) event for the parsers and the filter matcher. */
function asEvent(t: { kind: number; tags: string[][]; content: string; created_at: number }, pubkey = OWNER, id = '0'.repeat(64)): NostrEvent {
  return { ...t, pubkey, id, sig: '0'.repeat(128) };
}

describe('base64', () => {
  it('matches Buffer on every length 0..64 and on random data', () => {
    const rng = makeRng(7);
    for (let len = 0; len < 200; len++) {
      const bytes = Uint8Array.from({ length: len < 65 ? len : pick(rng, 5000) }, () => pick(rng, 256));
      const text = encodeBase64(bytes);
      expect(text).toBe(Buffer.from(bytes).toString('base64'));
      expect(decodeBase64(text)).toEqual(bytes);
    }
  });

  it.each(['a', 'abc', 'ab!d', 'ab=d', '=abc', 'abcd====', 'é===', 'ab\ncd=='])('refuses %j', (text) => {
    expect(decodeBase64(text)).toBeUndefined();
  });
});

describe('kinds and addresses', () => {
  it('classifies the proposed kinds as NIP-01 says', () => {
    expect(isRegularKind(DocKind.Update)).toBe(true);
    expect(isEphemeralKind(DocKind.Awareness)).toBe(true);
    expect(isAddressableKind(DocKind.Membership)).toBe(true);
    expect(isAddressableKind(DocKind.Snapshot)).toBe(true);
  });

  it.each([
    { address: ADDRESS, want: { owner: OWNER, name: 'mesh/status', identity: false, kind: 34337 } },
    { address: `34337:${OWNER}:`, want: { owner: OWNER, name: '', identity: false, kind: 34337 } },
    { address: `34337:${OWNER}:a:b`, want: { owner: OWNER, name: 'a:b', identity: false, kind: 34337 } },
    { address: `34339:${OWNER}:a`, want: { owner: OWNER, name: 'a', identity: true, kind: 34339 } },
    { address: `30023:${OWNER}:x`, want: undefined },
    { address: `34337:${OWNER.toUpperCase()}:x`, want: undefined },
    { address: `34337:abc:x`, want: undefined },
  ])('parses $address', ({ address, want }) => {
    expect(parseDocAddress(address)).toEqual(want);
  });

  it.each([
    { text: '', sv: new Map() },
    { text: '1:5', sv: new Map([[1, 5]]) },
    {
      text: '2:0,10:7',
      sv: new Map([
        [2, 0],
        [10, 7],
      ]),
    },
    { text: '1:', sv: undefined },
    { text: '1:2:3', sv: undefined },
    { text: '-1:2', sv: undefined },
    { text: '01:2', sv: undefined },
    { text: '1:2,', sv: undefined },
  ])('state vector text $text', ({ text, sv }) => {
    expect(parseStateVector(text)).toEqual(sv);
    if (sv) expect(formatStateVector(sv)).toBe(text);
  });

  it.each([
    { range: { client: 1, from: 0, to: 3 }, sv: new Map([[1, 3]]), covered: true },
    { range: { client: 1, from: 0, to: 3 }, sv: new Map([[1, 2]]), covered: false },
    { range: { client: 1, from: 0, to: 3 }, sv: new Map([[2, 9]]), covered: false },
  ])('range $range covered by $sv: $covered', ({ range, sv, covered }) => {
    expect(isRangeCovered(range, sv)).toBe(covered);
  });
});

describe('update events', () => {
  it('round-trips a real delta with its clock range, and the document filter matches it', () => {
    const doc = createSharedDoc({ docId: ADDRESS, self: OWNER, membership: { owner: OWNER } });
    const sent: Array<{ update: Uint8Array; clock: { client: number; from: number; to: number } }> = [];
    doc.connect({ publish: (update, meta) => sent.push({ update, clock: meta.clock }) });
    doc.status().set('mood', 'curious');
    const t = makeUpdateEvent(ADDRESS, sent[0]!.update, sent[0]!.clock, 1_700_000_000);
    expect(t.kind).toBe(DocKind.Update);
    expect(t.tags).toEqual([
      ['a', ADDRESS],
      ['clock', String(sent[0]!.clock.client), '0', '1'],
    ]);
    const ev = asEvent(t, pk(3));
    expect(parseUpdateEvent(ev)).toEqual({ address: ADDRESS, author: pk(3), update: sent[0]!.update, clock: sent[0]!.clock });
    expect(matchFilters(makeDocFilters(ADDRESS), ev)).toBe(true);
    expect(matchFilters(makeDocFilters(ADDRESS, { since: 1_700_000_001 }), ev)).toBe(false);
    expect(matchFilters(makeDocFilters(makeDocAddress(OWNER, 'other')), ev)).toBe(false);
  });

  const good = makeUpdateEvent(ADDRESS, new Uint8Array([1, 2, 3]), { client: 4, from: 0, to: 1 }, 1);
  it.each([
    { name: 'another kind', ev: { ...good, kind: 1 } },
    { name: 'no a tag', ev: { ...good, tags: [good.tags[1]!] } },
    { name: 'a tag not a document', ev: { ...good, tags: [['a', '1:2:3'], good.tags[1]!] } },
    { name: 'bad base64', ev: { ...good, content: 'AQI' } },
    { name: 'empty content', ev: { ...good, content: '' } },
    { name: 'empty clock range', ev: { ...good, tags: [good.tags[0]!, ['clock', '4', '1', '1']] } },
    { name: 'non-numeric clock', ev: { ...good, tags: [good.tags[0]!, ['clock', 'x', '0', '1']] } },
  ])('refuses an update event with $name', ({ ev }) => {
    expect(parseUpdateEvent(asEvent(ev))).toBeUndefined();
  });
});

describe('snapshot events', () => {
  function bigDoc(seed: number) {
    const rng = makeRng(seed);
    const doc = createSharedDoc({ docId: ADDRESS, self: OWNER, membership: { owner: OWNER } });
    for (let i = 0; i < 300; i++) doc.map('tasks').set(`t${pick(rng, 100)}`, { note: 'x'.repeat(pick(rng, 80)), i });
    return doc;
  }

  it('splits a large snapshot into parts under the content limit and reassembles it from shuffled parts', () => {
    const doc = bigDoc(1);
    const snap = doc.snapshot();
    const parts = makeSnapshotEvents(ADDRESS, snap, 1_000, 4_000);
    expect(parts.length).toBeGreaterThan(2);
    for (const p of parts) expect(p.content.length).toBeLessThanOrEqual(4_000);
    const events = parts.map((p) => asEvent(p, pk(2))).reverse();
    for (const ev of events) expect(matchFilters(makeDocFilters(ADDRESS), ev)).toBe(true);
    const got = assembleSnapshot(ADDRESS, events);
    expect(got).toEqual({ address: ADDRESS, author: pk(2), createdAt: 1_000, update: snap.update, stateVector: snap.stateVector, cursors: new Map() });
    const fresh = createSharedDoc({ docId: ADDRESS, self: pk(5), membership: { owner: OWNER, members: [pk(2)] } });
    expect(fresh.receive(got!.update, { author: got!.author, kind: 'snapshot' })).toBe(true);
    expect(fresh.toJSON()).toEqual(doc.toJSON());
  });

  it('picks the newest complete generation and skips incomplete or foreign parts', () => {
    const older = makeSnapshotEvents(ADDRESS, bigDoc(2).snapshot(), 1_000, 4_000).map((p) => asEvent(p, pk(2)));
    const newerDoc = bigDoc(3);
    const newer = makeSnapshotEvents(ADDRESS, newerDoc.snapshot(), 2_000, 4_000).map((p) => asEvent(p, pk(3)));
    const newest = makeSnapshotEvents(ADDRESS, bigDoc(4).snapshot(), 3_000, 4_000).map((p) => asEvent(p, pk(4)));
    const other = makeSnapshotEvents(makeDocAddress(OWNER, 'x'), bigDoc(5).snapshot(), 9_000, 4_000).map((p) => asEvent(p, pk(5)));
    const mixed = [...older, ...newer, ...newest.slice(1), ...other];
    const got = assembleSnapshot(ADDRESS, mixed);
    expect(got?.author).toBe(pk(3));
    expect(got?.update).toEqual(newerDoc.snapshot().update);
    expect(assembleSnapshot(ADDRESS, newest.slice(1))).toBeUndefined();
    expect(assembleSnapshot(ADDRESS, [])).toBeUndefined();
  });

  it('carries the relay cursors its author had read up to on every part', () => {
    const cursors = new Map([
      ['ws://127.0.0.1:7777', 1234],
      ['wss://relay.example', 9],
    ]);
    const parts = makeSnapshotEvents(ADDRESS, bigDoc(6).snapshot(), 1_000, 4_000, cursors).map((p) => asEvent(p, pk(2)));
    for (const p of parts)
      expect(p.tags.filter((t) => t[0] === SEQ_TAG)).toEqual([
        [SEQ_TAG, 'ws://127.0.0.1:7777', '1234'],
        [SEQ_TAG, 'wss://relay.example', '9'],
      ]);
    expect(assembleSnapshot(ADDRESS, parts)?.cursors).toEqual(cursors);
  });
});

describe('membership and awareness events', () => {
  it('round-trips the owner record; its version is created_at and its address names the document', () => {
    const t = makeMembershipEvent('mesh/status', [pk(1), pk(2), pk(1)], 1_234);
    expect(t.tags).toEqual([
      ['d', 'mesh/status'],
      ['p', pk(1)],
      ['p', pk(2)],
    ]);
    const ev = asEvent(t);
    expect(parseMembershipEvent(ev)).toEqual({ address: ADDRESS, record: { owner: OWNER, members: [pk(1), pk(2)], version: 1_234 }, enforced: false });
    const enforced = makeMembershipEvent('mesh/status', [pk(1)], 1_235, { enforce: true });
    expect(enforced.tags).toContainEqual(['enforce', 'members']);
    expect(parseMembershipEvent(asEvent(enforced))?.enforced).toBe(true);
    expect(matchFilters(makeDocFilters(ADDRESS), ev)).toBe(true);
    expect(matchFilters(makeDocFilters(ADDRESS), asEvent(t, pk(7)))).toBe(false);
    expect(
      parseMembershipEvent(
        asEvent({
          ...t,
          tags: [
            ['d', 'x'],
            ['p', 'nothex'],
            ['p', pk(3)],
          ],
        }),
      )?.record.members,
    ).toEqual([pk(3)]);
  });

  it.each([
    { content: '{"clock":5,"state":{"looking":true,"cursor":[1,2]}}', ok: true },
    { content: '{"clock":6,"state":null}', ok: true },
    { content: '{"clock":-1,"state":null}', ok: false },
    { content: '{"clock":1.5,"state":null}', ok: false },
    { content: '{"clock":1,"state":[1]}', ok: false },
    { content: '{"clock":1}', ok: false },
    { content: 'not json', ok: false },
  ])('awareness content $content parses: $ok', ({ content, ok }) => {
    const ev = asEvent({ kind: DocKind.Awareness, tags: [['a', ADDRESS]], content, created_at: 1 }, pk(1));
    const got = parseAwarenessEvent(ev);
    expect(got !== undefined).toBe(ok);
    if (got) expect(asEvent(makeAwarenessEvent(ADDRESS, got.message, 1), pk(1)).content).toBe(content);
  });
});
