import { createHash } from 'node:crypto';
import { getPublicKey } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import { makeIdentityMembershipEvent } from '../../client/identity-docs.js';
import { makeIdentityDocAddress, parseDocAddress } from '../../shared/crdt-events.js';
import { getIdentityRecordRank, isOwnerKeyAt, pickIdentityRecord } from '../../shared/doc-owner.js';
import { getKeyEvent, type KeyEvent, type KeyLog, makeInception, makeRevocation, makeRotation, verifyKeyLog } from '../../shared/identity-log.js';
import { type Key, signEvent } from '../helpers/events.js';

const keyOf = (label: string): Key => {
  const sk = new Uint8Array(createHash('sha256').update(label).digest());
  return { sk, pk: getPublicKey(sk) };
};
const T0 = 1_700_000_000;
const GRACE = 1000;
const [k0, k1, k2, k3] = [0, 1, 2, 3].map((i) => keyOf(`doc-owner/${i}`)) as [Key, Key, Key, Key];
const inception = signEvent(k0, makeInception({ nextKey: k1.pk, grace: GRACE }, T0));
const aid = inception.id;
// k0 rotated to k1 at T0+100 (grace to T0+1100); k1 revoked by k2 at T0+200.
const rotation = signEvent(k1, makeRotation({ head: getKeyEvent(inception) as KeyEvent, currentSecretKey: k0.sk, newKey: k1.pk, nextKey: k2.pk }, T0 + 100));
const revocation = signEvent(k2, makeRevocation({ head: getKeyEvent(rotation) as KeyEvent, nextKey: k3.pk }, T0 + 200));
const log = verifyKeyLog(aid, [inception, rotation, revocation]) as KeyLog;
const address = makeIdentityDocAddress(aid, 'plan');
const record = (k: Key, at: number, members: string[] = []) => signEvent(k, makeIdentityMembershipEvent(aid, 'plan', members, at));

describe('documents owned by an identity (shared/doc-owner.ts)', () => {
  it('addresses name the agent id with kind 34339 and parse back', () => {
    expect(address).toBe(`34339:${aid}:plan`);
    expect(parseDocAddress(address)).toEqual({ owner: aid, name: 'plan', identity: true, kind: 34339 });
    expect(parseDocAddress(`34337:${k0.pk}:plan`)).toEqual({ owner: k0.pk, name: 'plan', identity: false, kind: 34337 });
  });

  it('owner keys: the current one, a rotated-out one until its grace ends, never a revoked one or a stranger', () => {
    expect(typeof log === 'string' ? log : log.current).toBe(k2.pk);
    expect(isOwnerKeyAt(log, k2.pk, T0 + 10_000)).toBe(true);
    expect(isOwnerKeyAt(log, k0.pk, T0 + 1099)).toBe(true);
    expect(isOwnerKeyAt(log, k0.pk, T0 + 1100)).toBe(false);
    expect(isOwnerKeyAt(log, k1.pk, T0 + 150)).toBe(false);
    expect(isOwnerKeyAt(log, k3.pk, T0 + 300)).toBe(false);
  });

  it('records rank by key order then time: a later key outranks a backdated earlier one; revoked, late or foreign records have no rank', () => {
    const byK0 = record(k0, T0 + 150); // inside k0's grace
    const byK2 = record(k2, T0 + 300);
    expect(getIdentityRecordRank(log, byK0, address)).toBe(T0 + 150);
    expect(getIdentityRecordRank(log, byK2, address)).toBe(2 * 2 ** 32 + T0 + 300);
    expect(getIdentityRecordRank(log, record(k0, T0 + 1100), address)).toBeUndefined(); // after its grace
    expect(getIdentityRecordRank(log, record(k1, T0 + 150), address)).toBeUndefined(); // revoked: whatever its date
    expect(getIdentityRecordRank(log, record(k3, T0 + 300), address)).toBeUndefined(); // not revealed
    expect(getIdentityRecordRank(log, byK2, makeIdentityDocAddress(aid, 'other'))).toBeUndefined();
    const late = record(k0, T0 + 1099, ['ff'.repeat(32)]);
    expect(pickIdentityRecord(log, [late, byK2, byK0], address)?.event.id).toBe(byK2.id);
  });
});
