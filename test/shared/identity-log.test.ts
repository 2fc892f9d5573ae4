import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { getPublicKey } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../shared/event.js';
import {
  checkKeyEventStep,
  DEFAULT_GRACE_SECONDS,
  getKeyEvent,
  getNextKeyDigest,
  IdentityKind,
  isKeyValidAt,
  type KeyEvent,
  type KeyLog,
  makeInception,
  makeRevocation,
  makeRotation,
  verifyKeyLog,
} from '../../shared/identity-log.js';
import { type Key, makeKey, signEvent } from '../helpers/events.js';

/** A deterministic key from a label, so seeded runs replay exactly. */
function keyOf(label: string): Key {
  const sk = new Uint8Array(createHash('sha256').update(label).digest());
  return { sk, pk: getPublicKey(sk) };
}

function log(aid: string, events: NostrEvent[]): KeyLog {
  const r = verifyKeyLog(aid, events);
  if (typeof r === 'string') throw new Error(r);
  return r;
}

const parsed = (ev: NostrEvent) => getKeyEvent(ev) as KeyEvent;

/** An honest agent: keys k0, k1, … with k(i+1) pre-committed by the event revealing k(i). */
function honest(prefix: string, t0 = 1_700_000_000) {
  const keys = Array.from({ length: 8 }, (_, i) => keyOf(`${prefix}/${i}`));
  const inception = signEvent(keys[0]!, makeInception({ nextKey: keys[1]!.pk }, t0));
  return { keys, inception, aid: inception.id };
}

describe('key event builders and reader', () => {
  it('round-trips an inception, a rotation and a revocation', () => {
    const { keys, inception, aid } = honest('rt');
    expect(parsed(inception)).toMatchObject({ type: 'inception', aid, seq: 0, next: getNextKeyDigest(keys[1]!.pk), grace: DEFAULT_GRACE_SECONDS });
    const rot = signEvent(
      keys[1]!,
      makeRotation({ head: parsed(inception), currentSecretKey: keys[0]!.sk, newKey: keys[1]!.pk, nextKey: keys[2]!.pk }, 1_700_000_100),
    );
    expect(rot.kind).toBe(IdentityKind.Rotation);
    expect(parsed(rot)).toMatchObject({ type: 'rotation', aid, prev: aid, seq: 1, next: getNextKeyDigest(keys[2]!.pk) });
    const rev = signEvent(keys[2]!, makeRevocation({ head: parsed(rot), nextKey: keys[3]!.pk, reason: 'laptop stolen' }, 1_700_000_200));
    expect(parsed(rev)).toMatchObject({ type: 'revocation', aid, prev: rot.id, seq: 2 });
    const closing = signEvent(keys[2]!, makeRevocation({ head: parsed(rot) }, 1_700_000_200));
    expect(parsed(closing).next).toBeUndefined();
  });

  it.each([
    ['inception without next', { kind: IdentityKind.Inception, tags: [] }],
    [
      'inception with a grace over 30 days',
      {
        kind: IdentityKind.Inception,
        tags: [
          ['next', 'a'.repeat(64)],
          ['grace', '2592001'],
        ],
      },
    ],
    [
      'rotation without prior-sig',
      {
        kind: IdentityKind.Rotation,
        tags: [
          ['e', 'a'.repeat(64), '', 'root'],
          ['e', 'a'.repeat(64), '', 'prev'],
          ['seq', '1'],
          ['next', 'b'.repeat(64)],
        ],
      },
    ],
    [
      'revocation with seq 0',
      {
        kind: IdentityKind.Revocation,
        tags: [
          ['e', 'a'.repeat(64), '', 'root'],
          ['e', 'a'.repeat(64), '', 'prev'],
          ['seq', '0'],
        ],
      },
    ],
    [
      'revocation with seq 01',
      {
        kind: IdentityKind.Revocation,
        tags: [
          ['e', 'a'.repeat(64), '', 'root'],
          ['e', 'a'.repeat(64), '', 'prev'],
          ['seq', '01'],
        ],
      },
    ],
    [
      'revocation without root',
      {
        kind: IdentityKind.Revocation,
        tags: [
          ['e', 'a'.repeat(64), '', 'prev'],
          ['seq', '1'],
        ],
      },
    ],
    ['a text note', { kind: 1, tags: [['next', 'a'.repeat(64)]] }],
  ])('refuses a malformed event: %s', (_name, tpl) => {
    expect(getKeyEvent(signEvent(makeKey(), { ...tpl, content: '' }))).toBeUndefined();
  });
});

