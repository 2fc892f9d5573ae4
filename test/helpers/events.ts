import { createHash, randomBytes } from 'node:crypto';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import * as secp from 'tiny-secp256k1';
import { serializeEvent, type NostrEvent } from '../../shared/event.js';

/** A test identity. */
export interface Key {
  sk: Uint8Array;
  pk: string;
}

/** A fresh keypair. */
export function makeKey(): Key {
  const sk = generateSecretKey();
  return { sk, pk: getPublicKey(sk) };
}

/** Signs an event with sensible defaults (kind 1, now, no tags). */
export function signEvent(key: Key, t: Partial<Pick<NostrEvent, 'kind' | 'tags' | 'content' | 'created_at'>> = {}): NostrEvent {
  // BIP-340 signing with tiny-secp256k1 (about ten times faster than pure JS, so load tests are
  // not bound by their own signing); the relay's tests also run events signed by nostr-tools and NDK.
  const unsigned = {
    pubkey: key.pk,
    kind: t.kind ?? 1,
    tags: t.tags ?? [],
    content: t.content ?? '',
    created_at: t.created_at ?? Math.floor(Date.now() / 1000),
  };
  const hash = createHash('sha256').update(serializeEvent(unsigned)).digest();
  const sig = Buffer.from(secp.signSchnorr(hash, key.sk, randomBytes(32))).toString('hex');
  return { id: hash.toString('hex'), ...unsigned, sig };
}

/** Seconds since the epoch. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
