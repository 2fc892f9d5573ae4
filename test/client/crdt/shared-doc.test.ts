import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { createCoverageCheck, isSnapshotConsistent } from '../../../client/crdt/coverage.js';
import { CrdtError } from '../../../client/crdt/errors.js';
import { makeMembership } from '../../../client/crdt/membership.js';
import { createSharedDoc, defaultPolicies, onlySnapshotsFrom, type SharedDoc } from '../../../client/crdt/shared-doc.js';
import type { DocTransport, LocalUpdateMeta, RemoteUpdateMeta, UpdateReceiver } from '../../../client/crdt/transport.js';
import { pk } from './sim.js';

const OWNER = pk(0);
const ALICE = pk(1);
const MALLORY = pk(9);

function recorder(): DocTransport & { sent: Array<{ update: Uint8Array; meta: LocalUpdateMeta }> } {
  const sent: Array<{ update: Uint8Array; meta: LocalUpdateMeta }> = [];
  return { sent, publish: (update, meta) => sent.push({ update, meta }) };
}

function doc(self: string, extra: Partial<Parameters<typeof createSharedDoc>[0]> = {}): SharedDoc {
  return createSharedDoc({ docId: 'd1', self, membership: { owner: OWNER, members: [ALICE] }, ...extra });
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof CrdtError ? err.code : 'not a CrdtError';
  }
  return undefined;
}

describe('publishing and the origin rule', () => {
  it('publishes each local transaction once with a contiguous clock range, and never echoes remote updates', () => {
    const a = doc(OWNER, { clientId: 11 });
    const b = doc(ALICE, { clientId: 22 });
    const ta = recorder();
    const tb = recorder();
    a.connect(ta);
    b.connect(tb);

    a.map('tasks').set('t1', 'todo');
    a.transact(() => {
      a.map('tasks').set('t2', 'todo');
      a.set('peers').add(ALICE);
    });
    expect(ta.sent).toHaveLength(2);
    expect(ta.sent.map((s) => s.meta)).toEqual([
      { docId: 'd1', author: OWNER, clock: { client: 11, from: 0, to: 1 } },
      { docId: 'd1', author: OWNER, clock: { client: 11, from: 1, to: 3 } },
    ]);

    for (const s of ta.sent) expect(b.receive(s.update, { author: OWNER })).toBe(true);
    expect(tb.sent).toHaveLength(0);
    expect(b.toJSON()).toEqual(a.toJSON());
  });

  it('two documents wired back to back exchange each change exactly once (an echo would loop)', () => {
    const a = doc(OWNER);
    const b = doc(ALICE);
    let messages = 0;
    const link = (_from: SharedDoc, to: SharedDoc): DocTransport => ({
      publish: (update, meta) => {
        messages++;
        if (messages > 100) throw new Error('echo loop');
        to.receive(update, { author: meta.author });
      },
    });
    a.connect(link(a, b));
    b.connect(link(b, a));
    a.status().set('mood', 'curious');
    b.status().set('mood', 'tired');
    b.counters('trust').increment(OWNER, 3);
    expect(messages).toBe(3);
    expect(a.toJSON()).toEqual(b.toJSON());
    expect(a.status(ALICE).get('mood')).toBe('tired');
  });

  it('feeds remote updates in through attach and publishes to every connected transport', () => {
    const a = doc(OWNER);
    let receive: UpdateReceiver | undefined;
    const t1: DocTransport & { n: number } = {
      n: 0,
      publish() {
        this.n++;
      },
      attach(r) {
        receive = r;
        return () => (receive = undefined);
      },
    };
    const t2 = recorder();
    const disconnect = a.connect(t1);
    a.connect(t2);
    const b = doc(ALICE);
    b.register('leader').set('alice');
    expect(receive!(b.encodeState(), { author: ALICE })).toBe(true);
    expect(a.register('leader').get()).toBe('alice');
    expect(t1.n + t2.sent.length).toBe(0);
    a.register('leader').set('owner');
    expect(t1.n).toBe(1);
    expect(t2.sent).toHaveLength(1);
    disconnect();
    expect(receive).toBeUndefined();
    a.register('leader').set('again');
    expect(t1.n).toBe(1);
    expect(t2.sent).toHaveLength(2);
  });

  it('gives a delete-only transaction a tick so its delta still has a clock range, in one message', () => {
    const a = doc(OWNER, { clientId: 5 });
    const t = recorder();
    a.set('peers').add('x');
    a.ydoc.getArray('log').insert(0, [1, 2, 3]);
    const before = a.encodeState();
    a.connect(t);
    a.set('peers').remove('x');
    a.ydoc.getArray('log').delete(0, 2);
    expect(t.sent).toHaveLength(2);
    for (const s of t.sent) {
      expect(s.meta.clock.client).toBe(5);
      expect(s.meta.clock.to).toBeGreaterThan(s.meta.clock.from);
    }
    const b = doc(ALICE);
    b.receive(Y.mergeUpdates([before, ...t.sent.map((s) => s.update)]), { author: OWNER });
    expect(b.set('peers').values()).toEqual([]);
    expect(b.ydoc.getArray('log').toJSON()).toEqual([3]);
  });
});

