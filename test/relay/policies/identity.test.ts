import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../../shared/event.js';
import { getKeyEvent, IdentityKind, type KeyEvent, makeInception, makeRevocation, makeRotation, verifyKeyLog } from '../../../shared/identity-log.js';
import { type Key, makeKey, nowSeconds, signEvent } from '../../helpers/events.js';
import { createKeyEventPolicy } from '../../../relay/policies/identity.js';
import { RawClient } from '../../helpers/raw-client.js';
import type { TestRelay } from '../../helpers/relay.js';
import { testBackends } from '../../helpers/backends.js';

let relay: TestRelay;
let c: RawClient;

let t = nowSeconds() - 1000;
const parsed = (ev: NostrEvent) => getKeyEvent(ev) as KeyEvent;

async function put(client: RawClient, key: Key, tpl: Parameters<typeof signEvent>[1]) {
  const ev = signEvent(key, tpl);
  const [, , ok, reason] = (await client.publish(ev)) as [string, string, boolean, string];
  return { ev, ok, reason };
}

/** An agent with its inception stored on the relay. */
async function incept() {
  const keys = Array.from({ length: 5 }, () => makeKey());
  const inc = await put(c, keys[0]!, makeInception({ nextKey: keys[1]!.pk }, ++t));
  expect(inc).toMatchObject({ ok: true, reason: '' });
  return { keys, inception: inc.ev, aid: inc.ev.id };
}

// The same rules on every store: SQLite decides on the caller's turn, the others over replayed reads.
describe.each(testBackends())('key event logs ($name)', (backend) => {
  beforeAll(async () => {
    relay = await backend.start();
    c = await RawClient.connect(relay.url);
  }, 30_000);
  afterAll(async () => {
    c.close();
    await relay.close();
  });

  describe('key event policy', () => {
    it('stores an honest log and serves it for clients to verify', async () => {
      const { keys, inception, aid } = await incept();
      const rot = await put(
        c,
        keys[1]!,
        makeRotation({ head: parsed(inception), currentSecretKey: keys[0]!.sk, newKey: keys[1]!.pk, nextKey: keys[2]!.pk }, ++t),
      );
      expect(rot).toMatchObject({ ok: true, reason: '' });
      const rev = await put(c, keys[2]!, makeRevocation({ head: parsed(rot.ev), nextKey: keys[3]!.pk }, ++t));
      expect(rev).toMatchObject({ ok: true, reason: '' });
      const again = await RawClient.connect(relay.url);
      expect(await again.publish(rev.ev)).toEqual(['OK', rev.ev.id, true, 'duplicate: already have this event']);
      again.close();

      const got = await c.req('kel', { ids: [aid] }, { kinds: [IdentityKind.Rotation, IdentityKind.Revocation], '#e': [aid] });
      const log = verifyKeyLog(aid, got as unknown as NostrEvent[]);
      expect(log).toMatchObject({ status: 'active', current: keys[2]!.pk, ignored: [] });
      const [revealing] = await c.req('by-key', { kinds: [IdentityKind.Inception, IdentityKind.Rotation, IdentityKind.Revocation], authors: [keys[1]!.pk] });
      expect(revealing?.id).toBe(rot.ev.id);
    });

    it('refuses a thief holding only the current key, and a next key without the current key co-signing', async () => {
      const { keys, inception, aid } = await incept();
      const thief = makeKey();
      const head = parsed(inception);
      const stolenCurrent = await put(c, thief, makeRotation({ head, currentSecretKey: keys[0]!.sk, newKey: thief.pk, nextKey: thief.pk }, ++t));
      expect(stolenCurrent).toMatchObject({ ok: false, reason: `invalid: key ${thief.pk} is not the next key committed to by ${aid}` });
      const asCurrent = await put(c, keys[0]!, makeRevocation({ head, nextKey: thief.pk }, ++t));
      expect(asCurrent).toMatchObject({ ok: false, reason: expect.stringMatching(/^invalid: key .* was already revealed by key event/) });
      const noCosign = await put(c, keys[1]!, makeRotation({ head, currentSecretKey: thief.sk, newKey: keys[1]!.pk, nextKey: keys[2]!.pk }, ++t));
      expect(noCosign).toMatchObject({ ok: false, reason: `invalid: prior-sig is not a signature by the current key ${keys[0]!.pk}` });
    });

    it('refuses a fork, an unknown previous event, a wrong seq, key reuse and malformed events', async () => {
      const { keys, inception, aid } = await incept();
      const head = parsed(inception);
      const rot = await put(c, keys[1]!, makeRotation({ head, currentSecretKey: keys[0]!.sk, newKey: keys[1]!.pk, nextKey: keys[2]!.pk }, ++t));
      expect(rot.ok).toBe(true);
      // the same committed key, now signing a competing revocation from the same state
      const competing = signEvent(keys[1]!, makeRevocation({ head, nextKey: keys[3]!.pk }, ++t));
      const [, , ok, reason] = (await c.publish(competing)) as [string, string, boolean, string];
      expect([ok, reason]).toEqual([false, expect.stringMatching(/^invalid: key .* was already revealed by key event/)]);

      const ghost = { ...head, id: 'f'.repeat(64), seq: 0 };
      const unknownPrev = await put(c, keys[2]!, makeRevocation({ head: ghost, nextKey: keys[3]!.pk }, ++t));
      expect(unknownPrev).toMatchObject({ ok: false, reason: `invalid: key event ${'f'.repeat(64)} is not on this relay` });
      const wrongSeq = await put(c, keys[2]!, makeRevocation({ head: { ...parsed(rot.ev), seq: 5 }, nextKey: keys[3]!.pk }, ++t));
      expect(wrongSeq).toMatchObject({ ok: false, reason: 'invalid: key event seq must be 2' });
      const reuse = await put(c, keys[1]!, makeInception({ nextKey: keys[4]!.pk }, ++t));
      expect(reuse).toMatchObject({ ok: false, reason: `invalid: key ${keys[1]!.pk} was already revealed by key event ${rot.ev.id}` });
      const malformed = await put(c, makeKey(), { kind: IdentityKind.Rotation, tags: [['e', aid, '', 'root']], content: '' });
      expect(malformed).toMatchObject({ ok: false, reason: 'invalid: malformed key event (kind 4347)' });
    });

    it('two competing successors of one state: the second is refused as a fork, even when they race', async () => {
      // Sequential: the log's next key signs a rotation, then (stolen) a revocation from the same state.
      const a = await incept();
      const thiefNext = makeKey();
      const first = await put(
        c,
        a.keys[1]!,
        makeRotation({ head: parsed(a.inception), currentSecretKey: a.keys[0]!.sk, newKey: a.keys[1]!.pk, nextKey: a.keys[2]!.pk }, ++t),
      );
      expect(first.ok).toBe(true);
      // a different event from the same prev by a key that is the committed next key of nothing: fork is found first
      const second = await put(c, thiefNext, makeRevocation({ head: parsed(a.inception), nextKey: thiefNext.pk }, ++t));
      expect(second).toMatchObject({ ok: false, reason: `invalid: key event ${a.aid} already has a successor (${first.ev.id})` });

      // Racing over two connections: both pass the store lookups before either is committed; one wins.
      const b = await incept();
      const d = await RawClient.connect(relay.url);
      try {
        const rotB = signEvent(
          b.keys[1]!,
          makeRotation({ head: parsed(b.inception), currentSecretKey: b.keys[0]!.sk, newKey: b.keys[1]!.pk, nextKey: b.keys[2]!.pk }, ++t),
        );
        const rotB2 = signEvent(
          b.keys[1]!,
          makeRotation({ head: parsed(b.inception), currentSecretKey: b.keys[0]!.sk, newKey: b.keys[1]!.pk, nextKey: b.keys[3]!.pk }, ++t),
        );
        const answers = (await Promise.all([c.publish(rotB), d.publish(rotB2)])) as Array<[string, string, boolean, string]>;
        expect(answers.map((x) => x[2]).sort()).toEqual([false, true]);
        const loser = answers.find((x) => !x[2]) as [string, string, boolean, string];
        expect(loser[3]).toMatch(/^invalid: (key .* was already revealed|key event .* already has a successor)/);
        const stored = await c.req('race', { kinds: [IdentityKind.Rotation], '#e': [b.aid] });
        expect(stored).toHaveLength(1);
      } finally {
        d.close();
      }
    });
  });

  describe('key event policy, long logs', () => {
    it('still refuses a fork from the inception after more rotations than one query page (50)', async () => {
      const keys = Array.from({ length: 56 }, () => makeKey());
      const inception = parsed((await put(c, keys[0]!, makeInception({ nextKey: keys[1]!.pk }, ++t))).ev);
      const aid = inception.id;
      let head = inception;
      for (let i = 1; i <= 53; i++) {
        const r = await put(c, keys[i]!, makeRotation({ head, currentSecretKey: keys[i - 1]!.sk, newKey: keys[i]!.pk, nextKey: keys[i + 1]!.pk }, ++t));
        expect(r.ok).toBe(true);
        head = parsed(r.ev);
      }
      // a fresh key cannot be the committed one, so only the fork test can refuse it before the chain rules
      const late = await put(c, makeKey(), makeRevocation({ head: inception, nextKey: keys[55]!.pk }, ++t));
      expect(late).toMatchObject({ ok: false, reason: expect.stringMatching(new RegExp(`^invalid: key event ${aid} already has a successor`)) });
    });
  });
});

