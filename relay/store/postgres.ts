import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import type { VerifiedEvent } from '../../shared/event.js';
import { getDTag, getExpiration, getTagValues } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import { Kind, isAddressableKind, isReplaceableKind } from '../../shared/kinds.js';
import { makeReason } from '../../shared/reason.js';
import { RoostError } from '../config.js';
import { createSharedPushWake, loadOrCreateSharedIdentity, QUEUE_WAKES_SQL } from '../push/postgres.js';
import { systemClock } from '../push/types.js';
import { migratePostgres } from './postgres-migrate.js';
import { createPostgresRateStore } from './postgres-rates.js';
import { buildCountQuery, buildFilterQuery, type SqlFilterOptions, type SqlParam } from './sql-filter.js';
import type { AdminLogEntry, EventStore, ReadOptions, SeqPage, StoreCapabilities, StoredEvent, WriteResult } from './types.js';

/** Settings of the PostgreSQL store. */
export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Connections in the pool (writes use one at a time; reads share the rest). */
  poolSize?: number;
  /** Most events in one write transaction. */
  commitMaxBatch?: number;
  /** Seconds since the epoch (injected for tests). */
  now?: () => number;
  /** Called synchronously, in sequence order, for each event committed by any instance. */
  onStored?: (event: VerifiedEvent, seq: number, raw: string) => void;
  /**
   * Runs inside each write transaction after its sequence numbers are allocated and before it
   * commits (tests inject delays here to widen the window the sequencer must close).
   */
  beforeCommit?: (firstSeq: number, lastSeq: number) => Promise<void>;
  /** How often the shared log is read without a notification (a lost LISTEN connection). */
  pollMs?: number;
  /** How often an instance refreshes its presence rows (they expire after three). */
  presenceHeartbeatMs?: number;
  /** Where lost connections and failed reads of the shared log are reported. */
  log?: Pick<Logger, 'warn'>;
}

/** The channel instances NOTIFY after each commit, with the new end of the sequence as payload. */
export const SEQ_CHANNEL = 'roost_seq';
/** The channel instances NOTIFY after appending to the shared admin log. */
export const ADMIN_CHANNEL = 'roost_admin';
/** Rows the tail reads per statement. */
const TAIL_PAGE = 1000;

interface PendingWrite {
  event: VerifiedEvent;
  resolve: (r: WriteResult) => void;
}

interface Row {
  seq: number;
  raw: string;
  created_at: number;
  id: string;
}

/** BIGINT (int8) and COUNT results as numbers: sequence numbers and timestamps stay below 2^53. */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
} as unknown as pg.CustomTypesConfig;

/** Numbers the builder's `?` placeholders as PostgreSQL's `$1, $2, …`. */
export function toPostgresPlaceholders(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

/** A connection string with its password hidden, for logs. */
export function redactDbUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable)';
  }
}

/** Whether a ROOST_DB value names a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//.test(db);
}

/**
 * The PostgreSQL event store, for several relay instances on one database. Writes are group
 * committed (one transaction per batch, one batch in flight per instance); each transaction takes
 * the one-row sequencer first and sets it last, so sequence numbers are handed out in commit order
 * across instances. Every instance, the writer included, learns of commits by reading the shared
 * log past its tail — woken by NOTIFY (payload: the new end, never the event) or a slow poll — and
 * hands each event to `onStored` in sequence order.
 */
