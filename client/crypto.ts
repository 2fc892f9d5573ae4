import * as nip44 from 'nostr-tools/nip44';
import { finalizeEvent, getPublicKey, verifyEvent as nobleVerify } from 'nostr-tools/pure';
import type { EventTemplate, NostrEvent } from '../shared/event.js';

/**
 * The secp256k1 operations the client needs, behind one small interface so each platform can use
 * its fastest implementation: pure JavaScript (noble, via nostr-tools) in browsers, WebAssembly
 * (tiny-secp256k1) in Node, where it is 10 to 30 times faster (client/node/wasm-crypto.ts).
 */
export interface NostrCrypto {
  readonly name: string;
  /** x-only public key, hex. */
  getPublicKey(secretKey: Uint8Array): string;
  /** The NIP-01 id and Schnorr signature of `template` as `secretKey`. */
  finalize(template: EventTemplate, secretKey: Uint8Array): NostrEvent;
  /** Checks id and signature afresh (no cached verdicts). */
  verify(event: NostrEvent): boolean;
  /** NIP-44 v2 conversation key between a secret key and a public key. */
  conversationKey(secretKey: Uint8Array, pubkey: string): Uint8Array;
}

/** Pure-JavaScript backend (noble through nostr-tools): works everywhere. */
export const nobleCrypto: NostrCrypto = {
  name: 'noble',
  getPublicKey: (sk) => getPublicKey(sk),
  finalize(template, sk) {
    const { id, pubkey, created_at, kind, tags, content, sig } = finalizeEvent(template, sk);
    return { id, pubkey, created_at, kind, tags, content, sig };
  },
  verify(event) {
    // nostr-tools caches a verdict in a symbol property (which an object spread would copy):
    // pass a fresh object holding only the NIP-01 fields.
    const { id, pubkey, created_at, kind, tags, content, sig } = event;
    return nobleVerify({ id, pubkey, created_at, kind, tags, content, sig });
  },
  conversationKey: (sk, pubkey) => nip44.v2.utils.getConversationKey(sk, pubkey),
};

let defaultCrypto: NostrCrypto = nobleCrypto;

/** The backend new identities and the default verifier use. */
export function getDefaultCrypto(): NostrCrypto {
  return defaultCrypto;
}

/** Replaces the default backend (the Node entry installs the WebAssembly one). */
export function setDefaultCrypto(crypto: NostrCrypto): void {
  defaultCrypto = crypto;
}
