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

/** Tag filters with at most this many values are paged in sequence order by one index range per value. */
const SEQ_DRIVER_MAX_VALUES = 16;

/** How a tag condition is written: as an IN list (materialised once) or a per-row EXISTS probe. */
type TagStyle = 'in' | 'exists';

/** Every condition of the filter on `events e`, except the tag filter named `skipTag` and any ordering. */
function conditions(f: Filter, opts: SqlFilterOptions, tagStyle: TagStyle, skipTag?: string): SqlQuery {
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
    if (name === skipTag) continue;
    if (values.length === 0) {
      where.push('0');
      continue;
    }
    where.push(
      tagStyle === 'in'
        ? `e.seq IN (SELECT t.seq FROM tags t WHERE t.name = ? AND t.value IN (${placeholders(values.length)}))`
        : `EXISTS (SELECT 1 FROM tags t WHERE t.seq = e.seq AND t.name = ? AND t.value IN (${placeholders(values.length)}))`,
    );
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
      // A per-row probe, reached only for private kinds: an IN list here would materialise the
      // reader's whole inbox on every query.
      const vk = placeholders(viewer.pubkeys.length);
      where.push(
        `(e.kind NOT IN (${pk}) OR e.pubkey IN (${vk}) OR EXISTS (SELECT 1 FROM tags v WHERE v.seq = e.seq AND v.name = 'p' AND v.value IN (${vk})))`,
      );
      params.push(...viewer.privateKinds, ...viewer.pubkeys, ...viewer.pubkeys);
    }
  }
  return { sql: where.join(' AND '), params };
}

/**
 * The tag filter that drives a sequence-ordered query: the one with the fewest values, if it has
 * at most SEQ_DRIVER_MAX_VALUES. Each of its values is one range of the (name, value, seq) index.
 */
function seqDriverTag(f: Filter): [string, string[]] | undefined {
  if (f.ids) return undefined;
  let best: [string, string[]] | undefined;
  for (const tf of getTagFilters(f)) {
    if (tf[1].length === 0) return undefined;
    if (!best || tf[1].length < best[1].length) best = tf;
  }
  return best && best[1].length <= SEQ_DRIVER_MAX_VALUES ? best : undefined;
}

/**
 * Keyset page in sequence order driven by a tag index range: walks (name, value, seq) from the
 * cursor, joins each event, and stops at the limit, so its cost does not grow with depth. Several
 * values are one such branch each, merged. GROUP BY folds an event that repeats the tag.
 */
function buildSeqByTag(f: Filter, opts: SqlFilterOptions & { order: { by: 'seq' } }, driver: [string, string[]]): SqlQuery {
  const [name, values] = driver;
  const rest = conditions(f, opts, 'exists', name);
  const order = opts.order;
  const range = order.until !== undefined ? 'd.seq > ? AND d.seq <= ?' : 'd.seq > ?';
  const bounds = order.until !== undefined ? [order.after, order.until] : [order.after];
  const branch =
    `SELECT e.seq, e.raw, e.created_at, e.id FROM tags d CROSS JOIN events e ON e.seq = d.seq ` +
    `WHERE d.name = ? AND d.value = ? AND ${range} AND ${rest.sql} GROUP BY d.seq ORDER BY d.seq LIMIT ?`;
  if (values.length === 1) return { sql: branch, params: [name, values[0]!, ...bounds, ...rest.params, order.limit] };
  const params: Array<string | number> = [];
  for (const v of values) params.push(name, v, ...bounds, ...rest.params, order.limit);
  params.push(order.limit);
  const sql = values.map(() => `SELECT * FROM (${branch})`).join(' UNION ') + ' ORDER BY 1 LIMIT ?';
  return { sql, params };
}

/** Compiles one filter to SQL over the events/tags tables. Pure; fuzzed against matchFilter. */
export function buildFilterQuery(f: Filter, opts: SqlFilterOptions): SqlQuery {
  const order = opts.order;
  if (order.by === 'seq' && !opts.count) {
    const driver = seqDriverTag(f);
    if (driver) return buildSeqByTag(f, { ...opts, order }, driver);
  }
  // In sequence order without a driver, rows are walked by primary key from the cursor, and tag
  // conditions are probed per row rather than materialised.
  const cond = conditions(f, opts, order.by === 'seq' ? 'exists' : 'in');
  const where = [cond.sql];
  const params = cond.params;
  if (order.by === 'seq') {
    where.push('e.seq > ?');
    params.push(order.after);
    if (order.until !== undefined) {
      where.push('e.seq <= ?');
      params.push(order.until);
    }
  }
  const all = where.join(' AND ');
  if (opts.count) return { sql: `SELECT COUNT(*) AS n FROM events e WHERE ${all}`, params };
  const tail =
    order.by === 'seq' ? 'ORDER BY e.seq ASC LIMIT ?' : 'ORDER BY e.created_at DESC, e.id ASC LIMIT ?';
  params.push(order.limit);
  return { sql: `SELECT e.seq, e.raw, e.created_at, e.id FROM events e WHERE ${all} ${tail}`, params };
}
