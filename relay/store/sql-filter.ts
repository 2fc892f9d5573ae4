import type { Filter } from '../../shared/filter.js';
import { getTagFilters } from '../../shared/filter.js';

/** Who is reading: private kinds are visible only to their author or a `p`-tagged recipient. */
export interface Viewer {
  /** Pubkeys the connection has authenticated as (NIP-42). */
  pubkeys: readonly string[];
  /** Kinds that form private inboxes. */
  privateKinds: readonly number[];
}

/** A compiled query: SQL text (stable for equal shapes, so it can be cached) and its parameters. */
export interface SqlQuery {
  sql: string;
  params: Array<string | number>;
}

/** How a filter is turned into SQL. */
export interface SqlFilterOptions {
  /** Now, in seconds: expired events (NIP-40) are never returned. */
  now: number;
  viewer?: Viewer;
  /** Newest-first with this limit, or ascending sequence order in (after, until]. */
  order: { by: 'created'; limit: number } | { by: 'seq'; after: number; until?: number; limit: number };
  /** Select only COUNT(*) instead of rows. */
  count?: boolean;
}

function placeholders(n: number): string {
  return n === 1 ? '?' : '?' + ',?'.repeat(n - 1);
}

/** Compiles one filter to SQL over the events/tags tables. Pure; fuzzed against matchFilter. */
export function buildFilterQuery(f: Filter, opts: SqlFilterOptions): SqlQuery {
  const where: string[] = [];
  const params: Array<string | number> = [];
  if (f.ids) {
    if (f.ids.length === 0) where.push('0');
    else {
      where.push(`e.id IN (${placeholders(f.ids.length)})`);
      params.push(...f.ids);
    }
  }
  if (f.authors) {
    if (f.authors.length === 0) where.push('0');
    else {
      where.push(`e.pubkey IN (${placeholders(f.authors.length)})`);
      params.push(...f.authors);
    }
  }
  if (f.kinds) {
    if (f.kinds.length === 0) where.push('0');
    else {
      where.push(`e.kind IN (${placeholders(f.kinds.length)})`);
      params.push(...f.kinds);
    }
  }
  if (f.since !== undefined) {
    where.push('e.created_at >= ?');
    params.push(f.since);
  }
  if (f.until !== undefined) {
    where.push('e.created_at <= ?');
    params.push(f.until);
  }
  for (const [name, values] of getTagFilters(f)) {
    if (values.length === 0) {
      where.push('0');
      continue;
    }
    where.push(`e.seq IN (SELECT t.seq FROM tags t WHERE t.name = ? AND t.value IN (${placeholders(values.length)}))`);
    params.push(name, ...values);
  }
  where.push('(e.expires_at IS NULL OR e.expires_at > ?)');
  params.push(opts.now);
  const viewer = opts.viewer;
  if (viewer && viewer.privateKinds.length > 0) {
    const pk = placeholders(viewer.privateKinds.length);
    if (viewer.pubkeys.length === 0) {
      where.push(`e.kind NOT IN (${pk})`);
      params.push(...viewer.privateKinds);
    } else {
      const vk = placeholders(viewer.pubkeys.length);
      where.push(
        `(e.kind NOT IN (${pk}) OR e.pubkey IN (${vk}) OR e.seq IN (SELECT t.seq FROM tags t WHERE t.name = 'p' AND t.value IN (${vk})))`,
      );
      params.push(...viewer.privateKinds, ...viewer.pubkeys, ...viewer.pubkeys);
    }
  }
  const order = opts.order;
  if (order.by === 'seq') {
    where.push('e.seq > ?');
    params.push(order.after);
    if (order.until !== undefined) {
      where.push('e.seq <= ?');
      params.push(order.until);
    }
  }
  const cond = where.join(' AND ');
  if (opts.count) return { sql: `SELECT COUNT(*) AS n FROM events e WHERE ${cond}`, params };
  const tail =
    order.by === 'seq' ? 'ORDER BY e.seq ASC LIMIT ?' : 'ORDER BY e.created_at DESC, e.id ASC LIMIT ?';
  params.push(order.limit);
  return { sql: `SELECT e.seq, e.raw, e.created_at, e.id FROM events e WHERE ${cond} ${tail}`, params };
}
