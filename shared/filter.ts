import type { NostrEvent } from './event.js';

/** A NIP-01 filter, plus Roost's sequence-range extension (see docs/protocol.md). */
export interface Filter {
  ids?: string[];
  authors?: string[];
  kinds?: number[];
  since?: number;
  until?: number;
  limit?: number;
  /** Roost extension: only events with a relay sequence number greater than this. */
  seq_after?: number;
  /** Roost extension: only events with a relay sequence number at most this. */
  seq_until?: number;
  [tag: `#${string}`]: string[] | undefined;
}

/** Single-letter tag filters of a filter, as [letter, values] pairs. */
export function getTagFilters(f: Filter): Array<[string, string[]]> {
  const out: Array<[string, string[]]> = [];
  for (const key in f) {
    if (key.length === 2 && key[0] === '#') {
      const values = f[key as `#${string}`];
      if (values) out.push([key[1]!, values]);
    }
  }
  return out;
}

/**
 * True when the event matches the filter (NIP-01). Sequence fields and `limit` are not
 * properties of an event and are ignored here; the store and fan-out apply them.
 */
export function matchFilter(f: Filter, ev: NostrEvent): boolean {
  if (f.ids && !f.ids.includes(ev.id)) return false;
  if (f.authors && !f.authors.includes(ev.pubkey)) return false;
  if (f.kinds && !f.kinds.includes(ev.kind)) return false;
  if (f.since !== undefined && ev.created_at < f.since) return false;
  if (f.until !== undefined && ev.created_at > f.until) return false;
  for (const key in f) {
    if (key.length !== 2 || key[0] !== '#') continue;
    const values = f[key as `#${string}`];
    if (!values) continue;
    const letter = key[1];
    let hit = false;
    for (const t of ev.tags) {
      if (t[0] === letter && t[1] !== undefined && values.includes(t[1])) {
        hit = true;
        break;
      }
    }
    if (!hit) return false;
  }
  return true;
}

/** True when the event matches any of the filters. */
export function matchFilters(filters: readonly Filter[], ev: NostrEvent): boolean {
  for (const f of filters) if (matchFilter(f, ev)) return true;
  return false;
}
