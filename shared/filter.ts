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

/** A filter compiled for matching: value lists as Sets, so each check is a lookup, not a scan. */
export interface CompiledFilter {
  readonly ids?: ReadonlySet<string>;
  readonly authors?: ReadonlySet<string>;
  readonly kinds?: ReadonlySet<number>;
  readonly since?: number;
  readonly until?: number;
  /** Tag letter → accepted values. */
  readonly tags: ReadonlyArray<readonly [string, ReadonlySet<string>]>;
}

/** An event's single-letter tag values by letter, built once per event for matching. */
export type EventTagIndex = ReadonlyMap<string, ReadonlySet<string>>;

// Filters and events are treated as immutable once matched: each is compiled or indexed once.
const compiled = new WeakMap<Filter, CompiledFilter>();
const indexed = new WeakMap<NostrEvent, EventTagIndex>();

/** Compiles a filter for matching (cached per filter object; filters must not be mutated afterwards). */
export function compileFilter(f: Filter): CompiledFilter {
  let c = compiled.get(f);
  if (c === undefined) {
    c = {
      ids: f.ids && new Set(f.ids),
      authors: f.authors && new Set(f.authors),
      kinds: f.kinds && new Set(f.kinds),
      since: f.since,
      until: f.until,
      tags: getTagFilters(f).map(([letter, values]) => [letter, new Set(values)] as const),
    };
    compiled.set(f, c);
  }
  return c;
}

/** The event's tag values by single-letter name (cached per event object), in one pass over its tags. */
export function getEventTagIndex(ev: NostrEvent): EventTagIndex {
  let idx = indexed.get(ev) as Map<string, Set<string>> | undefined;
  if (idx === undefined) {
    idx = new Map();
    for (const t of ev.tags) {
      const name = t[0];
      if (name === undefined || name.length !== 1 || t[1] === undefined) continue;
      let set = idx.get(name);
      if (!set) idx.set(name, (set = new Set()));
      set.add(t[1]);
    }
    indexed.set(ev, idx);
  }
  return idx;
}

/**
 * True when the event matches the compiled filter. Each tag condition costs the smaller of the
 * filter's and the event's value counts for that letter, so no filter makes matching quadratic.
 */
export function matchCompiled(c: CompiledFilter, ev: NostrEvent): boolean {
  if (c.ids && !c.ids.has(ev.id)) return false;
  if (c.authors && !c.authors.has(ev.pubkey)) return false;
  if (c.kinds && !c.kinds.has(ev.kind)) return false;
  if (c.since !== undefined && ev.created_at < c.since) return false;
  if (c.until !== undefined && ev.created_at > c.until) return false;
  if (c.tags.length === 0) return true;
  const idx = getEventTagIndex(ev);
  for (const [letter, wanted] of c.tags) {
    const have = idx.get(letter);
    if (!have || !intersects(wanted, have)) return false;
  }
  return true;
}

function intersects(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  for (const v of small) if (large.has(v)) return true;
  return false;
}

/**
 * True when the event matches the filter (NIP-01). Sequence fields and `limit` are not
 * properties of an event and are ignored here; the store and fan-out apply them.
 */
export function matchFilter(f: Filter, ev: NostrEvent): boolean {
  return matchCompiled(compileFilter(f), ev);
}

/** True when the event matches any of the filters. */
export function matchFilters(filters: readonly Filter[], ev: NostrEvent): boolean {
  for (const f of filters) if (matchFilter(f, ev)) return true;
  return false;
}
