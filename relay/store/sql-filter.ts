import type { Filter } from '../../shared/filter.js';
import { getTagFilters } from '../../shared/filter.js';

/** Who is reading: private kinds are visible only to their author or a `p`-tagged recipient. */
export interface Viewer {
  /** Pubkeys the connection has authenticated as (NIP-42). */
  pubkeys: readonly string[];
  /** Kinds that form private inboxes. */
  privateKinds: readonly number[];
}

/**
 * A compiled query: SQL text (stable for equal shapes and limits, so it can be cached) and its
 * parameters. Limits are written into the text: SQLite plans with a bound LIMIT's value and
 * re-prepares the statement each time that value changes.
 */
export interface SqlQuery {
  sql: string;
  params: SqlParam[];
  /**
   * Set when an event may fill more than one of the LIMIT rows (it repeats the driving tag): the
   * caller folds repeats, and if that leaves fewer rows than the limit while the limit was reached,
   * must ask again without `tagDriver`.
   */
  mayRepeat?: boolean;
}

/** How a filter is turned into SQL. */
export interface SqlFilterOptions {
  /** Now, in seconds: expired events (NIP-40) are never returned. */
  now: number;
  viewer?: Viewer;
  /** Newest-first with this limit, or ascending sequence order in (after, until]. */
  order: { by: 'created'; limit: number } | { by: 'seq'; after: number; until?: number; limit: number };
  /** Select only the matching rows' seq, unordered and unlimited (for {@link buildCountQuery}). */
  count?: boolean;
  /** False: select the rows without their bodies (`raw` is NULL), for answers streamed later by seq. */
  bodies?: boolean;
  /** False: never drive a newest-first query by a tag index walk (see {@link SqlQuery.mayRepeat}). */
  tagDriver?: boolean;
  /** Leave out events with a higher seq (a stored answer bounded where live delivery starts). */
  maxSeq?: number;
  /** SQL flavour (default SQLite); PostgreSQL's placeholders stay `?` here and are numbered by its store. */
  dialect?: Dialect;
}

/** The SQL flavours the builder writes. */
export type Dialect = 'sqlite' | 'postgres';

/** A bound value: a number, a string, or (PostgreSQL) one array of them. */
export type SqlParam = string | number | readonly string[] | readonly number[];

function placeholders(n: number): string {
  return n === 1 ? '?' : '?' + ',?'.repeat(n - 1);
}

/**
 * Value lists longer than this are bound as one JSON array read by `json_each` instead of one
 * variable per value: a filter within the advertised limits (thousands of tag values, times the
 * branches of a driven query) would otherwise exceed SQLite's bound-variable limit.
 */
const MAX_INLINE_VALUES = 32;

/** `expr IN (...)` over the values, pushing their parameters: inline placeholders, or one JSON array. */
function inList(expr: string, values: ReadonlyArray<string | number>, params: SqlParam[], dialect: Dialect = 'sqlite'): string {
  if (dialect === 'postgres' && values.length > MAX_INLINE_VALUES) {
    // One array parameter: PostgreSQL plans `= ANY` over it like an IN list.
    params.push(values as string[] | number[]);
    return `${expr} = ANY(?::${typeof values[0] === 'number' ? 'bigint' : 'text'}[])`;
  }
  if (values.length <= MAX_INLINE_VALUES) {
    params.push(...values);
    return `${expr} IN (${placeholders(values.length)})`;
  }
  params.push(JSON.stringify(values));
  return `${expr} IN (SELECT value FROM json_each(?))`;
}

/** Tag filters with at most this many values are paged in sequence order by one index range per value. */
const SEQ_DRIVER_MAX_VALUES = 16;
/** Tag filters with at most this many values drive a newest-first query by one index walk per value. */
const CREATED_DRIVER_MAX_VALUES = 16;

/** The selected columns: seq, raw (or NULL when bodies are not wanted), created_at, id. */
function columns(opts: SqlFilterOptions): string {
  return opts.bodies === false ? 'e.seq, NULL AS raw, e.created_at, e.id' : 'e.seq, e.raw, e.created_at, e.id';
}