describe('membership', () => {
  it.each([
    { name: 'owner', author: OWNER, accepted: true },
    { name: 'member', author: ALICE, accepted: true },
    { name: 'non-member', author: MALLORY, accepted: false },
  ])('an update authored by a $name is accepted: $accepted', ({ author, accepted }) => {
    const rejects: Array<[string, RemoteUpdateMeta]> = [];
    const a = doc(OWNER, { onReject: (r, m) => rejects.push([r, m]) });
    const writer = createSharedDoc({ docId: 'd1', self: author, membership: { owner: author } });
    writer.map('tasks').set('t', author.slice(-1));
    expect(a.receive(writer.encodeState(), { author, kind: 'delta', id: 'ev1' })).toBe(accepted);
    expect(a.map('tasks').get('t')).toBe(accepted ? author.slice(-1) : undefined);
    expect(rejects).toEqual(accepted ? [] : [[`blocked: ${MALLORY} is not a member`, { author, kind: 'delta', id: 'ev1' }]]);
  });

  it('takes a newer record only from the owner; added members can then write, removed ones cannot', () => {
    const a = doc(ALICE);
    const m = createSharedDoc({ docId: 'd1', self: MALLORY, membership: { owner: MALLORY } });
    m.counters('trust').increment(MALLORY, 100);
    const upd = m.encodeState();

    expect(a.applyMembership(makeMembership(OWNER, [ALICE, MALLORY], 10), MALLORY)).toBe(false);
    expect(a.applyMembership(makeMembership(MALLORY, [MALLORY], 10), MALLORY)).toBe(false);
    expect(a.isMember(MALLORY)).toBe(false);
    expect(a.applyMembership(makeMembership(OWNER, [ALICE, MALLORY], 10), OWNER)).toBe(true);
    expect(a.applyMembership(makeMembership(OWNER, [ALICE], 10), OWNER)).toBe(false);
    expect(a.isMember(MALLORY)).toBe(true);
    expect(a.receive(upd, { author: MALLORY })).toBe(true);
    expect(a.counters('trust').value(MALLORY)).toBe(100);

    expect(a.applyMembership(makeMembership(OWNER, [ALICE], 11), OWNER)).toBe(true);
    m.counters('trust').increment(MALLORY, 100);
    expect(a.receive(m.encodeState(), { author: MALLORY })).toBe(false);
    expect(a.counters('trust').value(MALLORY)).toBe(100);
  });

  it('refuses typed writes from a non-member replica and writes to another agent status', () => {
    const outsider = doc(MALLORY);
    expect(outsider.canWrite).toBe(false);
    expect(codeOf(() => outsider.map('tasks').set('t', 1))).toBe('ROOST_ERR_CRDT_READ_ONLY');
    expect(codeOf(() => outsider.status().set('mood', 'x'))).toBe('ROOST_ERR_CRDT_READ_ONLY');
    expect(codeOf(() => outsider.counter('c').increment())).toBe('ROOST_ERR_CRDT_READ_ONLY');
    const alice = doc(ALICE);
    expect(codeOf(() => alice.status(OWNER).set('mood', 'x'))).toBe('ROOST_ERR_CRDT_NOT_OWNER');
    expect(codeOf(() => alice.status().set('mood', 'ok'))).toBeUndefined();
    expect(alice.statusAuthors()).toEqual([ALICE]);
    expect(alice.toJSON().status).toEqual({ [ALICE]: { mood: 'ok' } });
  });

  it('policies compose: first rejection wins, e.g. snapshots only from the owner', () => {
    const reasons: string[] = [];
    const a = doc(ALICE, { policies: [...defaultPolicies, onlySnapshotsFrom((p) => p === OWNER)], onReject: (r) => reasons.push(r) });
    const src = doc(OWNER);
    src.map('m').set('k', 1);
    expect(a.receive(src.encodeState(), { author: ALICE, kind: 'snapshot' })).toBe(false);
    expect(a.receive(src.encodeState(), { author: MALLORY, kind: 'snapshot' })).toBe(false);
    expect(a.receive(src.encodeState(), { author: ALICE, kind: 'sync' })).toBe(true);
    expect(a.receive(src.encodeState(), { author: OWNER, kind: 'snapshot' })).toBe(true);
    expect(reasons).toEqual([`restricted: snapshot from untrusted ${ALICE}`, `blocked: ${MALLORY} is not a member`]);
  });

  it('an empty policy list opens the document to everyone', () => {
    const open = doc(OWNER, { policies: [] });
    const m = createSharedDoc({ docId: 'd1', self: MALLORY, membership: { owner: MALLORY } });
    m.set('s').add('v');
    expect(open.receive(m.encodeState(), { author: MALLORY })).toBe(true);
    expect(open.set('s').has('v')).toBe(true);
  });
});

