import * as nip44 from 'nostr-tools/nip44';
import type { NostrEvent } from '../shared/event.js';
import { ClientError } from './errors.js';
import type { Identity } from './identity.js';
import { WAKE_REGISTRATION_KIND, parseWakeRegistrationPayload, type WakeChannel } from '../shared/wake-registration.js';

/**
 * Push wake registration (client side). The payload's rules are shared/wake-registration.ts, the
 * module the relay parses it with (relay/push/registration.ts), so a channel the client accepts is
 * one the relay accepts.
 */

export { MAX_WAKE_CHANNELS, WAKE_REGISTRATION_KIND, type WakeChannel, type WakeMode } from '../shared/wake-registration.js';

/** Checks channels as the relay will, so a typo fails here (ROOST_ERR_BAD_INPUT) and not at the relay. Never echoes tokens. */
export function checkWakeChannels(channels: readonly WakeChannel[]): WakeChannel[] {
  const r = parseWakeRegistrationPayload({ channels });
  if (r.ok) return r.registration.channels;
  throw new ClientError('ROOST_ERR_BAD_INPUT', `wake registration ${r.issue.path || 'payload'}: ${r.issue.message}`);
}

/** The signed kind-29059 event registering `channels`, NIP-44 v2 encrypted to the relay's pubkey. */
export function makeWakeRegistration(identity: Identity, relayPubkey: string, channels: readonly WakeChannel[], createdAt: number): NostrEvent {
  return identity.sign({
    kind: WAKE_REGISTRATION_KIND,
    created_at: createdAt,
    tags: [],
    content: nip44.v2.encrypt(JSON.stringify({ channels: checkWakeChannels(channels) }), identity.conversationKey(relayPubkey)),
  });
}
