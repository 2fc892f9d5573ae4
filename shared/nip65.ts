import type { EventTemplate, NostrEvent } from './event.js';

/** NIP-65 relay list metadata (replaceable). */
export const RELAY_LIST_KIND = 10002;

/** A relay list naming relays this agent both reads and writes (`["r", url]` with no marker). */
export function makeRelayList(relays: readonly string[], createdAt: number): EventTemplate {
  return { kind: RELAY_LIST_KIND, created_at: createdAt, content: '', tags: [...new Set(relays)].map((r) => ['r', r]) };
}

/** The relays an author reads (its inbox): `r` tags with no marker or `read` (NIP-65). */
export function getReadRelays(list: Pick<NostrEvent, 'tags'>): string[] {
  const out: string[] = [];
  for (const t of list.tags) {
    if (t[0] !== 'r' || typeof t[1] !== 'string' || !/^wss?:\/\//.test(t[1])) continue;
    if (t[2] === undefined || t[2] === 'read') out.push(t[1]);
  }
  return out;
}
