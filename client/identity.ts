import { bytesToHex, hexToBytes } from 'nostr-tools/utils';
import * as nip19 from 'nostr-tools/nip19';
import { generateSecretKey } from 'nostr-tools/pure';
import type { EventTemplate, NostrEvent } from '../shared/event.js';
import { getDefaultCrypto, type NostrCrypto } from './crypto.js';
import { ClientError } from './errors.js';

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * An agent's keypair. The secret key stays in a private field: it is never printed, serialised
 * or logged (`toJSON` and `inspect` show the public key only); `exportSecretKey` is the one way out.
 */
export class Identity {
  /** The secp256k1 backend this identity signs and derives keys with. */
  readonly crypto: NostrCrypto;
  #secretKey: Uint8Array;
  #pubkey: string;

  private constructor(secretKey: Uint8Array, crypto: NostrCrypto) {
    this.#secretKey = secretKey;
    this.crypto = crypto;
    this.#pubkey = crypto.getPublicKey(secretKey);
  }

  /** The x-only public key, 64 lowercase hex characters. */
  get pubkey(): string {
    return this.#pubkey;
  }

  /**
   * Takes the keypair of `successor`: a key rotated in place (`agent.rotate()`, docs/identity.md). Every part
   * of an agent holding this identity (relay links, publisher, messenger) signs and decrypts with the new key
   * from then on; keep a separate Identity of the old key to read what was sent to it.
   */
  adopt(successor: Identity): void {
    this.#secretKey = successor.exportSecretKey();
    this.#pubkey = successor.pubkey;
  }

  /** A fresh random keypair. */
  static generate(crypto: NostrCrypto = getDefaultCrypto()): Identity {
    return new Identity(generateSecretKey(), crypto);
  }

  /** The identity of a secret key given as 64 hex characters, an `nsec1…` string or 32 bytes. */
  static fromSecretKey(key: string | Uint8Array, crypto: NostrCrypto = getDefaultCrypto()): Identity {
    return new Identity(parseSecretKey(key, crypto), crypto);
  }

  /** The public key as NIP-19 `npub1…`. */
  get npub(): string {
    return nip19.npubEncode(this.pubkey);
  }

  /** The secret key as NIP-19 `nsec1…` (for backups; handle with care). */
  exportNsec(): string {
    return nip19.nsecEncode(this.#secretKey);
  }

  /** A copy of the 32 secret-key bytes (for NIP-44 and NIP-59). */
  exportSecretKey(): Uint8Array {
    return this.#secretKey.slice();
  }

  /** The secret key as 64 hex characters (the key-file format). */
  exportSecretKeyHex(): string {
    return bytesToHex(this.#secretKey);
  }

  /** Signs a template as this identity (NIP-01 id and Schnorr signature). */
  sign(template: EventTemplate): NostrEvent {
    return this.crypto.finalize({ ...template, tags: template.tags.map((t) => [...t]) }, this.#secretKey);
  }

  /** The NIP-44 v2 conversation key shared with `pubkey` (the secret key never leaves). */
  conversationKey(pubkey: string): Uint8Array {
    return this.crypto.conversationKey(this.#secretKey, pubkey);
  }

  /** Only the public half is ever serialised. */
  toJSON(): { pubkey: string; npub: string } {
    return { pubkey: this.pubkey, npub: this.npub };
  }

  /** Node's console shows the public half only. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Identity(${this.npub})`;
  }
}

/** 32 secret-key bytes from hex, `nsec1…` or bytes; throws ROOST_ERR_BAD_KEY. */
export function parseSecretKey(key: string | Uint8Array, crypto: NostrCrypto = getDefaultCrypto()): Uint8Array {
  let bytes: Uint8Array | undefined;
  if (key instanceof Uint8Array) bytes = key.length === 32 ? key.slice() : undefined;
  else {
    const k = key.trim();
    if (HEX64.test(k.toLowerCase())) bytes = hexToBytes(k.toLowerCase());
    else if (k.startsWith('nsec1')) {
      try {
        const d = nip19.decode(k);
        if (d.type === 'nsec') bytes = d.data;
      } catch {
        bytes = undefined;
      }
    }
  }
  if (!bytes) throw new ClientError('ROOST_ERR_BAD_KEY', 'a secret key must be 64 hex characters or nsec1…');
  try {
    crypto.getPublicKey(bytes);
  } catch (err) {
    throw new ClientError('ROOST_ERR_BAD_KEY', 'not a valid secp256k1 secret key', {}, { cause: err });
  }
  return bytes;
}

/** A public key from 64 hex characters or `npub1…` (also `nprofile1…`); throws ROOST_ERR_BAD_KEY. */
export function parsePubkey(key: string): string {
  // NIP-21 URIs (`nostr:npub1…`) are what other clients copy to the clipboard
  const k = key.trim().replace(/^nostr:/i, '');
  if (HEX64.test(k.toLowerCase())) return k.toLowerCase();
  try {
    const d = nip19.decode(k);
    if (d.type === 'npub') return d.data;
    if (d.type === 'nprofile') return d.data.pubkey;
  } catch {
    // fall through to the coded error
  }
  throw new ClientError('ROOST_ERR_BAD_KEY', 'a public key must be 64 hex characters or npub1…');
}

/** `npub1…` of a hex public key. */
export function getNpub(pubkey: string): string {
  return nip19.npubEncode(pubkey);
}

/** Checks an event's id and Schnorr signature afresh, with the default backend. */
export function verifyEvent(event: NostrEvent): boolean {
  return getDefaultCrypto().verify(event);
}

/** A small key-value storage: `localStorage` fits, and so does any async wrapper (IndexedDB, files). */
export interface KeyValueStorage {
  getItem(key: string): string | null | undefined | Promise<string | null | undefined>;
  setItem(key: string, value: string): void | Promise<void>;
  removeItem(key: string): void | Promise<void>;
}

/** Loads the identity kept under `key` in the given storage, creating and saving one if absent (browsers). */
export async function loadOrCreateIdentity(storage: KeyValueStorage, key = 'roost:identity'): Promise<Identity> {
  const saved = await storage.getItem(key);
  if (saved) return Identity.fromSecretKey(saved);
  const id = Identity.generate();
  await storage.setItem(key, id.exportSecretKeyHex());
  return id;
}
