import { verifyEvent } from 'nostr-tools/pure';
import type { NostrEvent } from '../../shared/event.js';
import { getTagValue } from '../../shared/event.js';
import { getBareEvent } from '../../shared/event-shape.js';
import type { DirectIdentity } from './signal.js';

/**
 * The challenge–response run over a fresh data channel before any application data: each side
 * sends a random challenge, and answers the other's with a Nostr event signed by its agent key
 * that names the challenge, the session, both DTLS fingerprints and the peer. The event is never
 * published; its kind is in the ephemeral range so a relay would not store it either.
 */

/** Kind of the proof event exchanged over the data channel. */
export const DIRECT_PROOF_KIND = 25051;

/** How far a proof's created_at may be from our clock. */
export const DIRECT_PROOF_MAX_SKEW = 600;

/** What both sides of one link agree on before the proofs. */
export interface ProofContext {
  session: string;
  /** The fingerprint in our own SDP (normalised). */
  localFingerprint: string;
  /** The fingerprint in the peer's SDP, already matched against its signed signalling. */
  remoteFingerprint: string;
}

/** Our answer to the peer's challenge. */
export function makeProof(identity: DirectIdentity, peer: string, challenge: string, ctx: ProofContext, nowSeconds: number): NostrEvent {
  return identity.sign({
    kind: DIRECT_PROOF_KIND,
    created_at: nowSeconds,
    content: '',
    tags: [
      ['p', peer],
      ['challenge', challenge],
      ['session', ctx.session],
      ['fingerprint', ctx.localFingerprint],
      ['peer-fingerprint', ctx.remoteFingerprint],
    ],
  });
}

/**
 * Checks the peer's answer to our challenge; returns why it fails, or undefined when it proves
 * that the holder of `peer`'s key sits behind the DTLS certificate we are connected to.
 */
export function checkProof(
  proof: unknown,
  expected: { me: string; peer: string; challenge: string; ctx: ProofContext; nowSeconds: number },
): string | undefined {
  const ev = proof as NostrEvent;
  if (!ev || typeof ev !== 'object' || typeof ev.id !== 'string' || !Array.isArray(ev.tags)) return 'malformed proof';
  if (ev.kind !== DIRECT_PROOF_KIND) return 'wrong kind';
  if (ev.pubkey !== expected.peer) return 'signed by someone else';
  if (getTagValue(ev, 'p') !== expected.me) return 'made for someone else';
  if (getTagValue(ev, 'challenge') !== expected.challenge) return 'wrong challenge';
  if (getTagValue(ev, 'session') !== expected.ctx.session) return 'wrong session';
  if (getTagValue(ev, 'fingerprint') !== expected.ctx.remoteFingerprint) return 'fingerprint does not match the signalled one';
  if (getTagValue(ev, 'peer-fingerprint') !== expected.ctx.localFingerprint) return 'peer saw another certificate of ours';
  if (typeof ev.created_at !== 'number' || Math.abs(expected.nowSeconds - ev.created_at) > DIRECT_PROOF_MAX_SKEW) return 'clock skew';
  if (!verifyEvent(getBareEvent(ev))) return 'bad signature';
  return undefined;
}
