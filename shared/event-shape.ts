import type { NostrEvent } from './event.js';

/**
 * The shape of a NIP-01 event on the wire, before its id and signature are checked — one definition
 * for both sides: the relay's zod edge (shared/messages/schema.ts) is built from these patterns and
 * the hand-written edge for frames from relays (shared/messages/relay-parse.ts: the client's links and
 * the replicator; no zod in browser bundles) calls {@link isEventShape}; test/shared/event-shape.test.ts
 * holds the two to the same answers.
 */

/** An event id or public key: 64 lowercase hex characters. */
export const HEX64_PATTERN = /^[0-9a-f]{64}$/;

/** A Schnorr signature: 128 lowercase hex characters. */
export const HEX128_PATTERN = /^[0-9a-f]{128}$/;

/** The largest event kind (NIP-01: 0–65535). */
export const MAX_EVENT_KIND = 65535;

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** True when `v` has the shape of a NIP-01 event (extra fields are allowed and ignored). */
export function isEventShape(v: unknown): v is NostrEvent {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const e = v as Record<string, unknown>;
  return (
    typeof e.id === 'string' &&
    HEX64_PATTERN.test(e.id) &&
    typeof e.pubkey === 'string' &&
    HEX64_PATTERN.test(e.pubkey) &&
    typeof e.sig === 'string' &&
    HEX128_PATTERN.test(e.sig) &&
    isUint(e.created_at) &&
    isUint(e.kind) &&
    e.kind <= MAX_EVENT_KIND &&
    typeof e.content === 'string' &&
    Array.isArray(e.tags) &&
    e.tags.every((t) => Array.isArray(t) && t.every((x) => typeof x === 'string'))
  );
}

/**
 * The event's own fields only: nostr-tools caches a verification result on the object under a
 * symbol, which a spread copy would carry along; a fresh object is always checked.
 */
export function getBareEvent(ev: NostrEvent): NostrEvent {
  return { id: ev.id, pubkey: ev.pubkey, created_at: ev.created_at, kind: ev.kind, tags: ev.tags, content: ev.content, sig: ev.sig };
}
