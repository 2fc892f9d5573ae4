import * as nip44 from 'nostr-tools/nip44';
import type { NostrEvent } from '../shared/event.js';
import { ClientError } from './errors.js';
import type { Identity } from './identity.js';

/**
 * Push wake registration (client side). The relay side is relay/push/registration.ts (issue 10);
 * this matches its zod schema exactly: the decrypted content is `{"channels": [...]}`, the complete
 * set of devices that wake this agent (at most 10; `[]` removes them all).
 */

/** Kind of a wake registration: ephemeral, intercepted by the relay, never stored or served. */
export const WAKE_REGISTRATION_KIND = 29059;

/** Most channels one registration may carry. */
export const MAX_WAKE_CHANNELS = 10;

/** How a device is woken: silently, or with a generic visible notification. */
export type WakeMode = 'background' | 'alert';

/** One device: APNs (hex token, bundle id topic, environment) or FCM (registration token). */
export type WakeChannel =
  | { platform: 'apns'; token: string; topic: string; environment: 'sandbox' | 'production'; mode: WakeMode }
  | { platform: 'fcm'; token: string; mode: WakeMode };

const APNS_TOKEN = /^(?:[0-9a-fA-F]{2}){8,256}$/;
const APNS_TOPIC = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;
const FCM_TOKEN = /^[A-Za-z0-9_:.-]{8,1024}$/;

/** Checks channels as the relay will, so a typo fails here (ROOST_ERR_BAD_INPUT) and not at the relay. Never echoes tokens. */
export function checkWakeChannels(channels: readonly WakeChannel[]): WakeChannel[] {
  if (channels.length > MAX_WAKE_CHANNELS) throw new ClientError('ROOST_ERR_BAD_INPUT', `at most ${MAX_WAKE_CHANNELS} wake channels`);
  return channels.map((c, i) => {
    const bad = (what: string) => new ClientError('ROOST_ERR_BAD_INPUT', `wake channel ${i}: ${what}`);
    if (c.mode !== 'background' && c.mode !== 'alert') throw bad('mode must be background or alert');
    if (c.platform === 'apns') {
      if (!APNS_TOKEN.test(c.token)) throw bad('APNs token must be the hex device token');
      if (!APNS_TOPIC.test(c.topic)) throw bad('APNs topic must be the app bundle id');
      if (c.environment !== 'sandbox' && c.environment !== 'production') throw bad('APNs environment must be sandbox or production');
      return { platform: 'apns', token: c.token.toLowerCase(), topic: c.topic, environment: c.environment, mode: c.mode };
    }
    if (c.platform === 'fcm') {
      if (!FCM_TOKEN.test(c.token)) throw bad('FCM token is malformed');
      return { platform: 'fcm', token: c.token, mode: c.mode };
    }
    throw bad('platform must be apns or fcm');
  });
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