/** A LIMIT clause with its value written out (a non-negative integer, or -1 for none). */
function limitClause(n: number, dialect: Dialect = 'sqlite'): string {
  if (!Number.isSafeInteger(n) || n < -1) throw new RangeError(`bad limit ${n}`);
  return n === -1 && dialect === 'postgres' ? 'LIMIT ALL' : `LIMIT ${n}`;
}

/** A subquery's name (PostgreSQL 15 requires one; SQLite's text stays as it was). */
function alias(dialect: Dialect | undefined, i: number): string {
  return dialect === 'postgres' ? ` AS b${i}` : '';
}

/** A condition that is never true. */
function never(dialect: Dialect = 'sqlite'): string {
  return dialect === 'postgres' ? 'FALSE' : '0';
}

/** The join of an event to the tag row driving it (SQLite is told the join order). */
function tagJoin(dialect: Dialect = 'sqlite'): string {
  return dialect === 'postgres' ? 'JOIN' : 'CROSS JOIN';
}

/** How a tag condition is written: as an IN list (materialised once) or a per-row EXISTS probe. */
type TagStyle = 'in' | 'exists';

/** Every condition of the filter on `events e`, except the tag filter named `skipTag` and any ordering. */
function conditions(f: Filter, opts: SqlFilterOptions, tagStyle: TagStyle, skipTag?: string): SqlQuery {
  const where: string[] = [];
  const params: SqlParam[] = [];
  const d = opts.dialect;
  if (f.ids) where.push(f.ids.length === 0 ? never(d) : inList('e.id', f.ids, params, d));
  if (f.authors) where.push(f.authors.length === 0 ? never(d) : inList('e.pubkey', f.authors, params, d));
  if (f.kinds) where.push(f.kinds.length === 0 ? never(d) : inList('e.kind', f.kinds, params, d));
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
      where.push(never(d));
      continue;
    }
    params.push(name);
    const inValues = inList('t.value', values, params, d);
    where.push(
      tagStyle === 'in'
        ? `e.seq IN (SELECT t.seq FROM tags t WHERE t.name = ? AND ${inValues})`
        : `EXISTS (SELECT 1 FROM tags t WHERE t.seq = e.seq AND t.name = ? AND ${inValues})`,
    );
  }
  where.push('(e.expires_at IS NULL OR e.expires_at > ?)');
  params.push(opts.now);
  if (opts.maxSeq !== undefined) {
    where.push('e.seq <= ?');
    params.push(opts.maxSeq);
  }
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
      where.push(`(e.kind NOT IN (${pk}) OR e.pubkey IN (${vk}) OR EXISTS (SELECT 1 FROM tags v WHERE v.seq = e.seq AND v.name = 'p' AND v.value IN (${vk})))`);
      params.push(...viewer.privateKinds, ...viewer.pubkeys, ...viewer.pubkeys);
    }
  }
  return { sql: where.join(' AND '), params };
}

/**
 * The tag filter with the fewest values, if it has at most `max`: each of its values is one index
 * range. None when the filter names ids (the primary key is better) or has an empty tag list.
 */
function driverTag(f: Filter, max: number): [string, string[]] | undefined {
  if (f.ids) return undefined;
  let best: [string, string[]] | undefined;
  for (const tf of getTagFilters(f)) {
    if (tf[1].length === 0) return undefined;
    if (!best || tf[1].length < best[1].length) best = tf;
  }
  return best && best[1].length <= max ? best : undefined;
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
  const d = opts.dialect;
  const limit = limitClause(order.limit, d);
  // PostgreSQL groups by the event's key (its other columns depend on it) and names each subquery.
  const group = d === 'postgres' ? 'GROUP BY e.seq ORDER BY e.seq' : 'GROUP BY d.seq ORDER BY d.seq';
  const branch =
    `SELECT ${columns(opts)} FROM tags d ${tagJoin(d)} events e ON e.seq = d.seq ` +
    `WHERE d.name = ? AND d.value = ? AND ${range} AND ${rest.sql} ${group} ${limit}`;
  if (values.length === 1) return { sql: branch, params: [name, values[0]!, ...bounds, ...rest.params] };
  const params: SqlParam[] = [];
  for (const v of values) params.push(name, v, ...bounds, ...rest.params);
  const sql = values.map((_, i) => `SELECT * FROM (${branch})${alias(d, i)}`).join(' UNION ') + ` ORDER BY 1 ${limit}`;
  return { sql, params };
}

