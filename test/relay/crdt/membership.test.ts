import { afterEach, describe, expect, it } from 'vitest';
import { createSharedDoc } from '../../../client/crdt/shared-doc.js';
import { makeAwarenessEvent, makeDocAddress, makeMembershipEvent, makeSnapshotEvents, makeUpdateEvent } from '../../../client/crdt/wire.js';
import type { StoredMembership } from '../../../relay/crdt/membership.js';
import { rejectNonMemberDocWrites } from '../../../relay/policies/crdt-membership.js';
import type { NostrEvent } from '../../../shared/event.js';
import { getReasonPrefix } from '../../../shared/reason.js';
import { makeKey, nowSeconds, signEvent, type Key } from '../../helpers/events.js';
import { RawClient } from '../../helpers/raw-client.js';
import type { TestRelay } from '../../helpers/relay.js';
import { testBackends } from '../../helpers/backends.js';

const owner = makeKey();
const member = makeKey();
const stranger = makeKey();

/** A real one-write delta of `author` for the document at `address`, signed. */
function delta(author: Key, address: string, value = 'v'): NostrEvent {
  const doc = createSharedDoc({ docId: address, self: author.pk, membership: { owner: author.pk } });
  let out!: NostrEvent;
  doc.connect({ publish: (u, m) => (out = signEvent(author, makeUpdateEvent(address, u, m.clock, nowSeconds()))) });
  doc.map('m').set('k', value);
  return out;
}

describe('rejectNonMemberDocWrites (table)', () => {
  const enforced = makeDocAddress(owner.pk, 'enforced');
  const open = makeDocAddress(owner.pk, 'open');
  const missing = makeDocAddress(owner.pk, 'missing');
  const records = new Map<string, StoredMembership>([
    [enforced, { owner: owner.pk, members: new Set([member.pk]), enforced: true }],
    [open, { owner: owner.pk, members: new Set([member.pk]), enforced: false }],
  ]);
  const lookup = (a: string) => records.get(a);
  const ev = (pubkey: string, kind: number, aTags: string[]) => ({
    id: '0'.repeat(64),
    pubkey,
    created_at: 0,
    kind,
    tags: aTags.map((a) => ['a', a]),
    content: '',
    sig: '',
  });
  const ctx = { authed: new Set<string>(), ip: '127.0.0.1', now: 0 };

  it.each([
    { name: 'member delta, enforced doc', mode: 'tagged', e: ev(member.pk, 4337, [enforced]), prefix: undefined },
    { name: 'owner delta, enforced doc', mode: 'tagged', e: ev(owner.pk, 4337, [enforced]), prefix: undefined },
    { name: 'stranger delta, enforced doc', mode: 'tagged', e: ev(stranger.pk, 4337, [enforced]), prefix: 'restricted' },
    { name: 'stranger snapshot part, enforced doc', mode: 'tagged', e: ev(stranger.pk, 34338, [enforced]), prefix: 'restricted' },
    { name: 'stranger awareness, enforced doc', mode: 'tagged', e: ev(stranger.pk, 24337, [enforced]), prefix: 'restricted' },
    { name: 'stranger delta, untagged record', mode: 'tagged', e: ev(stranger.pk, 4337, [open]), prefix: undefined },
    { name: 'stranger delta, untagged record, all', mode: 'all', e: ev(stranger.pk, 4337, [open]), prefix: 'restricted' },
    { name: 'member delta, untagged record, all', mode: 'all', e: ev(member.pk, 4337, [open]), prefix: undefined },
    { name: 'no record, tagged', mode: 'tagged', e: ev(stranger.pk, 4337, [missing]), prefix: undefined },
    { name: 'no record, all', mode: 'all', e: ev(owner.pk, 4337, [missing]), prefix: 'restricted' },
    { name: 'no document address, all', mode: 'all', e: ev(owner.pk, 4337, ['30023:abc:x']), prefix: 'invalid' },
    { name: 'no document address, tagged', mode: 'tagged', e: ev(owner.pk, 4337, []), prefix: undefined },
    { name: 'a second a tag naming an enforced doc', mode: 'tagged', e: ev(stranger.pk, 4337, [open, enforced]), prefix: 'restricted' },
    { name: 'other kinds pass', mode: 'all', e: ev(stranger.pk, 1, [enforced]), prefix: undefined },
  ] as const)('$name → $prefix', ({ mode, e, prefix }) => {
    const r = rejectNonMemberDocWrites(lookup, mode)(e, ctx) as string | undefined;
    expect(r === undefined ? undefined : getReasonPrefix(r)).toBe(prefix);
  });
});