describe('catch-up, snapshots and persistence', () => {
  it('a replica that was offline merges what changed through a state-vector diff, both ways', () => {
    const a = doc(OWNER);
    const b = doc(ALICE);
    a.map('tasks').set('shared', 1);
    b.receive(a.encodeState(), { author: OWNER });
    // offline: both edit
    for (let i = 0; i < 50; i++) a.counters('trust').increment(ALICE);
    b.map('tasks').set('shared', 2);
    b.set('peers').add(OWNER);
    const toB = a.diff(b.stateVector());
    const toA = b.diff(a.stateVector());
    expect(toB.length).toBeLessThan(a.encodeState().length + 1);
    expect(b.receive(toB, { author: OWNER, kind: 'sync' })).toBe(true);
    expect(a.receive(toA, { author: ALICE, kind: 'sync' })).toBe(true);
    expect(a.toJSON()).toEqual(b.toJSON());
    expect(a.counters('trust').value(ALICE)).toBe(50);
  });

  it('refuses to snapshot while updates wait for missing dependencies', () => {
    const a = doc(OWNER);
    const updates: Uint8Array[] = [];
    a.connect({ publish: (u) => updates.push(u) });
    a.map('m').set('k', 1);
    a.map('m').set('k', 2);
    const b = doc(ALICE);
    b.receive(updates[1]!, { author: OWNER });
    expect(b.hasPending()).toBe(true);
    expect(codeOf(() => b.snapshot())).toBe('ROOST_ERR_CRDT_PENDING');
    b.receive(updates[0]!, { author: OWNER });
    expect(b.hasPending()).toBe(false);
    expect(b.map('m').get('k')).toBe(2);
    expect(b.snapshot().stateVector.get(a.ydoc.clientID)).toBe(2);
  });

  it('restores persisted state without publishing it, under a new client id', () => {
    const a = doc(OWNER);
    a.status().set('energy', 0.7);
    a.counters('trust').increment(ALICE, 2);
    const t = recorder();
    const again = doc(OWNER, { restore: a.encodeState() });
    again.connect(t);
    expect(t.sent).toHaveLength(0);
    expect(again.toJSON()).toEqual(a.toJSON());
    expect(again.ydoc.clientID).not.toBe(a.ydoc.clientID);
    again.counters('trust').increment(ALICE, 1);
    expect(again.counters('trust').value(ALICE)).toBe(3);
    expect(t.sent).toHaveLength(1);
  });

  it('rejects a malformed update as invalid and stays usable', () => {
    const reasons: string[] = [];
    const a = doc(OWNER, { onReject: (r) => reasons.push(r) });
    expect(a.receive(new Uint8Array([255, 255, 255, 255, 1, 2]), { author: ALICE })).toBe(false);
    expect(reasons).toEqual(['invalid: malformed update']);
    a.map('m').set('k', 'still fine');
    expect(a.map('m').get('k')).toBe('still fine');
  });

  it('reports a root name taken by another Yjs type as a coded error', () => {
    const a = doc(OWNER);
    a.ydoc.getArray('lww:tasks');
    expect(codeOf(() => a.map('tasks'))).toBe('ROOST_ERR_CRDT_TYPE_CLASH');
  });

  it('checks a snapshot claim against its content and tells which deltas it makes redundant', () => {
    const a = doc(OWNER, { clientId: 3 });
    const deltas: Uint8Array[] = [];
    a.connect({ publish: (u) => deltas.push(u) });
    a.set('peers').add('p');
    a.map('m').set('k', 1);
    const snap = a.snapshot();
    a.set('peers').remove('p');
    expect(isSnapshotConsistent(snap.update, snap.stateVector)).toBe(true);
    expect(isSnapshotConsistent(snap.update, new Map([[3, 99]]))).toBe(false);
    expect(isSnapshotConsistent(snap.update, new Map())).toBe(false);
    expect(isSnapshotConsistent(new Uint8Array([9, 9, 9]), new Map())).toBe(false);
    const covers = createCoverageCheck(snap.update);
    expect(deltas.map(covers)).toEqual([true, true, false]);
  });
});
