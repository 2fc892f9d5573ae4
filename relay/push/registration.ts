import { createHmac } from 'node:crypto';
import * as nip44 from 'nostr-tools/nip44';
import * as ecc from 'tiny-secp256k1';
import type { Logger } from 'pino';
import type { NostrEvent } from '../../shared/event.js';
import { Kind } from '../../shared/kinds.js';
import { makeReason } from '../../shared/reason.js';
import { parseWakeRegistrationPayload, type WakeRegistration } from '../../shared/wake-registration.js';
import type { WakePlatform, WakeTarget } from './types.js';

export { MAX_WAKE_CHANNELS, parseWakeRegistrationPayload, type WakeChannel, type WakeRegistration } from '../../shared/wake-registration.js';

/** Longest accepted registration content (the NIP-44 payload, base64). */
export const MAX_WAKE_REGISTRATION_CONTENT = 32768;

/** The answer to a registration, for the relay's OK message. */
export type WakeRegistrationResult = { ok: true } | { ok: false; reason: string };

/** True for the event kind the relay intercepts as a wake registration. */
export function isWakeRegistration(event: Pick<NostrEvent, 'kind'>): boolean {
  return event.kind === Kind.WakeRegistration;
}

/**
 * The NIP-44 v2 conversation key, as nostr-tools' `getConversationKey` computes it (HKDF-extract of
 * the ECDH x coordinate, salt "nip44-v2"), with the point multiplication done by tiny-secp256k1's
 * WebAssembly: about 0.4 ms instead of 5 ms, and agents register on every connect.
 */
export function getConversationKey(secretKey: Uint8Array, pubkey: string): Uint8Array {
  const point = Buffer.from('02' + pubkey, 'hex');
  const shared = point.length === 33 && /^[0-9a-f]{64}$/.test(pubkey) ? ecc.pointMultiply(point, secretKey, true) : null;
  if (!shared) throw new Error('invalid public key');
  return new Uint8Array(createHmac('sha256', 'nip44-v2').update(shared.subarray(1, 33)).digest());
}

/** Conversation keys by agent pubkey, kept for agents that re-register; bounded, oldest dropped first. */
export class ConversationKeyCache {
  readonly #keys = new Map<string, Uint8Array>();
  constructor(
    readonly secretKey: Uint8Array,
    readonly capacity = 4096,
  ) {}

  /** The key shared with `pubkey`. */
  get(pubkey: string): Uint8Array {
    let key = this.#keys.get(pubkey);
    if (key) return key;
    key = getConversationKey(this.secretKey, pubkey);
    if (this.#keys.size >= this.capacity) this.#keys.delete(this.#keys.keys().next().value!);
    this.#keys.set(pubkey, key);
    return key;
  }
}

/**
 * Decrypts and validates a registration addressed to the relay whose secret key is given. Reasons
 * never echo the payload: it holds device tokens.
 */
export function parseWakeRegistration(
  event: Pick<NostrEvent, 'kind' | 'pubkey' | 'content'>,
  relayKey: Uint8Array | ConversationKeyCache,
): { ok: true; registration: WakeRegistration } | { ok: false; reason: string } {
  if (!isWakeRegistration(event)) return { ok: false, reason: makeReason('invalid', 'not a wake registration') };
  if (event.content.length > MAX_WAKE_REGISTRATION_CONTENT) {
    return { ok: false, reason: makeReason('invalid', 'wake registration too large') };
  }
  let plaintext: string;
  try {
    const key = relayKey instanceof ConversationKeyCache ? relayKey.get(event.pubkey) : getConversationKey(relayKey, event.pubkey);
    plaintext = nip44.v2.decrypt(event.content, key);
  } catch {
    return { ok: false, reason: makeReason('invalid', "wake registration must be NIP-44 encrypted to the relay's pubkey") };
  }
  let json: unknown;
  try {
    json = JSON.parse(plaintext);
  } catch {
    return { ok: false, reason: makeReason('invalid', 'wake registration is not JSON') };
  }
  // The same check the client runs before it sends (shared/wake-registration.ts).
  const r = parseWakeRegistrationPayload(json);
  if (!r.ok) return { ok: false, reason: makeReason('invalid', `wake registration ${r.issue.path || 'payload'}: ${r.issue.message}`) };
  return r;
}

/** The stored form of a channel; channels naming the same device twice collapse to the last one. */
export function getWakeTargets(registration: WakeRegistration): WakeTarget[] {
  const byKey = new Map<string, WakeTarget>();
  for (const c of registration.channels) {
    const target: WakeTarget =
      c.platform === 'apns'
        ? { platform: 'apns', token: c.token, topic: c.topic, environment: c.environment, mode: c.mode }
        : { platform: 'fcm', token: c.token, topic: '', environment: '', mode: c.mode };
    byKey.set(`${c.platform}\u0000${c.token}`, target);
  }
  return [...byKey.values()];
}

/** The first platform a registration uses that the relay has no sender for, if any. */
export function getUnconfiguredPlatform(targets: readonly WakeTarget[], configured: ReadonlySet<WakePlatform>): WakePlatform | undefined {
  return targets.find((t) => !configured.has(t.platform))?.platform;
}

/**
 * A registration's wake targets, or its refusal: the payload does not read, or it names a platform
 * this relay has no sender for. A refused payload is the client's mistake, logged at info.
 */
export function admitWakeRegistration(
  event: NostrEvent,
  keys: ConversationKeyCache,
  configured: ReadonlySet<WakePlatform>,
  log: Pick<Logger, 'info'>,
): { ok: true; targets: WakeTarget[] } | { ok: false; reason: string } {
  const parsed = parseWakeRegistration(event, keys);
  if (!parsed.ok) {
    log.info({ event: event.id, agent: event.pubkey, reason: parsed.reason }, 'wake registration refused');
    return parsed;
  }
  const targets = getWakeTargets(parsed.registration);
  const missing = getUnconfiguredPlatform(targets, configured);
  if (missing) return { ok: false, reason: makeReason('restricted', `${missing} wake is not configured on this relay`) };
  return { ok: true, targets };
}