describe('chain rules', () => {
  const { keys, inception, aid } = honest('rules');
  const t = 1_700_000_000;
  const head = parsed(inception);
  const rotate = (signer: Key, currentSk: Uint8Array, newKey: string, at = t + 10) =>
    parsed(signEvent(signer, makeRotation({ head, currentSecretKey: currentSk, newKey, nextKey: keys[2]!.pk }, at)));

  it('accepts the owner rotating: current key co-signs, committed next key signs', () => {
    expect(checkKeyEventStep(head, rotate(keys[1]!, keys[0]!.sk, keys[1]!.pk))).toBeUndefined();
  });

  it('a thief holding only the current key cannot rotate or revoke', () => {
    const thief = keyOf('thief');
    // signing the rotation with a key of his own: not the committed next key
    expect(checkKeyEventStep(head, rotate(thief, keys[0]!.sk, thief.pk))).toBe(`key ${thief.pk} is not the next key committed to by ${aid}`);
    // signing it with the current key itself
    expect(checkKeyEventStep(head, rotate(keys[0]!, keys[0]!.sk, keys[0]!.pk))).toMatch(/is not the next key committed to/);
    const rev = parsed(signEvent(thief, makeRevocation({ head, nextKey: thief.pk }, t + 10)));
    expect(checkKeyEventStep(head, rev)).toMatch(/is not the next key committed to/);
  });

  it('a thief holding only the next key cannot rotate (no prior-sig) but can revoke (as documented)', () => {
    const thief = keyOf('thief2');
    expect(checkKeyEventStep(head, rotate(keys[1]!, thief.sk, keys[1]!.pk))).toBe(`prior-sig is not a signature by the current key ${keys[0]!.pk}`);
    const rev = parsed(signEvent(keys[1]!, makeRevocation({ head, nextKey: thief.pk }, t + 10)));
    expect(checkKeyEventStep(head, rev)).toBeUndefined();
  });

  it('prior-sig covers the time and the next digest: changing either breaks it', () => {
    const good = signEvent(keys[1]!, makeRotation({ head, currentSecretKey: keys[0]!.sk, newKey: keys[1]!.pk, nextKey: keys[2]!.pk }, t + 10));
    const moved = signEvent(keys[1]!, { ...good, created_at: t + 99_999 });
    expect(checkKeyEventStep(head, parsed(moved))).toMatch(/^prior-sig is not/);
    const otherNext = signEvent(keys[1]!, { ...good, tags: good.tags.map((x) => (x[0] === 'next' ? ['next', getNextKeyDigest(keys[5]!.pk)] : x)) });
    expect(checkKeyEventStep(head, parsed(otherNext))).toMatch(/^prior-sig is not/);
  });

  it('refuses a wrong seq, a wrong prev, another identity, a backdated event and anything after a closing revocation', () => {
    const r = signEvent(keys[1]!, makeRotation({ head, currentSecretKey: keys[0]!.sk, newKey: keys[1]!.pk, nextKey: keys[2]!.pk }, t + 10));
    const seq = signEvent(keys[1]!, { ...r, tags: r.tags.map((x) => (x[0] === 'seq' ? ['seq', '2'] : x)) });
    expect(checkKeyEventStep(head, parsed(seq))).toBe('key event seq must be 1');
    const other = honest('other');
    expect(checkKeyEventStep(parsed(other.inception), parsed(r))).toMatch(/^key event belongs to identity/);
    expect(checkKeyEventStep(head, rotate(keys[1]!, keys[0]!.sk, keys[1]!.pk, t - 1))).toBe('key event is dated before the event it follows');
    const closing = parsed(signEvent(keys[1]!, makeRevocation({ head }, t + 5)));
    const after = parsed(signEvent(keys[2]!, makeRevocation({ head: closing, nextKey: keys[3]!.pk }, t + 6)));
    expect(checkKeyEventStep(closing, after)).toBe(`identity ${aid} is closed`);
  });
});

