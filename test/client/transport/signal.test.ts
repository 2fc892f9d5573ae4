import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import * as nip44 from 'nostr-tools/nip44';
import { describe, expect, it } from 'vitest';
import type { EventTemplate, NostrEvent } from '../../../shared/event.js';
import { DIRECT_SIGNAL_KIND, SignalCodec, type DirectIdentity, type SignalPayload } from '../../../client/transport/signal.js';

function identity(sk = generateSecretKey()): DirectIdentity & { sk: Uint8Array } {
  return { sk, pubkey: getPublicKey(sk), sign: (t: EventTemplate) => finalizeEvent(t, sk) as NostrEvent, exportSecretKey: () => sk.slice() };
}
const NOW = 1_750_000_000;
const offer: SignalPayload = { v: 1, type: 'offer', session: 'ab'.repeat(16), sdp: 'v=0\r\na=fingerprint:sha-256 AB:CD\r\n', fingerprint: 'sha-256 AB:CD' };

describe('signalling codec', () => {
  const alice = identity();
  const bob = identity();
  const a = new SignalCodec(alice);
  const b = new SignalCodec(bob);

  it('seals a signed, encrypted kind-25050 event only the recipient can open', () => {
    const ev = a.seal(bob.pubkey, offer, NOW);
    expect(ev.kind).toBe(DIRECT_SIGNAL_KIND);
    expect(ev.tags).toEqual([['p', bob.pubkey]]);
    expect(ev.content).not.toContain('fingerprint');
    expect(b.open(ev, NOW)).toEqual({ from: alice.pubkey, payload: offer, eventId: ev.id, createdAt: NOW });
    expect(() => new SignalCodec(identity()).open(ev, NOW)).toThrow(expect.objectContaining({ code: 'ROOST_ERR_DIRECT_SIGNAL' }));
  });

  const tamper: Array<[string, (ev: NostrEvent) => NostrEvent, number?]> = [
    ['a changed content', (ev) => ({ ...ev, content: ev.content.slice(0, -4) + 'AAAA' })],
    ['a changed recipient tag', (ev) => ({ ...ev, tags: [['p', alice.pubkey]] })],
    ['another kind', (ev) => ({ ...ev, kind: 25051 })],
    ['a forged sender', (ev) => ({ ...ev, pubkey: identity().pubkey })],
    ['a stale event (replay)', (ev) => ev, NOW + 121],
    ['an event from the future', (ev) => ev, NOW - 121],
  ];
  it.each(tamper)('refuses %s', (_name, change, at = NOW) => {
    expect(() => b.open(change(a.seal(bob.pubkey, offer, NOW)), at)).toThrow(expect.objectContaining({ code: 'ROOST_ERR_DIRECT_SIGNAL' }));
  });

  it.each([
    ['not JSON', 'hello'],
    ['an unknown type', JSON.stringify({ ...offer, type: 'renegotiate' })],
    ['a bad session', JSON.stringify({ ...offer, session: 'xyz' })],
    ['another version', JSON.stringify({ ...offer, v: 2 })],
    ['an oversized SDP', JSON.stringify({ ...offer, sdp: 'x'.repeat(40_000) })],
  ])('refuses a correctly signed event whose payload is %s', (_name, plaintext) => {
    const content = nip44.encrypt(plaintext, nip44.getConversationKey(alice.sk, bob.pubkey));
    const ev = finalizeEvent({ kind: DIRECT_SIGNAL_KIND, created_at: NOW, tags: [['p', bob.pubkey]], content }, alice.sk) as NostrEvent;
    expect(() => b.open(ev, NOW)).toThrow(expect.objectContaining({ code: 'ROOST_ERR_DIRECT_SIGNAL' }));
  });

  it('refuses signals from itself', () => {
    const self = new SignalCodec(alice);
    const ev = self.seal(alice.pubkey, offer, NOW);
    expect(() => self.open(ev, NOW)).toThrow(expect.objectContaining({ code: 'ROOST_ERR_DIRECT_SIGNAL' }));
  });
});
