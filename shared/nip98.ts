import { eventSchema } from './messages/schema.js';
import type { EventTemplate, NostrEvent } from './event.js';
import { getTagValue } from './event.js';

/** NIP-98 HTTP Auth event kind. */
export const HTTP_AUTH_KIND = 27235;

/** How far a NIP-98 event's created_at may be from now, in seconds (the NIP suggests 60). */
export const HTTP_AUTH_WINDOW_SECONDS = 60;

/** A NIP-98 template for one request; `payload` is the body's sha256 in hex. */
export function makeHttpAuthTemplate(t: { url: string; method: string; payload?: string; created_at: number }): EventTemplate {
  const tags = [
    ['u', t.url],
    ['method', t.method.toUpperCase()],
  ];
  if (t.payload !== undefined) tags.push(['payload', t.payload]);
  return { kind: HTTP_AUTH_KIND, tags, content: '', created_at: t.created_at };
}

/** The `Authorization` header value for a signed NIP-98 event. */
export function makeAuthorizationHeader(event: NostrEvent): string {
  const bytes = new TextEncoder().encode(JSON.stringify(event));
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Nostr ${btoa(bin)}`;
}

/** Decodes `Authorization: Nostr <base64 event>`; undefined when absent or malformed. */
export function getAuthorizationEvent(header: string | undefined): NostrEvent | undefined {
  const m = /^Nostr\s+([A-Za-z0-9+/=_-]+)\s*$/.exec(header ?? '');
  if (!m) return undefined;
  try {
    const bin = atob(m[1]!.replace(/-/g, '+').replace(/_/g, '/'));
    const text = new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    const parsed = eventSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** What a server expects of a NIP-98 event. */
export interface HttpAuthExpectation {
  method: string;
  /** True when the event's `u` tag names this request (servers compare as they see fit). */
  matchUrl: (u: string) => boolean;
  /** Required body hash (hex), when the server checks `payload`. */
  payload?: string;
  /** Now, in seconds. */
  now: number;
}

/** Checks kind, time, URL, method and payload of a NIP-98 event (not its signature); returns why it fails, or undefined. */
export function checkHttpAuthEvent(ev: NostrEvent, want: HttpAuthExpectation): string | undefined {
  if (ev.kind !== HTTP_AUTH_KIND) return `authorization event must be kind ${HTTP_AUTH_KIND}`;
  if (Math.abs(ev.created_at - want.now) > HTTP_AUTH_WINDOW_SECONDS) return 'authorization event is too old or too far in the future';
  const u = getTagValue(ev, 'u');
  if (u === undefined || !want.matchUrl(u)) return 'authorization u tag does not name this URL';
  if ((getTagValue(ev, 'method') ?? '').toUpperCase() !== want.method.toUpperCase()) return 'authorization method tag does not match';
  if (want.payload !== undefined && getTagValue(ev, 'payload') !== want.payload) return 'authorization payload tag does not match the body';
  return undefined;
}
