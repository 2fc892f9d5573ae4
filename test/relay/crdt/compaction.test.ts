import { afterEach, describe, expect, it } from 'vitest';
import { createSharedDoc, type SharedDoc } from '../../../client/crdt/shared-doc.js';
import { assembleSnapshot, makeDocAddress, makeMembershipEvent, makeSnapshotEvents, makeUpdateEvent, parseUpdateEvent } from '../../../client/crdt/wire.js';
import type { NostrEvent } from '../../../shared/event.js';
import type { SqliteStore } from '../../../relay/store/sqlite.js';
import { makeKey, nowSeconds, signEvent, type Key } from '../../helpers/events.js';
import { RawClient } from '../../helpers/raw-client.js';
import type { TestRelay } from '../../helpers/relay.js';
import { testBackends } from '../../helpers/backends.js';
import type { PostgresStore } from '../../../relay/store/postgres.js';

const owner = makeKey();
const member = makeKey();
const NAME = 'board';
const ADDRESS = makeDocAddress(owner.pk, NAME);

/** Two replicas (owner, member) wired to each other; every delta is also kept as a signed event. */
function makeReplicas() {
  const events: NostrEvent[] = [];
  const docs = new Map<Key, SharedDoc>();
  for (const k of [owner, member]) docs.set(k, createSharedDoc({ docId: ADDRESS, self: k.pk, membership: { owner: owner.pk, members: [member.pk] } }));
  for (const [k, doc] of docs) {
    doc.connect({
      publish: (u, m) => {
        events.push(signEvent(k, makeUpdateEvent(ADDRESS, u, m.clock, nowSeconds())));
        for (const other of docs.values()) if (other !== doc) other.receive(u, { author: k.pk });
      },
    });
  }
  return { events, o: docs.get(owner)!, m: docs.get(member)! };
}

function edit(doc: SharedDoc, i: number) {
  if (i % 3 === 0) doc.map('tasks').set(`t${i % 7}`, { n: i });
  else if (i % 3 === 1) doc.set('peers').add(`p${i % 5}`);
  else doc.set('peers').remove(`p${(i + 1) % 5}`);
}

// SQLite compacts in its own database, PostgreSQL in the cluster's (a store that only answers later has neither).
describe.each(testBackends({ late: false }))('compaction: deltas covered by a trusted snapshot expire ($name)', (backend) => {
  let t: TestRelay | undefined;
  const clients: RawClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await t?.close();
    t = undefined;
  });

  it('expires exactly the covered deltas before an owner snapshot; a newcomer rebuilds the state from what is left', async () => {
    t = await backend.start({ crdtCompactionGraceSeconds: 0 });
    const c = await RawClient.connect(t.url);
    clients.push(c);
    await c.publish(signEvent(owner, makeMembershipEvent(NAME, [member.pk], nowSeconds())));
    const { events, o, m } = makeReplicas();
    for (let i = 0; i < 40; i++) edit(i % 2 ? o : m, i);
    for (const ev of events) expect((await c.publish(ev))[2]).toBe(true);
    const covered = events.length;

    // A member's snapshot is not trusted for compaction (crdtCompaction: owner).
    for (const p of makeSnapshotEvents(ADDRESS, m.snapshot(), nowSeconds(), 300)) await c.publish(signEvent(member, p));
    await t.relay.sharedDocs.idle();
    expect(await c.req('all0', { kinds: [4337], '#a': [ADDRESS] })).toHaveLength(covered);

    // An incomplete owner generation (last part missing) compacts nothing.
    const snap = o.snapshot();
    const parts = makeSnapshotEvents(ADDRESS, snap, nowSeconds(), 300).map((p) => signEvent(owner, p));
    expect(parts.length).toBeGreaterThan(2);
    for (const p of parts.slice(0, -1)) await c.publish(p);
    await t.relay.sharedDocs.idle();
    expect(await c.req('all1', { kinds: [4337], '#a': [ADDRESS] })).toHaveLength(covered);

    // Deltas written after the snapshot was taken stay, even when stored before its last part.
    for (let i = 40; i < 50; i++) edit(i % 2 ? o : m, i);
    for (const ev of events.slice(covered)) await c.publish(ev);
    await c.publish(parts.at(-1)!);
    await t.relay.sharedDocs.idle();
    expect(t.relay.sharedDocs.stats().compactions).toBe(1);

    const left = (await c.req('all2', { kinds: [4337], '#a': [ADDRESS] })) as unknown as NostrEvent[];
    expect(new Set(left.map((e) => e.id))).toEqual(new Set(events.slice(covered).map((e) => e.id)));
    // The sweep removes them from disk.
    const store = t.relay.ctx.store;
    await store.sweepExpired(nowSeconds() + 1);
    const onDisk =
      backend.name === 'postgres'
        ? (await (store as PostgresStore).pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE kind = 4337')).rows[0]!.n
        : (store as SqliteStore).db.prepare('SELECT count(*) FROM events WHERE kind = 4337').pluck().get();
    expect(onDisk).toBe(events.length - covered);

    // A newcomer: the snapshot plus every delta still stored gives the members' state.
    const snapEvents = (await c.req('snap', { kinds: [34338], '#a': [ADDRESS], authors: [owner.pk] })) as unknown as NostrEvent[];
    const got = assembleSnapshot(ADDRESS, snapEvents)!;
    const newcomer = createSharedDoc({ docId: ADDRESS, self: makeKey().pk, membership: { owner: owner.pk, members: [member.pk] } });
    expect(newcomer.receive(got.update, { author: owner.pk, kind: 'snapshot' })).toBe(true);
    for (const ev of left) newcomer.receive(parseUpdateEvent(ev)!.update, { author: ev.pubkey });
    expect(newcomer.hasPending()).toBe(false);
    expect(newcomer.toJSON()).toEqual(o.toJSON());
    expect(o.toJSON()).toEqual(m.toJSON());
  });

  it('waits out the grace period, and replaces nothing when compaction is off', async () => {
    let now = nowSeconds();
    t = await backend.start({ crdtCompactionGraceSeconds: 3600 }, { now: () => now });
    let c = await RawClient.connect(t.url);
    clients.push(c);
    await c.publish(signEvent(owner, makeMembershipEvent(NAME, [member.pk], now)));
    let r = makeReplicas();
    for (let i = 0; i < 10; i++) edit(r.o, i);
    for (const ev of r.events) await c.publish(ev);
    for (const p of makeSnapshotEvents(ADDRESS, r.o.snapshot(), now)) await c.publish(signEvent(owner, p));
    await t.relay.sharedDocs.idle();
    expect(await c.req('a', { kinds: [4337], '#a': [ADDRESS] })).toHaveLength(r.events.length);
    now += 3601;
    expect(await c.req('b', { kinds: [4337], '#a': [ADDRESS] })).toHaveLength(0);
    await t.close();

    now = nowSeconds();
    t = await backend.start({ crdtCompaction: 'off', crdtCompactionGraceSeconds: 0 });
    c = await RawClient.connect(t.url);
    clients.push(c);
    r = makeReplicas();
    for (let i = 0; i < 10; i++) edit(r.o, i);
    for (const ev of r.events) await c.publish(ev);
    for (const p of makeSnapshotEvents(ADDRESS, r.o.snapshot(), now)) await c.publish(signEvent(owner, p));
    await t.relay.sharedDocs.idle();
    expect(await c.req('c', { kinds: [4337], '#a': [ADDRESS] })).toHaveLength(r.events.length);
  });
});