describe('verifyKeyLog', () => {
  it('follows rotations and a revocation, with grace for rotated keys and none for revoked ones', () => {
    const { keys, inception, aid } = honest('log');
    const t = 1_700_000_000;
    const r1 = signEvent(
      keys[1]!,
      makeRotation({ head: parsed(inception), currentSecretKey: keys[0]!.sk, newKey: keys[1]!.pk, nextKey: keys[2]!.pk }, t + 100),
    );
    const rv = signEvent(keys[2]!, makeRevocation({ head: parsed(r1), nextKey: keys[3]!.pk }, t + 200));
    const l = log(aid, [rv, inception, r1, r1]);
    expect(l).toMatchObject({ status: 'active', current: keys[2]!.pk, ignored: [] });
    expect(l.chain.map((c) => c.id)).toEqual([aid, r1.id, rv.id]);
    expect(l.keys).toEqual([
      { pubkey: keys[0]!.pk, from: t, until: t + 100 + DEFAULT_GRACE_SECONDS, end: 'rotated' },
      { pubkey: keys[1]!.pk, from: t + 100, until: t + 200, end: 'revoked' },
      { pubkey: keys[2]!.pk, from: t + 200 },
    ]);
    expect(isKeyValidAt(l, keys[0]!.pk, t + 100 + DEFAULT_GRACE_SECONDS - 1)).toBe(true);
    expect(isKeyValidAt(l, keys[0]!.pk, t + 100 + DEFAULT_GRACE_SECONDS)).toBe(false);
    expect(isKeyValidAt(l, keys[1]!.pk, t + 199)).toBe(true);
    expect(isKeyValidAt(l, keys[1]!.pk, t + 200)).toBe(false);
    expect(isKeyValidAt(l, keys[2]!.pk, t + 10_000_000)).toBe(true);
    expect(isKeyValidAt(l, keyOf('stranger').pk, t + 300)).toBe(false);
  });

  it('detects two competing rotations from one state as a fork and stops there', () => {
    const { keys, inception, aid } = honest('fork');
    const t = 1_700_000_000;
    const a = signEvent(keys[1]!, makeRotation({ head: parsed(inception), currentSecretKey: keys[0]!.sk, newKey: keys[1]!.pk, nextKey: keys[2]!.pk }, t + 10));
    const b = signEvent(keys[1]!, makeRevocation({ head: parsed(inception), nextKey: keyOf('thief').pk }, t + 20));
    const afterA = signEvent(keys[2]!, makeRotation({ head: parsed(a), currentSecretKey: keys[1]!.sk, newKey: keys[2]!.pk, nextKey: keys[3]!.pk }, t + 30));
    const l = log(aid, [inception, a, b, afterA]);
    expect(l.status).toBe('forked');
    expect(l.current).toBeUndefined();
    expect(l.fork).toEqual({ at: aid, branches: [a.id, b.id].sort() });
    expect(l.keys).toEqual([{ pubkey: keys[0]!.pk, from: t, until: t + 10, end: 'forked' }]);
    expect(isKeyValidAt(l, keys[2]!.pk, t + 40)).toBe(false);
  });

  it('ignores forged, foreign and tampered events, and reports a missing inception', () => {
    const { keys, inception, aid } = honest('junk');
    const other = honest('junk-other');
    const forged = signEvent(
      keyOf('thief'),
      makeRotation({ head: parsed(inception), currentSecretKey: keys[0]!.sk, newKey: keyOf('thief').pk, nextKey: keys[2]!.pk }, 1_700_000_010),
    );
    const good = signEvent(
      keys[1]!,
      makeRotation({ head: parsed(inception), currentSecretKey: keys[0]!.sk, newKey: keys[1]!.pk, nextKey: keys[2]!.pk }, 1_700_000_010),
    );
    const tampered = { ...signEvent(keys[1]!, makeRevocation({ head: parsed(inception), nextKey: keys[2]!.pk }, 1_700_000_020)), content: 'x' };
    const l = log(aid, [inception, forged, other.inception, tampered, good]);
    expect(l).toMatchObject({ status: 'active', current: keys[1]!.pk });
    expect(Object.fromEntries(l.ignored.map((i) => [i.id, i.reason]))).toEqual({
      [forged.id]: `key ${keyOf('thief').pk} is not the next key committed to by ${aid}`,
      [other.inception.id]: `key event belongs to identity ${other.aid}`,
      [tampered.id]: 'bad id or signature',
    });
    expect(verifyKeyLog(aid, [good])).toBe(`inception ${aid} not found`);
  });

  it('a closing revocation ends the identity: no key is valid afterwards', () => {
    const { keys, inception, aid } = honest('close');
    const rv = signEvent(keys[1]!, makeRevocation({ head: parsed(inception) }, 1_700_000_050));
    const l = log(aid, [inception, rv]);
    expect(l.status).toBe('closed');
    expect(l.current).toBeUndefined();
    expect(isKeyValidAt(l, keys[1]!.pk, 1_700_000_050)).toBe(false);
    expect(isKeyValidAt(l, keys[0]!.pk, 1_700_000_049)).toBe(true);
  });
});

