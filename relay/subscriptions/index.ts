import type { NostrEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import { type CompiledFilter, compileFilter, getTagFilters, matchCompiled } from '../../shared/filter.js';

/** What the index needs of a live subscription. */
export interface IndexedSubscription {
  readonly filters: readonly Filter[];
}

interface Entry<S> {
  sub: S;
  filter: Filter;
  compiled: CompiledFilter;
}

/**
 * Finds the subscriptions an event may match without scanning them all: each filter is filed under
 * its most selective field (ids, then authors, then a tag, then kinds; else the catch-all list), and
 * candidates are confirmed with the shared matcher.
 */
export class SubscriptionIndex<S extends IndexedSubscription> {
  // Keys: 'i'+id, 'a'+author, 't'+letter+':'+value, 'k'+kind, '*' for filters with none of those.
  #buckets = new Map<string, Set<Entry<S>>>();
  #entries = new Map<S, Entry<S>[]>();

  /** Number of live subscriptions. */
  get size(): number {
    return this.#entries.size;
  }

  /** Files every filter of the subscription. */
  add(sub: S): void {
    const entries: Entry<S>[] = [];
    for (const filter of sub.filters) {
      const e: Entry<S> = { sub, filter, compiled: compileFilter(filter) };
      entries.push(e);
      for (const key of bucketKeys(filter)) {
        let set = this.#buckets.get(key);
        if (!set) this.#buckets.set(key, (set = new Set()));
        set.add(e);
      }
    }
    this.#entries.set(sub, entries);
  }

  /** Removes the subscription; unknown ones are ignored. */
  remove(sub: S): void {
    const entries = this.#entries.get(sub);
    if (!entries) return;
    this.#entries.delete(sub);
    for (const e of entries) {
      for (const key of bucketKeys(e.filter)) {
        const set = this.#buckets.get(key);
        if (!set) continue;
        set.delete(e);
        if (set.size === 0) this.#buckets.delete(key);
      }
    }
  }

  /**
   * Calls `visit` for every subscription with at least one filter matching the event, once each.
   * Each candidate filter is checked at most once per event (an event repeating a tag value, or
   * naming many values of a filter's bucket, finds it in many buckets), so the cost is bounded by
   * the event's tags plus the candidates, whatever the filters.
   */
  match(ev: NostrEvent, visit: (sub: S) => void): void {
    const seen = new Set<S>();
    const checked = new Set<Entry<S>>();
    const check = (key: string) => {
      const set = this.#buckets.get(key);
      if (!set) return;
      for (const e of set) {
        if (checked.has(e) || seen.has(e.sub)) continue;
        checked.add(e);
        if (matchCompiled(e.compiled, ev)) {
          seen.add(e.sub);
          visit(e.sub);
        }
      }
    };
    check('i' + ev.id);
    check('a' + ev.pubkey);
    for (const t of ev.tags) {
      if (t[0] !== undefined && t[0].length === 1 && t[1] !== undefined) check('t' + t[0] + ':' + t[1]);
    }
    check('k' + ev.kind);
    check('*');
  }
}

/** The buckets a filter is filed under: its most selective field's values. */
function bucketKeys(f: Filter): string[] {
  if (f.ids) return [...new Set(f.ids)].map((v) => 'i' + v);
  if (f.authors) return [...new Set(f.authors)].map((v) => 'a' + v);
  const tags = getTagFilters(f);
  if (tags.length > 0) {
    const [name, values] = tags[0]!;
    return [...new Set(values)].map((v) => 't' + name + ':' + v);
  }
  if (f.kinds) return [...new Set(f.kinds)].map((v) => 'k' + v);
  return ['*'];
}