export class PostgresStore implements EventStore {
  /** Events, the sequence tail and the shared admin log; the relay-local subsystems stay off (logged at start). */
  readonly provides: StoreCapabilities;
  readonly pool: pg.Pool;
  #opts: PostgresStoreOptions;
  #now: () => number;
  #maxBatch: number;
  #queue: PendingWrite[] = [];
  #writing: Promise<void> | undefined;
  #closed = false;
  #onStored: PostgresStoreOptions['onStored'];
  /** Highest seq handed to onStored. */
  #tail = 0;
  #pullQueued: Promise<number> | undefined;
  #pullRunning: Promise<unknown> = Promise.resolve();
  #listener: pg.Client | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #listenRetry: NodeJS.Timeout | undefined;
  #presenceChain: Promise<unknown> = Promise.resolve();
  /** Set once push wake is open with a push service: wakes are queued in each write transaction. */
  #wakeQueue: { minIntervalMs: number; now: () => number } | undefined;
  /** A failed read of the shared log: reported, and retried by the next notification or poll. */
  #failed = (err: unknown): void => {
    if (!this.#closed) this.#opts.log?.warn({ err }, 'reading the shared log failed (retried by the next poll)');
  };
  #adminFollowers: Array<(entry: AdminLogEntry) => void> = [];
  /** Highest admin log entry handed to the followers. */
  #adminTail = 0;
  #adminQueued: Promise<void> | undefined;
  #adminRunning: Promise<unknown> = Promise.resolve();

