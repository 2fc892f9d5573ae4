import { createHash } from 'node:crypto';
import * as secp from 'tiny-secp256k1';
import type { NostrEvent, VerifiedEvent } from '../shared/event.js';
import { serializeEvent } from '../shared/event.js';
import { makeReason } from '../shared/reason.js';

/** Outcome of verifying one event. */
export type VerifyResult = { ok: true; event: VerifiedEvent } | { ok: false; reason: string };

/** Checks an event's id and BIP-340 signature; the only maker of VerifiedEvent. */
export interface Verifier {
  verify(event: NostrEvent): Promise<VerifyResult>;
  readonly backend: string;
  close(): Promise<void>;
}

/** Single-threaded verifier over tiny-secp256k1 (wasm) and node:crypto sha256. */
export function createWasmVerifier(): Verifier {
  return {
    backend: 'wasm',
    async verify(event) {
      return verifyEventSync(event);
    },
    async close() {},
  };
}

/** Synchronous id + signature check used by the wasm backend and by AUTH. */
export function verifyEventSync(event: NostrEvent): VerifyResult {
  const hash = createHash('sha256').update(serializeEvent(event)).digest();
  if (hash.toString('hex') !== event.id) return { ok: false, reason: makeReason('invalid', 'event id does not match its content') };
  let good = false;
  try {
    good = secp.verifySchnorr(hash, Buffer.from(event.pubkey, 'hex'), Buffer.from(event.sig, 'hex'));
  } catch {
    good = false;
  }
  if (!good) return { ok: false, reason: makeReason('invalid', 'bad signature') };
  return { ok: true, event: event as VerifiedEvent };
}
