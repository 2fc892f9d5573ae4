/** A signed Nostr event as it travels on the wire (NIP-01). */
export interface NostrEvent {
  id: string;
  pubkey: string;
  created_at: number;
  kind: number;
  tags: string[][];
  content: string;
  sig: string;
}

declare const verifiedBrand: unique symbol;

/** An event whose id and signature have been checked; only a verifier makes one. */
export type VerifiedEvent = NostrEvent & { readonly [verifiedBrand]: true };

/** An event template before signing. */
export type EventTemplate = Pick<NostrEvent, 'kind' | 'tags' | 'content' | 'created_at'>;

/** The NIP-01 canonical serialisation whose sha256 is the event id. */
export function serializeEvent(ev: Omit<NostrEvent, 'id' | 'sig'>): string {
  return JSON.stringify([0, ev.pubkey, ev.created_at, ev.kind, ev.tags, ev.content]);
}

/** First value of the first tag named `name`, if any. */
export function getTagValue(ev: Pick<NostrEvent, 'tags'>, name: string): string | undefined {
  for (const t of ev.tags) if (t[0] === name && t.length > 1) return t[1];
  return undefined;
}

/** All values of tags named `name`. */
export function getTagValues(ev: Pick<NostrEvent, 'tags'>, name: string): string[] {
  const out: string[] = [];
  for (const t of ev.tags) if (t[0] === name && t[1] !== undefined) out.push(t[1]);
  return out;
}

/** The `d` tag of an addressable event ('' when absent, per NIP-01). */
export function getDTag(ev: Pick<NostrEvent, 'tags'>): string {
  return getTagValue(ev, 'd') ?? '';
}

/** NIP-40 expiration timestamp, or undefined when absent or malformed. */
export function getExpiration(ev: Pick<NostrEvent, 'tags'>): number | undefined {
  const v = getTagValue(ev, 'expiration');
  if (v === undefined || !/^\d{1,15}$/.test(v)) return undefined;
  return Number(v);
}

/** NIP-70: an event carrying the `["-"]` tag may only be published by its author. */
export function isProtectedEvent(ev: Pick<NostrEvent, 'tags'>): boolean {
  return ev.tags.some((t) => t.length === 1 && t[0] === '-');
}

/** Sort order for query results: newest first, then lowest id (NIP-01). */
export function compareEventsNewestFirst(a: Pick<NostrEvent, 'created_at' | 'id'>, b: Pick<NostrEvent, 'created_at' | 'id'>): number {
  if (a.created_at !== b.created_at) return b.created_at - a.created_at;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