  private constructor(opts: PostgresStoreOptions, pool: pg.Pool) {
    this.#opts = opts;
    this.pool = pool;
    this.#now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    this.#maxBatch = opts.commitMaxBatch ?? 500;
    this.#onStored = opts.onStored;
    const instance = randomBytes(8).toString('hex');
    const heartbeatMs = opts.presenceHeartbeatMs ?? 10_000;
    this.provides = {
      sharedPresence: {
        heartbeatMs,
        markOnline: (pubkeys) =>
          this.#presenceInOrder(async () => {
            if (pubkeys.length === 0) return;
            // Three missed heartbeats and the rows of a crashed instance are ignored.
            await this.pool.query(
              `INSERT INTO presence (pubkey, instance, expires_at) SELECT unnest($1::text[]), $2, $3
             ON CONFLICT (pubkey, instance) DO UPDATE SET expires_at = excluded.expires_at`,
              [pubkeys, instance, Date.now() + 3 * heartbeatMs],
            );
          }),
        markOffline: (pubkey) =>
          this.#presenceInOrder(async () => {
            await this.pool.query('DELETE FROM presence WHERE pubkey = $1 AND instance = $2', [pubkey, instance]);
          }),
        onlineOf: async (pubkeys) => {
          const r = await this.pool.query<{ pubkey: string }>('SELECT DISTINCT pubkey FROM presence WHERE pubkey = ANY($1::text[]) AND expires_at > $2', [
            pubkeys,
            Date.now(),
          ]);
          return new Set(r.rows.map((x) => x.pubkey));
        },
      },
      relayKey: () => loadOrCreateSharedIdentity(this.pool),
      sharedRates: createPostgresRateStore(this.pool, instance),
      sharedWake: {
        open: async (deps) => {
          const push = createSharedPushWake({ ...deps, pool: this.pool });
          const clock = deps.clock ?? systemClock;
          if (push.enabled()) this.#wakeQueue = { minIntervalMs: deps.config.pushMinIntervalSeconds * 1000, now: () => clock.now() };
          return push;
        },
      },
      sharedAdmin: {
        append: (entry) => this.#appendAdmin(entry),
        follow: (fn) => void this.#adminFollowers.push(fn),
        catchUp: () => this.#pullAdmin().then(() => undefined),
        claimAuthorization: async (sig, until) => {
          const now = this.#now();
          await this.pool.query('DELETE FROM nip98_used WHERE until < $1', [now]);
          const r = await this.pool.query('INSERT INTO nip98_used (sig, until) VALUES ($1, $2) ON CONFLICT (sig) DO NOTHING', [sig, until]);
          return (r.rowCount ?? 0) === 1;
        },
      },
    };
  }

  /**
   * Connects, applies migrations, starts listening for other instances' commits, and starts the
   * tail at the current end of the log (earlier events are history, answered from queries).
   */
  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? 8, types });
    // An idle connection that dies (server restart) must not crash the process: the next query reconnects.
    pool.on('error', (err) => opts.log?.warn({ err }, 'PostgreSQL connection lost (the next query reconnects)'));
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw new RoostError('ROOST_ERR_DB_OPEN', `cannot connect to ${redactDbUrl(opts.url)}: ${(err as Error).message}`, { cause: err });
    }
    try {
      await migratePostgres(client);
    } finally {
      client.release();
    }
    const store = new PostgresStore(opts, pool);
    store.#tail = (await pool.query<{ n: number }>('SELECT n FROM seq_counter WHERE id = 1')).rows[0]!.n;
    await store.#listen();
    store.#pollTimer = setInterval(() => {
      void store.#pull().catch(store.#failed);
      void store.#pullAdmin().catch(store.#failed);
    }, opts.pollMs ?? 1000);
    store.#pollTimer.unref();
    return store;
  }

  async #listen(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client({ connectionString: this.#opts.url, types });
    client.on('notification', (n) => void (n.channel === ADMIN_CHANNEL ? this.#pullAdmin() : this.#pull()).catch(this.#failed));
    const retry = (err?: unknown) => {
      if (this.#closed || this.#listener !== client) return;
      this.#opts.log?.warn({ err }, 'PostgreSQL LISTEN connection lost: reconnecting in 1 s (polling meanwhile)');
      this.#listener = undefined;
      client.end().catch(() => undefined);
      // Commits missed meanwhile are found by the poll, and by the pull after reconnecting.
      this.#listenRetry = setTimeout(() => void this.#listen().catch(retry), 1000);
      this.#listenRetry.unref();
    };
    client.on('error', retry);
    client.on('end', retry);
    this.#listener = client;
    await client.connect();
    await client.query(`LISTEN ${SEQ_CHANNEL}; LISTEN ${ADMIN_CHANNEL}`);
    void this.#pull().catch(this.#failed);
    void this.#pullAdmin().catch(this.#failed);
  }

  /** Sets the listener called, in sequence order, for every committed event (any instance's). */
  setOnStored(fn: PostgresStoreOptions['onStored']): void {
    this.#onStored = fn;
  }

  /** Queues a verified event; resolves after the transaction holding it has committed. */
  write(event: VerifiedEvent): Promise<WriteResult> {
    if (this.#closed) return Promise.resolve({ status: 'rejected', reason: makeReason('error', 'relay is shutting down') });
    return new Promise((resolve) => {
      this.#queue.push({ event, resolve });
      this.#writing ??= this.#drain();
    });
  }

  /** Commits batches until the queue is empty: whatever queued during one commit goes in the next. */
  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        let results: WriteResult[];
        try {
          results = await this.#commit(batch.map((w) => w.event));
        } catch (err) {
          const reason = makeReason('error', `storage failure: ${(err as { code?: string }).code ?? (err as Error).message}`);
          results = batch.map(() => ({ status: 'rejected', reason }));
        }
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]!);
        if (results.some((r) => r.status === 'stored')) void this.#pull().catch(this.#failed);
      }
    } finally {
      this.#writing = undefined;
    }
  }

  /** One write transaction: sequencer lock, the batch's rows, the sequencer's new end, NOTIFY, commit. */
  async #commit(events: readonly VerifiedEvent[]): Promise<WriteResult[]> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      // Four round trips a batch. First the sequencer row, locked until COMMIT: writers on every
      // instance take turns (BEGIN and the lock in one simple-protocol message).
      const begun = (await client.query('BEGIN; SELECT n FROM seq_counter WHERE id = 1 FOR UPDATE')) as unknown as pg.QueryResult<{ n: number }>[];
      const base = begun[1]!.rows[0]!.n;
      const w = new BatchWriter(client, base);
      const results: WriteResult[] = [];
      // After the lock, so a duplicate another instance committed meanwhile is seen.
      const ids = events.map((e) => e.id);
      const seen = (
        await client.query<{ known: string[]; deleted: string[] }>(
          `SELECT ARRAY(SELECT id FROM events WHERE id = ANY($1::text[])) AS known,
                  ARRAY(SELECT id || ':' || pubkey FROM deleted_ids WHERE id = ANY($1::text[])) AS deleted`,
          [ids],
        )
      ).rows[0]!;
      const known = new Set(seen.known);
      const deleted = new Set(seen.deleted);
      for (const ev of events) results.push(await w.writeOne(ev, known, deleted));
      await w.flushInserts();
      const q = this.#wakeQueue;
      // In the event's own transaction: an acknowledged event to a sleeping agent always leads to a wake.
      if (q && w.wakeOwners.length > 0) await client.query(QUEUE_WAKES_SQL, [w.wakeOwners, w.wakeSeqs, q.now(), q.minIntervalMs]);
      if (w.seq > base) {
        await this.#opts.beforeCommit?.(base + 1, w.seq);
        // The sequencer's new end, the notification (delivered only on commit) and COMMIT: one message.
        const end = Number(w.seq);
        if (!Number.isSafeInteger(end)) throw new RangeError(`bad sequence number ${end}`);
        await client.query(`UPDATE seq_counter SET n = ${end} WHERE id = 1; NOTIFY ${SEQ_CHANNEL}, '${end}'; COMMIT`);
      } else await client.query('COMMIT');
      return results;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /**
   * Reads the shared log past the tail and hands each event to `onStored`, in order. Calls while one
   * is running queue (at most) one more, which starts after it: a caller is answered by a read that
   * began after its call.
   */
  #pull(): Promise<number> {
    if (this.#pullQueued) return this.#pullQueued;
    const p = this.#pullRunning.then(() => {
      this.#pullQueued = undefined;
      return this.#pullAll();
    });
    this.#pullQueued = p;
    this.#pullRunning = p.catch(() => undefined);
    return p;
  }

  async #pullAll(): Promise<number> {
    for (;;) {
      if (this.#closed) return this.#tail;
      // One statement, one snapshot: every seq up to the counter it reads has committed in it.
      const r = await this.pool.query<{ top: number; seq: number | null; raw: string | null }>(
        `SELECT c.n AS top, e.seq, e.raw FROM seq_counter c
         LEFT JOIN LATERAL (SELECT seq, raw FROM events WHERE seq > $1 AND seq <= c.n ORDER BY seq LIMIT ${TAIL_PAGE}) e ON TRUE
         WHERE c.id = 1`,
        [this.#tail],
      );
      const top = r.rows[0]?.top ?? this.#tail;
      let rows = 0;
      for (const row of r.rows) {
        if (row.seq === null || row.raw === null || row.seq <= this.#tail) continue;
        rows++;
        this.#tail = row.seq;
        this.#onStored?.(JSON.parse(row.raw) as VerifiedEvent, row.seq, row.raw);
      }
      if (rows < TAIL_PAGE) {
        // Deleted since (replaced, expired): nothing between here and the counter is still to come.
        if (top > this.#tail) this.#tail = top;
        return this.#tail;
      }
    }
  }

  /** Presence writes of this instance run one after another, so a logout never overtakes its login. */
  #presenceInOrder(fn: () => Promise<void>): Promise<void> {
    const p = this.#presenceChain.then(fn);
    this.#presenceChain = p.catch(() => undefined);
    return p;
  }

  /** Appends a NIP-86 change under an exclusive lock (numbers visible in commit order), and NOTIFYs. */
  async #appendAdmin(entry: AdminLogEntry): Promise<void> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      await client.query('LOCK TABLE admin_log IN EXCLUSIVE MODE');
      await client.query('INSERT INTO admin_log (n, at, pubkey, method, params) SELECT COALESCE(MAX(n), 0) + 1, $1, $2, $3, $4 FROM admin_log', [
        this.#now(),
        entry.pubkey,
        entry.method,
        JSON.stringify(entry.params),
      ]);
      // A banned event leaves the shared store once, here; every instance applies the ban itself.
      if (entry.method === 'banevent' && typeof entry.params[0] === 'string') await client.query('DELETE FROM events WHERE id = $1', [entry.params[0]]);
      await client.query('SELECT pg_notify($1, $2)', [ADMIN_CHANNEL, '']);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /** Hands admin log entries past the tail to the followers, in order (single flight, like #pull). */
  #pullAdmin(): Promise<void> {
    if (this.#adminQueued) return this.#adminQueued;
    const p = this.#adminRunning.then(async () => {
      this.#adminQueued = undefined;
      // Nobody follows yet (the relay registers right after opening): keep every entry for them.
      if (this.#closed || this.#adminFollowers.length === 0) return;
      const r = await this.pool.query<{ n: number; pubkey: string; method: string; params: unknown[] }>(
        'SELECT n, pubkey, method, params FROM admin_log WHERE n > $1 ORDER BY n',
        [this.#adminTail],
      );
      for (const row of r.rows) {
        this.#adminTail = row.n;
        for (const fn of this.#adminFollowers) fn({ pubkey: row.pubkey, method: row.method, params: row.params });
      }
    });
    this.#adminQueued = p;
    this.#adminRunning = p.catch(() => undefined);
    return p;
  }

  /** Resolves once every event committed before the call has been handed to the listener. */
  catchUp(): Promise<number> {
    return this.#pull();
  }

  /** Highest seq handed to the listener. */
  lastSeq(): number {
    return this.#tail;
  }

  async #run(f: Filter, opts: SqlFilterOptions): Promise<Row[]> {
    const want = opts.order.limit;
    const q = buildFilterQuery(f, { ...opts, dialect: 'postgres' });
    let rows = (await this.pool.query<Row>(toPostgresPlaceholders(q.sql), q.params as unknown[])).rows;
    if (q.mayRepeat && rows.length > 1) {
      const seen = new Set<number>();
      const unique = rows.filter((r) => !seen.has(r.seq) && seen.add(r.seq));
      // An event repeating the driving tag took more than one row: ask the general plan instead.
      if (unique.length < rows.length && rows.length >= want && want >= 0 && unique.length < want) return this.#run(f, { ...opts, tagDriver: false });
      rows = unique;
    }
    return want >= 0 && rows.length > want ? rows.slice(0, want) : rows;
  }

  async #query(filters: readonly Filter[], opts: ReadOptions & { limits?: readonly number[]; maxSeq?: number }, bodies: boolean): Promise<Row[]> {
    const now = this.#now();
    const parts = await Promise.all(
      filters.map((f, i) => {
        const limit = opts.limits?.[i] ?? f.limit ?? 500;
        if (limit === 0) return [];
        return this.#run(f, { now, viewer: opts.viewer, order: { by: 'created', limit }, bodies, maxSeq: opts.maxSeq });
      }),
    );
    if (parts.length === 1) return parts[0]!;
    const bySeq = new Map<number, Row>();
    for (const rows of parts) for (const r of rows) bySeq.set(r.seq, r);
    return [...bySeq.values()].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Stored events matching any filter, newest first. */
  async query(filters: readonly Filter[], opts: ReadOptions & { limits?: readonly number[]; maxSeq?: number } = {}): Promise<StoredEvent[]> {
    return (await this.#query(filters, opts, true)).map((r) => ({ seq: r.seq, raw: r.raw }));
  }

  /** The seqs `query` would answer, in its order. */
  async querySeqs(filters: readonly Filter[], opts: ReadOptions & { limits?: readonly number[]; maxSeq?: number } = {}): Promise<number[]> {
    return (await this.#query(filters, opts, false)).map((r) => r.seq);
  }

  /** One stored event's JSON by seq. */
  async getRaw(seq: number): Promise<string | undefined> {
    return (await this.pool.query<{ raw: string }>('SELECT raw FROM events WHERE seq = $1', [seq])).rows[0]?.raw;
  }

  /** Events with seq in (after, until] matching any filter, ascending by seq, at most `limit`. */
  async querySeq(filters: readonly Filter[], after: number, until: number | undefined, limit: number, opts: ReadOptions = {}): Promise<SeqPage> {
    const now = this.#now();
    // Read before the query: every seq up to it has committed, so the query's snapshot holds them all.
    const tail = this.#tail;
    const parts = await Promise.all(filters.map((f) => this.#run(f, { now, viewer: opts.viewer, order: { by: 'seq', after, until, limit: limit + 1 } })));
    const bySeq = new Map<number, Row>();
    for (const rows of parts) for (const r of rows) bySeq.set(r.seq, r);
    const rows = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    const more = rows.length > limit;
    const events = rows.slice(0, limit).map((r) => ({ seq: r.seq, raw: r.raw }));
    const last = events.length > 0 ? events[events.length - 1]!.seq : after;
    const cursor = more ? last : Math.max(last, Math.min(until ?? tail, tail));
    return { events, cursor, more };
  }

  /** NIP-77 items of one filter (no bodies read), or undefined past `max`. */
  async negentropyItems(filter: Filter, max: number, opts: ReadOptions = {}): Promise<Array<{ timestamp: number; id: string }> | undefined> {
    const rows = await this.#run(filter, { now: this.#now(), viewer: opts.viewer, order: { by: 'created', limit: max + 1 }, bodies: false });
    if (rows.length > max) return undefined;
    return rows.map((r) => ({ timestamp: r.created_at, id: r.id }));
  }

  /** NIP-45 count over the union of the filters. */
  async count(filters: readonly Filter[], opts: ReadOptions = {}): Promise<number> {
    const q = buildCountQuery(filters, { now: this.#now(), viewer: opts.viewer, dialect: 'postgres' });
    return (await this.pool.query<{ n: number }>(toPostgresPlaceholders(q.sql), q.params as unknown[])).rows[0]!.n;
  }

  /** Whether the id is stored, or was deleted by the given author. */
  async isKnown(id: string, pubkey?: string): Promise<'stored' | 'deleted' | undefined> {
    const r = await this.pool.query<{ s: boolean; d: boolean }>(
      'SELECT EXISTS (SELECT 1 FROM events WHERE id = $1) AS s, EXISTS (SELECT 1 FROM deleted_ids WHERE id = $1 AND pubkey = $2) AS d',
      [id, pubkey ?? ''],
    );
    const row = r.rows[0]!;
    return row.s ? 'stored' : row.d ? 'deleted' : undefined;
  }

  /** Deletes events whose NIP-40 expiration has passed. */
  async sweepExpired(now = this.#now()): Promise<number> {
    let total = 0;
    for (;;) {
      const r = await this.pool.query('DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE expires_at IS NOT NULL AND expires_at <= $1 LIMIT 5000)', [
        now,
      ]);
      total += r.rowCount ?? 0;
      if ((r.rowCount ?? 0) < 5000) return total;
    }
  }

  /** Commits what is queued, stops listening and closes the pool. */
  async close(): Promise<void> {
    if (this.#closed) return;
    while (this.#writing) await this.#writing;
    this.#closed = true;
    clearInterval(this.#pollTimer);
    clearTimeout(this.#listenRetry);
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => undefined);
    await this.#pullRunning;
    await this.#adminRunning;
    await this.#presenceChain;
    await this.pool.end();
  }
}

/**
 * The statements of one write transaction. Plain events are collected and inserted together (one
 * statement for the events, one for their tags); replaceable, addressable and deletion events first
 * insert what is collected, so their checks see every earlier event of the batch.
 */
class BatchWriter {
  #client: pg.ClientBase;
  /** Last seq handed out in this transaction. */
  seq: number;
  #rows: { seq: number[]; id: string[]; pubkey: string[]; created: number[]; kind: number[]; d: (string | null)[]; exp: (number | null)[]; raw: string[] } = {
    seq: [],
    id: [],
    pubkey: [],
    created: [],
    kind: [],
    d: [],
    exp: [],
    raw: [],
  };
  #tags: { seq: number[]; name: string[]; value: string[]; created: number[] } = { seq: [], name: [], value: [], created: [] };
  #inBatch = new Set<string>();
  /** `p`-tagged agents of the stored events, with the event's seq (wake candidates). */
  wakeOwners: string[] = [];
  wakeSeqs: number[] = [];

  constructor(client: pg.ClientBase, base: number) {
    this.#client = client;
    this.seq = base;
  }

  #q<T extends pg.QueryResultRow>(sql: string, params: SqlParam[] | unknown[]): Promise<pg.QueryResult<T>> {
    return this.#client.query<T>(sql, params as unknown[]);
  }

  async writeOne(ev: VerifiedEvent, known: ReadonlySet<string>, deleted: ReadonlySet<string>): Promise<WriteResult> {
    if (known.has(ev.id) || this.#inBatch.has(ev.id)) return { status: 'duplicate' };
    if (deleted.has(`${ev.id}:${ev.pubkey}`)) return { status: 'rejected', reason: makeReason('blocked', 'this event was deleted by its author') };
    let dTag: string | null = null;
    if (isReplaceableKind(ev.kind) || isAddressableKind(ev.kind) || ev.kind === Kind.Deletion) {
      await this.flushInserts();
      if (isReplaceableKind(ev.kind)) {
        const newest = (
          await this.#q<Row>('SELECT seq, created_at, id FROM events WHERE pubkey = $1 AND kind = $2 ORDER BY created_at DESC, id ASC LIMIT 1', [
            ev.pubkey,
            ev.kind,
          ])
        ).rows[0];
        if (newest && !isNewer(ev, newest)) {
          return { status: 'rejected', reason: makeReason('duplicate', 'a newer version of this replaceable event is stored') };
        }
        await this.#q('DELETE FROM events WHERE pubkey = $1 AND kind = $2', [ev.pubkey, ev.kind]);
      } else if (isAddressableKind(ev.kind)) {
        dTag = getDTag(ev);
        const until = (
          await this.#q<{ until: number }>('SELECT until FROM deleted_addresses WHERE kind = $1 AND pubkey = $2 AND d_tag = $3', [ev.kind, ev.pubkey, dTag])
        ).rows[0]?.until;
        if (until !== undefined && ev.created_at <= until) {
          return { status: 'rejected', reason: makeReason('blocked', 'this address was deleted by its author') };
        }
        const newest = (
          await this.#q<Row>('SELECT seq, created_at, id FROM events WHERE kind = $1 AND pubkey = $2 AND d_tag = $3 ORDER BY created_at DESC, id ASC LIMIT 1', [
            ev.kind,
            ev.pubkey,
            dTag,
          ])
        ).rows[0];
        if (newest && !isNewer(ev, newest)) {
          return { status: 'rejected', reason: makeReason('duplicate', 'a newer version of this addressable event is stored') };
        }
        await this.#q('DELETE FROM events WHERE kind = $1 AND pubkey = $2 AND d_tag = $3', [ev.kind, ev.pubkey, dTag]);
      }
      if (ev.kind === Kind.Deletion) await this.#applyDeletion(ev);
    }
    const raw = JSON.stringify(ev);
    const seq = ++this.seq;
    this.#inBatch.add(ev.id);
    const r = this.#rows;
    r.seq.push(seq);
    r.id.push(ev.id);
    r.pubkey.push(ev.pubkey);
    r.created.push(ev.created_at);
    r.kind.push(ev.kind);
    r.d.push(dTag);
    r.exp.push(getExpiration(ev) ?? null);
    r.raw.push(raw);
    for (const pk of new Set(getTagValues(ev, 'p'))) {
      if (pk === ev.pubkey || !/^[0-9a-f]{64}$/.test(pk)) continue;
      this.wakeOwners.push(pk);
      this.wakeSeqs.push(seq);
    }
    // One row per distinct (name, value): a repeated tag would take two rows of a LIMIT.
    const indexed = new Set<string>();
    for (const t of ev.tags) {
      const name = t[0];
      const value = t[1];
      if (name === undefined || name.length !== 1 || value === undefined) continue;
      const key = `${name}\u0000${value}`;
      if (indexed.has(key)) continue;
      indexed.add(key);
      this.#tags.seq.push(seq);
      this.#tags.name.push(name);
      this.#tags.value.push(value);
      this.#tags.created.push(ev.created_at);
    }
    return { status: 'stored', seq, raw };
  }

  /** NIP-09: removes the author's own events named by `e` and `a` tags, and remembers them. */
  async #applyDeletion(ev: VerifiedEvent): Promise<void> {
    const ids = getTagValues(ev, 'e').filter((id) => /^[0-9a-f]{64}$/.test(id));
    if (ids.length > 0) {
      // A deletion never deletes (or shadows) another deletion.
      const dels = new Set(
        (
          await this.#q<{ id: string }>('SELECT id FROM events WHERE id = ANY($1::text[]) AND pubkey = $2 AND kind = $3', [ids, ev.pubkey, Kind.Deletion])
        ).rows.map((r) => r.id),
      );
      const targets = ids.filter((id) => !dels.has(id));
      await this.#q('DELETE FROM events WHERE id = ANY($1::text[]) AND pubkey = $2', [targets, ev.pubkey]);
      await this.#q('INSERT INTO deleted_ids (id, pubkey) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING', [targets, ev.pubkey]);
    }
    for (const addr of getTagValues(ev, 'a')) {
      const m = /^(\d+):([0-9a-f]{64}):(.*)$/s.exec(addr);
      if (!m || m[2] !== ev.pubkey) continue;
      const kind = Number(m[1]);
      if (isAddressableKind(kind)) {
        await this.#q('DELETE FROM events WHERE kind = $1 AND pubkey = $2 AND d_tag = $3 AND created_at <= $4', [kind, ev.pubkey, m[3]!, ev.created_at]);
        await this.#q(
          `INSERT INTO deleted_addresses (kind, pubkey, d_tag, until) VALUES ($1, $2, $3, $4)
           ON CONFLICT (kind, pubkey, d_tag) DO UPDATE SET until = GREATEST(deleted_addresses.until, excluded.until)`,
          [kind, ev.pubkey, m[3]!, ev.created_at],
        );
      } else if (isReplaceableKind(kind)) {
        await this.#q('DELETE FROM events WHERE kind = $1 AND pubkey = $2 AND created_at <= $3', [kind, ev.pubkey, ev.created_at]);
      }
    }
  }

  /** Inserts the collected events and their tags: two statements however many there are. */
  async flushInserts(): Promise<void> {
    const r = this.#rows;
    if (r.seq.length === 0) return;
    const t = this.#tags;
    // Events and their tags in one statement (the tags' foreign key is checked at its end).
    await this.#q(
      `WITH e AS (
         INSERT INTO events (seq, id, pubkey, created_at, kind, d_tag, expires_at, raw)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[], $7::bigint[], $8::text[])
         RETURNING 1)
       INSERT INTO tags (seq, name, value, created_at) SELECT * FROM unnest($9::bigint[], $10::text[], $11::text[], $12::bigint[])`,
      [r.seq, r.id, r.pubkey, r.created, r.kind, r.d, r.exp, r.raw, t.seq, t.name, t.value, t.created],
    );
    this.#rows = { seq: [], id: [], pubkey: [], created: [], kind: [], d: [], exp: [], raw: [] };
    this.#tags = { seq: [], name: [], value: [], created: [] };
  }
}

function isNewer(ev: { created_at: number; id: string }, stored: { created_at: number; id: string }): boolean {
  return ev.created_at > stored.created_at || (ev.created_at === stored.created_at && ev.id < stored.id);
}
