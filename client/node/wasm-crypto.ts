import { createHash, createHmac, randomBytes } from 'node:crypto';
import * as ecc from 'tiny-secp256k1';
import { serializeEvent, type NostrEvent } from '../../shared/event.js';
import type { NostrCrypto } from '../crypto.js';

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/**
 * Node backend over tiny-secp256k1 (WebAssembly) and node:crypto: Schnorr sign and verify, and the
 * NIP-44 v2 conversation key (HKDF-extract, i.e. HMAC-SHA256 keyed "nip44-v2", of the ECDH x coordinate).
 */
export const wasmCrypto: NostrCrypto = {
  name: 'tiny-secp256k1',
  getPublicKey: (sk) => Buffer.from(ecc.xOnlyPointFromScalar(sk)).toString('hex'),
  finalize(template, sk) {
    const pubkey = Buffer.from(ecc.xOnlyPointFromScalar(sk)).toString('hex');
    const ev = { pubkey, created_at: template.created_at, kind: template.kind, tags: template.tags, content: template.content };
    const hash = sha256(serializeEvent(ev));
    const sig = Buffer.from(ecc.signSchnorr(hash, sk, randomBytes(32))).toString('hex');
    return { id: hash.toString('hex'), ...ev, sig };
  },
  verify(event: NostrEvent) {
    if (!HEX64.test(event.id) || !HEX64.test(event.pubkey) || !HEX128.test(event.sig)) return false;
    try {
      const hash = sha256(serializeEvent(event));
      if (hash.toString('hex') !== event.id) return false;
      return ecc.verifySchnorr(hash, Buffer.from(event.pubkey, 'hex'), Buffer.from(event.sig, 'hex'));
    } catch {
      return false;
    }
  },
  conversationKey(sk, pubkey) {
    if (!HEX64.test(pubkey)) throw new Error('invalid public key');
    const shared = ecc.pointMultiply(Buffer.from('02' + pubkey, 'hex'), sk, true);
    if (!shared) throw new Error('invalid public key');
    return new Uint8Array(createHmac('sha256', 'nip44-v2').update(shared.subarray(1, 33)).digest());
  },
};