describe('key event policy claims (pure, in-memory lookup)', () => {
  // The store lookup sees nothing yet: both events are "in flight" between the policy and the commit.
  const empty = { get: (id: string) => stored.get(id), successors: () => [], revealedBy: () => [], isStored: () => false };
  const stored = new Map<string, NostrEvent>();

  it('the first passing event holds its key and prev until it is released or 60 s pass', () => {
    const keys = Array.from({ length: 4 }, () => makeKey());
    const inception = signEvent(keys[0]!, makeInception({ nextKey: keys[1]!.pk }, 1000));
    stored.set(inception.id, inception);
    const { reject, release } = createKeyEventPolicy(empty);
    const head = parsed(inception);
    const a = signEvent(keys[1]!, makeRotation({ head, currentSecretKey: keys[0]!.sk, newKey: keys[1]!.pk, nextKey: keys[2]!.pk }, 1001));
    const b = signEvent(keys[1]!, makeRevocation({ head, nextKey: keys[3]!.pk }, 1002));
    const ctx = (now: number) => ({ authed: new Set<string>(), ip: '127.0.0.1', now });
    expect(reject(a, ctx(2000))).toBeUndefined();
    expect(reject(a, ctx(2000))).toBeUndefined(); // the same event again (a re-send) keeps its claim
    expect(reject(b, ctx(2001))).toMatch(/^invalid: key .* was already revealed by key event/);
    release(a); // refused later or stored: the claim goes
    expect(reject(b, ctx(2002))).toBeUndefined();
    expect(reject(a, ctx(2003))).toMatch(/^invalid: /);
    expect(reject(a, ctx(2002 + 61))).toBeUndefined(); // a claim left by a failed write expires
  });
});