describe.each(testBackends())('relay-enforced documents (real socket, $name)', (backend) => {
  let t: TestRelay | undefined;
  const clients: RawClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await t?.close();
    t = undefined;
  });
  const connect = async () => {
    const c = await RawClient.connect(t!.url);
    clients.push(c);
    return c;
  };

  it("refuses a stranger's delta once the owner's record asks for enforcement, follows record changes", async () => {
    t = await backend.start();
    const c = await connect();
    const address = makeDocAddress(owner.pk, 'board');
    const now = nowSeconds();

    // Before any record (tagged mode): nothing to enforce.
    expect((await c.publish(delta(stranger, address, 'early')))[2]).toBe(true);

    const record = signEvent(owner, makeMembershipEvent('board', [member.pk], now - 10, { enforce: true }));
    expect((await c.publish(record))[2]).toBe(true);
    expect((await t.relay.sharedDocs.membership(address))?.enforced).toBe(true);

    const memberDelta = delta(member, address, 'member');
    const ok = await c.publish(memberDelta);
    expect(ok[2]).toBe(true);
    expect((await c.publish(delta(owner, address, 'owner')))[2]).toBe(true);
    const refused = await c.publish(delta(stranger, address, 'stranger'));
    expect(refused[2]).toBe(false);
    expect(getReasonPrefix(refused[3] as string)).toBe('restricted');

    // Snapshot parts and awareness from the stranger are refused as well.
    const snap = createSharedDoc({ docId: address, self: stranger.pk, membership: { owner: stranger.pk } });
    snap.map('x').set('y', 1);
    const part = signEvent(stranger, makeSnapshotEvents(address, snap.snapshot(), now)[0]!);
    expect((await c.publish(part))[2]).toBe(false);
    const presence = signEvent(stranger, makeAwarenessEvent(address, { clock: 1, state: { here: true } }, now));
    expect((await c.publish(presence))[2]).toBe(false);

    // The owner removes the member: the cached record is dropped with the new one stored.
    expect((await c.publish(signEvent(owner, makeMembershipEvent('board', [], now - 5, { enforce: true }))))[2]).toBe(true);
    const after = await c.publish(delta(member, address, 'removed'));
    expect(after[2]).toBe(false);
    expect(getReasonPrefix(after[3] as string)).toBe('restricted');
    // What it wrote while a member is still answered as a duplicate (its outbox settles).
    const start = c.frames.length;
    c.send(['EVENT', memberDelta]);
    const again = await c.next((f) => f[0] === 'OK' && f[1] === memberDelta.id && c.frames.indexOf(f) >= start, 'second OK');
    expect([again[2], getReasonPrefix(again[3] as string)]).toEqual([true, 'duplicate']);

    // Without the tag the relay stores anyone's deltas (clients still drop them: the core's member gate).
    expect((await c.publish(signEvent(owner, makeMembershipEvent('board', [], now, {}))))[2]).toBe(true);
    expect((await c.publish(delta(stranger, address, 'untagged')))[2]).toBe(true);

    const stored = await c.req('q', { kinds: [4337], '#a': [address] });
    expect(stored.map((e) => e.pubkey).filter((p) => p === stranger.pk)).toHaveLength(2);
  });

  it("mode 'all' refuses writes to documents without a record; 'off' takes anything", async () => {
    t = await backend.start({ crdtMembership: 'all' });
    let c = await connect();
    const address = makeDocAddress(owner.pk, 'strict');
    const r = await c.publish(delta(owner, address));
    expect(r[2]).toBe(false);
    expect(getReasonPrefix(r[3] as string)).toBe('restricted');
    await c.publish(signEvent(owner, makeMembershipEvent('strict', [member.pk], nowSeconds())));
    expect((await c.publish(delta(member, address)))[2]).toBe(true);
    expect((await c.publish(delta(stranger, address)))[2]).toBe(false);
    const info = (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { roost: { crdt: { membership: string } } };
    expect(info.roost.crdt.membership).toBe('all');
    await t.close();

    t = await backend.start({ crdtMembership: 'off' });
    c = await connect();
    await c.publish(signEvent(owner, makeMembershipEvent('strict', [], nowSeconds(), { enforce: true })));
    expect((await c.publish(delta(stranger, address)))[2]).toBe(true);
  });
});
