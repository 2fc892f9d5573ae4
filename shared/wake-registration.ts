import { Kind } from './kinds.js';

/**
 * The wake registration's payload (kind 29059, NIP-44 encrypted to the relay's key), read and written
 * by this one module: the relay (relay/push/registration.ts) parses it, the client
 * (client/wake.ts) checks what it is about to send with the same rules, so the two cannot drift.
 * The decrypted content is `{"channels": [...]}`: the complete set of devices that wake the author
 * (at most 10; `[]` removes them all); unknown fields are ignored. Messages never echo a token.
 */

/** Kind of a wake registration: ephemeral, intercepted by the relay, never stored or served. */
export const WAKE_REGISTRATION_KIND = Kind.WakeRegistration;

/** Most channels one registration may carry. */
export const MAX_WAKE_CHANNELS = 10;

/** How a device is woken: silently, or with a generic visible notification. */
export type WakeMode = 'background' | 'alert';

/** One device: APNs (hex token, bundle id topic, environment) or FCM (registration token). */
export type WakeChannel =
  | { platform: 'apns'; token: string; topic: string; environment: 'sandbox' | 'production'; mode: WakeMode }
  | { platform: 'fcm'; token: string; mode: WakeMode };

/** A registration's payload after checking. */
export interface WakeRegistration {
  channels: WakeChannel[];
}

/** APNs device token: hex, 8 to 256 bytes (stored lowercase). */
export const APNS_TOKEN_PATTERN = /^(?:[0-9a-fA-F]{2}){8,256}$/;
/** APNs topic: the app's bundle id, optionally with a push-type suffix. */
export const APNS_TOPIC_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;
/** FCM registration token. */
export const FCM_TOKEN_PATTERN = /^[A-Za-z0-9_:.-]{8,1024}$/;

/** Why a payload was refused: where (`channels.2.token`) and what, never the value. */
export interface WakeIssue {
  path: string;
  message: string;
}

/** Checks one channel; the normalised channel, or the issue (its path relative to the channel). */
export function parseWakeChannel(v: unknown): { ok: true; channel: WakeChannel } | { ok: false; issue: WakeIssue } {
  const fail = (path: string, message: string) => ({ ok: false as const, issue: { path, message } });
  if (!v || typeof v !== 'object' || Array.isArray(v)) return fail('', 'must be an object');
  const c = v as Record<string, unknown>;
  if (c.platform !== 'apns' && c.platform !== 'fcm') return fail('platform', 'must be apns or fcm');
  if (c.platform === 'apns') {
    if (typeof c.token !== 'string' || !APNS_TOKEN_PATTERN.test(c.token)) return fail('token', 'must be the hex device token');
    if (typeof c.topic !== 'string' || !APNS_TOPIC_PATTERN.test(c.topic))
      return fail('topic', 'must be the app bundle id (optionally with a push-type suffix)');
    if (c.environment !== 'sandbox' && c.environment !== 'production') return fail('environment', 'must be sandbox or production');
    if (c.mode !== 'background' && c.mode !== 'alert') return fail('mode', 'must be background or alert');
    return { ok: true, channel: { platform: 'apns', token: c.token.toLowerCase(), topic: c.topic, environment: c.environment, mode: c.mode } };
  }
  if (typeof c.token !== 'string' || !FCM_TOKEN_PATTERN.test(c.token)) return fail('token', 'must be the FCM registration token');
  if (c.mode !== 'background' && c.mode !== 'alert') return fail('mode', 'must be background or alert');
  return { ok: true, channel: { platform: 'fcm', token: c.token, mode: c.mode } };
}

/** Checks a decrypted registration payload; the normalised registration, or the first issue. */
export function parseWakeRegistrationPayload(v: unknown): { ok: true; registration: WakeRegistration } | { ok: false; issue: WakeIssue } {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return { ok: false, issue: { path: '', message: 'must be an object' } };
  const list = (v as { channels?: unknown }).channels;
  if (!Array.isArray(list)) return { ok: false, issue: { path: 'channels', message: 'must be an array' } };
  if (list.length > MAX_WAKE_CHANNELS) return { ok: false, issue: { path: 'channels', message: `at most ${MAX_WAKE_CHANNELS} channels` } };
  const channels: WakeChannel[] = [];
  for (let i = 0; i < list.length; i++) {
    const r = parseWakeChannel(list[i]);
    if (!r.ok) return { ok: false, issue: { path: ['channels', i, r.issue.path].filter((p) => p !== '').join('.'), message: r.issue.message } };
    channels.push(r.channel);
  }
  return { ok: true, registration: { channels } };
}