describe('verifyKeyLog, seeded property', () => {
  // An honest log of random rotations and revocations, delivered shuffled and duplicated among
  // thieves' attempts (current key only, next key without the current one's co-signature) and events of
  // another identity, always verifies to exactly the honest chain.
  it('recovers exactly the honest chain from any delivery', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ revoke: fc.boolean(), dt: fc.integer({ min: 0, max: 1_000_000 }) }), { minLength: 0, maxLength: 5 }),
        fc.array(fc.integer({ min: 0, max: 1_000 }), { minLength: 6, maxLength: 6 }),
        fc.integer({ min: 0, max: 2 ** 31 }),
        (steps, order, salt) => {
          const { keys, inception, aid } = honest(`prop-${salt}`);
          const events: NostrEvent[] = [inception];
          const noise: NostrEvent[] = [honest(`prop-other-${salt}`).inception];
          let head = parsed(inception);
          let t = head.created_at;
          steps.forEach((s, i) => {
            t += s.dt;
            const cur = keys[i]!;
            const nxt = keys[i + 1]!;
            const thief = keyOf(`thief-${salt}-${i}`);
            noise.push(signEvent(thief, makeRotation({ head, currentSecretKey: cur.sk, newKey: thief.pk, nextKey: thief.pk }, t)));
            noise.push(signEvent(nxt, makeRotation({ head, currentSecretKey: thief.sk, newKey: nxt.pk, nextKey: thief.pk }, t)));
            const tpl = s.revoke
              ? makeRevocation({ head, nextKey: keys[i + 2]!.pk }, t)
              : makeRotation({ head, currentSecretKey: cur.sk, newKey: nxt.pk, nextKey: keys[i + 2]!.pk }, t);
            const ev = signEvent(nxt, tpl);
            events.push(ev);
            head = parsed(ev);
          });
          const all = [...events, ...noise, ...events.slice(0, 2)];
          const shuffled = all
            .map((e, i) => ({ e, k: order[i % order.length]! * 1_000 + i }))
            .sort((a, b) => a.k - b.k)
            .map((x) => x.e);
          const l = log(aid, shuffled);
          expect(l.status).toBe('active');
          expect(l.chain.map((c) => c.id)).toEqual(events.map((e) => e.id));
          expect(l.current).toBe(keys[steps.length]!.pk);
          expect(new Set(l.ignored.map((i) => i.id))).toEqual(new Set(noise.map((e) => e.id)));
        },
      ),
      { seed: 23, numRuns: 25 },
    );
  });
});
