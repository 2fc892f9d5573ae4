import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import type { EventTemplate, NostrEvent } from '../../../shared/event.js';
import { checkProof, makeProof, type ProofContext } from '../../../client/transport/proof.js';
import type { DirectIdentity } from '../../../client/transport/signal.js';

function identity(): DirectIdentity {
  const sk = generateSecretKey();
  return { pubkey: getPublicKey(sk), sign: (t: EventTemplate) => finalizeEvent(t, sk) as NostrEvent, exportSecretKey: () => sk.slice() };
}
const NOW = 1_750_000_000;
const FA = 'sha-256 ' + Array(32).fill('AA').join(':');
const FB = 'sha-256 ' + Array(32).fill('BB').join(':');

describe('challenge–response proof', () => {
  const alice = identity();
  const bob = identity();
  const challenge = 'c'.repeat(64);
  // Alice proves herself to Bob: her context names her own fingerprint as local.
  const aliceCtx: ProofContext = { session: 's'.repeat(32), localFingerprint: FA, remoteFingerprint: FB };
  const bobCtx: ProofContext = { session: 's'.repeat(32), localFingerprint: FB, remoteFingerprint: FA };
  const expected = { me: bob.pubkey, peer: alice.pubkey, challenge, ctx: bobCtx, nowSeconds: NOW };
  const good = makeProof(alice, bob.pubkey, challenge, aliceCtx, NOW);

  it('accepts the peer’s answer to our challenge', () => {
    expect(checkProof(good, expected)).toBeUndefined();
  });

  const resign = (change: (t: EventTemplate) => EventTemplate, who = alice) =>
    who.sign(change({ kind: good.kind, created_at: good.created_at, tags: good.tags, content: good.content }));
  const tagged = (name: string, value: string) => (t: EventTemplate) => ({ ...t, tags: t.tags.map((x) => (x[0] === name ? [name, value] : x)) });
  it.each<[string, unknown, string]>([
    ['not an event', 'proof', 'malformed proof'],
    ['another kind', resign((t) => ({ ...t, kind: 1 })), 'wrong kind'],
    ['signed by a stranger', resign((t) => t, identity()), 'signed by someone else'],
    ['made for someone else', resign(tagged('p', alice.pubkey)), 'made for someone else'],
    ['an old challenge', resign(tagged('challenge', 'd'.repeat(64))), 'wrong challenge'],
    ['another session', resign(tagged('session', 't'.repeat(32))), 'wrong session'],
    ['a certificate other than the signalled one', resign(tagged('fingerprint', FB)), 'fingerprint does not match the signalled one'],
    ['a different view of our certificate (a relaying middleman)', resign(tagged('peer-fingerprint', FA)), 'peer saw another certificate of ours'],
    ['a timestamp far off', resign((t) => ({ ...t, created_at: NOW - 3600 })), 'clock skew'],
    ['a broken signature', { ...good, sig: good.sig.replace(/^./, (c) => (c === '0' ? '1' : '0')) }, 'bad signature'],
  ])('refuses %s', (_name, proof, why) => {
    expect(checkProof(proof, expected)).toBe(why);
  });
});