/**
 * Newest first, driven by a tag index walk: (name, value, created_at) is read from the newest entry
 * (or from `until`) down, each event joined and checked, and the walk stops at the limit, so a page
 * of a large mailbox costs the page, not the mailbox. Several values are one walk each, merged.
 * Used when the filter names no authors (their index is the better driver).
 */
function buildCreatedByTag(f: Filter, opts: SqlFilterOptions & { order: { by: 'created' } }, driver: [string, string[]]): SqlQuery {
  const [name, values] = driver;
  const rest = conditions(f, opts, 'exists', name);
  const range: string[] = [];
  const bounds: number[] = [];
  if (f.since !== undefined) {
    range.push('d.created_at >= ?');
    bounds.push(f.since);
  }
  if (f.until !== undefined) {
    range.push('d.created_at <= ?');
    bounds.push(f.until);
  }
  const d = opts.dialect;
  const limit = limitClause(opts.order.limit, d);
  const branch =
    `SELECT ${columns(opts)} FROM tags d ${tagJoin(d)} events e ON e.seq = d.seq ` +
    `WHERE d.name = ? AND d.value = ? AND ${[...range, rest.sql].join(' AND ')} ORDER BY d.created_at DESC, e.id ASC ${limit}`;
  if (values.length === 1) return { sql: branch, params: [name, values[0]!, ...bounds, ...rest.params], mayRepeat: true };
  const params: SqlParam[] = [];
  for (const v of values) params.push(name, v, ...bounds, ...rest.params);
  // UNION ALL keeps an event found by two values twice, so the caller sees that it took two rows.
  const sql = values.map((_, i) => `SELECT * FROM (${branch})${alias(d, i)}`).join(' UNION ALL ') + ` ORDER BY 3 DESC, 4 ASC ${limit}`;
  return { sql, params, mayRepeat: true };
}

/** Compiles one filter to SQL over the events/tags tables. Pure; fuzzed against matchFilter. */
export function buildFilterQuery(f: Filter, opts: SqlFilterOptions): SqlQuery {
  const order = opts.order;
  if (order.by === 'seq' && !opts.count) {
    const driver = driverTag(f, SEQ_DRIVER_MAX_VALUES);
    if (driver) return buildSeqByTag(f, { ...opts, order }, driver);
  }
  if (order.by === 'created' && !opts.count && opts.tagDriver !== false && !f.authors && order.limit !== 0) {
    const driver = driverTag(f, CREATED_DRIVER_MAX_VALUES);
    if (driver) return buildCreatedByTag(f, { ...opts, order }, driver);
  }
  // In sequence order without a driver, rows are walked by primary key from the cursor, and tag
  // conditions are probed per row rather than materialised. Newest first, ids and authors drive and
  // tags are probed too (materialising a tag's rows costs more than the whole small answer); with
  // neither, the tags' rows are the driver.
  const probe = order.by === 'seq' || (!opts.count && (f.ids !== undefined || f.authors !== undefined));
  const cond = conditions(f, opts, probe ? 'exists' : 'in');
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
  if (opts.count) return { sql: `SELECT e.seq FROM events e WHERE ${all}`, params };
  const tail = order.by === 'seq' ? 'ORDER BY e.seq ASC' : 'ORDER BY e.created_at DESC, e.id ASC';
  return { sql: `SELECT ${columns(opts)} FROM events e WHERE ${all} ${tail} ${limitClause(order.limit, opts.dialect)}`, params };
}

/**
 * NIP-45 count of the events matching any of the filters, in SQL: the filters' seq sets are merged
 * by UNION (an event matched by two filters counts once) and no event body is read.
 */
export function buildCountQuery(filters: readonly Filter[], opts: Omit<SqlFilterOptions, 'order' | 'count'>): SqlQuery {
  const parts = filters.map((f) => buildFilterQuery(f, { ...opts, order: { by: 'created', limit: -1 }, count: true }));
  const sql = parts.length === 0 ? 'SELECT 0 AS n' : `SELECT COUNT(*) AS n FROM (${parts.map((p) => p.sql).join(' UNION ')})${alias(opts.dialect, 0)}`;
  return { sql, params: parts.flatMap((p) => p.params) };
}
