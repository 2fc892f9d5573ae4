import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import type { VerifiedEvent } from '../../shared/event.js';
import { getDTag, getExpiration, getTagValues } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import { Kind, isAddressableKind, isReplaceableKind } from '../../shared/kinds.js';
import { makeReason } from '../../shared/reason.js';
import { RoostError } from '../config.js';
import { createSharedPushWake, loadOrCreateSharedIdentity, queueWakesSql } from '../push/postgres.js';
import { followKeyShared } from '../push/postgres-follow.js';
import { systemClock } from '../push/types.js';
import { createPostgresClaims } from './postgres-claims.js';
import { createPostgresDocCompaction } from './postgres-compaction.js';
import { createPostgresMailboxStorage } from './postgres-mailbox.js';
import { createPostgresStorageProbe } from './postgres-figures.js';
import { migratePostgres } from './postgres-migrate.js';
import { createPostgresRateStore } from './postgres-rates.js';
import { buildCountQuery, buildFilterQuery, type SqlFilterOptions } from './sql-filter.js';
import {
  type AdminLogEntry,
  DELETED_REASONS,
  type EventStore,
  type ReadOptions,
  type ReplicaWrite,
  type ReplicationStore,
  type SeqPage,
  type StoreCapabilities,
  type StoredEvent,
  type WriteResult,
} from './types.js';

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
  /** A replicated event: its upstream cursor and origin chain, committed with it. */
  replica?: ReplicaWrite;
  resolve: (r: WriteResult) => void;
}

/** Replicated event ids refused here that are kept (the oldest go first), as on SQLite. */
const MAX_REFUSED_KEPT = 100_000;
/** Origin chains kept in memory for `originOf` (those of the events last read or handed to `onStored`). */
const MAX_ORIGINS_CACHED = 100_000;

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
 * committed (one transaction per batch, one batch in flight per instance); each transaction locks
 * the keys its events touch (advisory locks, so instances writing unrelated events do not wait for
 * each other) and bumps the one-row sequencer in its last statement, so sequence numbers are handed
 * out in commit order across instances. Every instance, the writer included, learns of commits by reading the shared
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
  /** Relays named in an origin chain here (replication_peers): while there are none, no origin is read. */
  #peers = new Set<string>();
  /** Origin chains of the events last handed to `onStored` or read (bounded; `originOf` answers from it). */
  #origins = new Map<number, string>();
  #refusedSincePrune = 0;

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
      replication: this.#replication(),
      claims: createPostgresClaims(pool),
      docCompaction: createPostgresDocCompaction(pool),
      mailbox: (replayed) => createPostgresMailboxStorage(pool, replayed),
      storageFigures: createPostgresStorageProbe(pool, (err) => opts.log?.warn({ err }, 'reading storage figures failed')),
      sharedWake: {
        open: async (deps) => {
          const push = createSharedPushWake({ ...deps, pool: this.pool });
          const clock = deps.clock ?? systemClock;
          if (push.enabled()) this.#wakeQueue = { minIntervalMs: deps.config.pushMinIntervalSeconds * 1000, now: () => clock.now() };
          return push;
        },
        followKey: (from, to, eventCreated) => followKeyShared(this.pool, from, to, eventCreated, Date.now()),
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
    for (const r of (await pool.query<{ pubkey: string }>('SELECT pubkey FROM replication_peers')).rows) store.#peers.add(r.pubkey);
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
  write(event: VerifiedEvent, replica?: ReplicaWrite): Promise<WriteResult> {
    if (this.#closed) return Promise.resolve({ status: 'rejected', reason: makeReason('error', 'relay is shutting down') });
    return new Promise((resolve) => {
      this.#queue.push(replica ? { event, replica, resolve } : { event, resolve });
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
          results = await this.#commit(batch);
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

  /**
   * One write transaction, four round trips (docs/architecture.md, "Sequence numbers in commit order"):
   * 1. BEGIN and an advisory lock per key the batch touches (event ids, deletion targets, replaceable
   *    and addressable keys), all in one statement in ascending order;
   * 2. one read of what is stored under those keys (held still by the locks), after which the batch is
   *    decided in memory, in order;
   * 3. one statement that bumps the sequencer row first and then deletes, inserts and queues wakes
   *    numbered from it, and NOTIFYs;
   * 4. COMMIT. The sequencer row is locked from 3 to the end of 4 only.
   */
  async #commit(writes: readonly PendingWrite[]): Promise<WriteResult[]> {
    const plan = new BatchPlan(
      writes.map((w) => w.event),
      this.#now(),
    );
    const client = await this.pool.connect();
    let broken = false;
    try {
      // Integers only in the text: the keys are computed here, never taken from an event.
      await client.query(plan.lockStatement());
      // A new statement, so a new snapshot: whatever a holder of one of these keys committed is in it.
      const read = plan.readStatement();
      plan.load((await client.query<StoredRow>(read.sql, read.params)).rows);
      const results = writes.map((w) => plan.add(w.event, w.replica));
      if (plan.count === 0) {
        // Nothing numbered: only replication cursors (past duplicates and refusals) may move.
        const cursors = plan.cursorStatement();
        if (cursors) await client.query(cursors.sql, cursors.params);
        await client.query('COMMIT');
        return results;
      }
      const write = plan.writeStatement(this.#wakeQueue);
      const written = client.query<{ n: number }>(write.sql, write.params);
      const before = this.#opts.beforeCommit;
      // Without a hook, COMMIT is queued behind the statement at once (sent as soon as it completes;
      // after a failed statement PostgreSQL answers it with a rollback).
      const committed = before ? undefined : client.query('COMMIT');
      committed?.catch(() => undefined);
      const end = (await written).rows[0]!.n;
      if (!Number.isSafeInteger(end)) throw new RangeError(`bad sequence number ${end}`);
      plan.number(end);
      if (before) {
        await before(end - plan.count + 1, end);
        await client.query('COMMIT');
      } else await committed;
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
      const r = await this.pool.query<{ top: number; seq: number | null; raw: string | null; origin: string | null }>(
        `SELECT c.n AS top, e.seq, e.raw, e.origin FROM seq_counter c
         LEFT JOIN LATERAL (SELECT seq, raw, origin FROM events WHERE seq > $1 AND seq <= c.n ORDER BY seq LIMIT ${TAIL_PAGE}) e ON TRUE
         WHERE c.id = 1`,
        [this.#tail],
      );
      const top = r.rows[0]?.top ?? this.#tail;
      let rows = 0;
      for (const row of r.rows) {
        if (row.seq === null || row.raw === null || row.seq <= this.#tail) continue;
        rows++;
        this.#tail = row.seq;
        // Fan-out asks for the chain of a replicated event in the same turn.
        if (row.origin !== null) this.#cacheOrigin(row.seq, row.origin);
        this.#onStored?.(JSON.parse(row.raw) as VerifiedEvent, row.seq, row.raw);
      }
      if (rows < TAIL_PAGE) {
        // Deleted since (replaced, expired): nothing between here and the counter is still to come.
        if (top > this.#tail) this.#tail = top;
        return this.#tail;
      }
    }
  }

  #cacheOrigin(seq: number, origin: string): void {
    this.#origins.delete(seq);
    this.#origins.set(seq, origin);
    if (this.#origins.size > MAX_ORIGINS_CACHED) this.#origins.delete(this.#origins.keys().next().value!);
  }

  /** Reads the origin chains of events about to be served (only once this relay has replicated anything). */
  async #readOrigins(seqs: readonly number[]): Promise<void> {
    if (this.#peers.size === 0 || seqs.length === 0) return;
    const r = await this.pool.query<{ seq: number; origin: string }>('SELECT seq, origin FROM events WHERE seq = ANY($1::bigint[]) AND origin IS NOT NULL', [
      seqs,
    ]);
    for (const row of r.rows) this.#cacheOrigin(row.seq, row.origin);
  }

  /** Replication: cursors and origins go in the events' own transactions (BatchPlan); the rest are plain statements. */
  #replication(): ReplicationStore {
    return {
      isKnown: (id, pubkey) => this.isKnown(id, pubkey),
      writeReplicated: (event, replica) => this.write(event, replica),
      getReplicationCursor: async (upstream) =>
        (await this.pool.query<{ cursor: number }>('SELECT cursor FROM replication_cursors WHERE upstream = $1', [upstream])).rows[0]?.cursor ?? 0,
      setReplicationCursor: async (upstream, seq, reset = false) => {
        if (reset) await this.pool.query('DELETE FROM replication_cursors WHERE upstream = $1', [upstream]);
        else
          await this.pool.query(
            `INSERT INTO replication_cursors (upstream, cursor, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (upstream) DO UPDATE SET cursor = GREATEST(replication_cursors.cursor, excluded.cursor), updated_at = excluded.updated_at`,
            [upstream, seq, this.#now()],
          );
      },
      recordReplicationRefused: async (id, reason) => {
        await this.pool.query(
          'INSERT INTO replication_refused (id, reason, at) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET reason = excluded.reason, at = excluded.at',
          [id, reason.slice(0, 200), this.#now()],
        );
        if (++this.#refusedSincePrune < 1000) return;
        this.#refusedSincePrune = 0;
        await this.pool.query(
          `DELETE FROM replication_refused WHERE id IN (SELECT id FROM replication_refused ORDER BY at ASC
             LIMIT GREATEST((SELECT count(*) FROM replication_refused) - ${MAX_REFUSED_KEPT}, 0))`,
        );
      },
      isReplicationRefused: async (id) => (await this.pool.query('SELECT 1 FROM replication_refused WHERE id = $1', [id])).rowCount === 1,
      recordReplicationPeer: async (pubkey) => {
        this.#peers.add(pubkey);
        await this.pool.query('INSERT INTO replication_peers (pubkey) VALUES ($1) ON CONFLICT DO NOTHING', [pubkey]);
      },
      replicationPeers: async () => {
        for (const r of (await this.pool.query<{ pubkey: string }>('SELECT pubkey FROM replication_peers')).rows) this.#peers.add(r.pubkey);
        return [...this.#peers];
      },
      originOf: (seq) => this.#origins.get(seq),
      negentropyItems: (filter, max, opts) => this.negentropyItems(filter, max, opts),
    };
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
    const rows = await this.#query(filters, opts, true);
    await this.#readOrigins(rows.map((r) => r.seq));
    return rows.map((r) => ({ seq: r.seq, raw: r.raw }));
  }

  /** The seqs `query` would answer, in its order. */
  async querySeqs(filters: readonly Filter[], opts: ReadOptions & { limits?: readonly number[]; maxSeq?: number } = {}): Promise<number[]> {
    return (await this.#query(filters, opts, false)).map((r) => r.seq);
  }

  /** One stored event's JSON by seq. */
  async getRaw(seq: number): Promise<string | undefined> {
    const row = (await this.pool.query<{ raw: string; origin: string | null }>('SELECT raw, origin FROM events WHERE seq = $1', [seq])).rows[0];
    if (row?.origin) this.#cacheOrigin(seq, row.origin);
    return row?.raw;
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
    await this.#readOrigins(events.map((e) => e.seq));
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

/** A row read back by the batch's read statement. */
interface StoredRow {
  /** 'e': a stored event; 'x': a deleted id; 'a': a deleted address. */
  t: 'e' | 'x' | 'a';
  seq: number | null;
  id: string | null;
  pubkey: string;
  kind: number | null;
  created_at: number | null;
  d_tag: string | null;
  until: number | null;
}

/** A stored event or one of the batch, as the batch's checks see it. */
interface Candidate {
  id: string;
  pubkey: string;
  kind: number;
  created_at: number;
  /** Stored: its seq (deleted by the write statement when superseded). */
  seq?: number;
  /** Of this batch: its row (left out of the write statement when superseded). */
  row?: NewRow;
  gone: boolean;
}

interface NewRow {
  off: number;
  ev: VerifiedEvent;
  d: string | null;
  origin: string | null;
  raw: string;
  dropped: boolean;
  result: { status: 'stored'; seq: number; raw: string };
}

const HEX64 = /^[0-9a-f]{64}$/;
/**
 * Most key locks one write transaction takes (each is a slot of PostgreSQL's shared lock table, sized
 * max_locks_per_transaction × max_connections: 6,400 by default). A batch with more takes the store-wide
 * lock exclusively instead (every batch takes it shared first), so it waits for the others and they for it.
 */
const MAX_KEY_LOCKS = 1024;
/** The store-wide advisory lock: the two-integer form, a key space apart from the hashed keys' (one bigint). */
const STORE_LOCK = '1383034739, 1';
const repKey = (pubkey: string, kind: number) => `r\u0000${pubkey}\u0000${kind}`;
const addrKey = (kind: number, pubkey: string, d: string) => `a\u0000${kind}\u0000${pubkey}\u0000${d}`;

/**
 * An advisory lock key: an event id's last 8 bytes (already a hash: of ids made up in tests and benches,
 * the varying end), or 8 bytes of a SHA-256 of any other key.
 */
function lockKey(key: string): bigint {
  if (HEX64.test(key)) return BigInt.asIntN(64, BigInt(`0x${key.slice(48)}`));
  return createHash('sha256').update(key).digest().readBigInt64BE(0);
}

/** The NIP-09 `a` tags of a deletion that name the author's own replaceable or addressable events. */
function deletedAddresses(ev: VerifiedEvent): Array<{ kind: number; d: string | null }> {
  const out: Array<{ kind: number; d: string | null }> = [];
  for (const addr of getTagValues(ev, 'a')) {
    const m = /^(\d+):([0-9a-f]{64}):(.*)$/s.exec(addr);
    if (!m || m[2] !== ev.pubkey) continue;
    const kind = Number(m[1]);
    if (isAddressableKind(kind)) out.push({ kind, d: m[3]! });
    else if (isReplaceableKind(kind)) out.push({ kind, d: null });
  }
  return out;
}

/**
 * One write transaction's batch: the keys it locks, the one read of what is stored under them, the
 * checks (duplicate, deleted, superseded, NIP-09) decided in memory in batch order, and the one
 * write statement. Every lookup the checks make is under a key that is locked and was read.
 */
class BatchPlan {
  /** Advisory lock keys, ascending, distinct (as decimal text); none when the batch takes the whole store. */
  readonly lockKeys: string[];
  /** Numbers handed out in this batch (its stored events, superseded ones included). */
  count = 0;
  #ids: string[];
  #reps = new Map<string, { pubkey: string; kind: number }>();
  #addrs = new Map<string, { kind: number; pubkey: string; d: string }>();
  #byId = new Map<string, Candidate>();
  #byKey = new Map<string, Candidate[]>();
  #inBatch = new Set<string>();
  #deletedIds = new Set<string>();
  #deletedAddr = new Map<string, number>();
  #rows: NewRow[] = [];
  #gone: number[] = [];
  #newDeletedIds = new Map<string, { id: string; pubkey: string }>();
  #newDeletedAddr = new Map<string, { kind: number; pubkey: string; d: string; until: number }>();
  /** Replication cursors to move (upstream → highest upstream seq in the batch, whatever became of its event). */
  #cursors = new Map<string, number>();
  #now: number;

  constructor(events: readonly VerifiedEvent[], now: number) {
    this.#now = now;
    const ids = new Set<string>();
    for (const ev of events) {
      ids.add(ev.id);
      if (isReplaceableKind(ev.kind)) this.#reps.set(repKey(ev.pubkey, ev.kind), { pubkey: ev.pubkey, kind: ev.kind });
      else if (isAddressableKind(ev.kind)) {
        const d = getDTag(ev);
        this.#addrs.set(addrKey(ev.kind, ev.pubkey, d), { kind: ev.kind, pubkey: ev.pubkey, d });
      }
      if (ev.kind !== Kind.Deletion) continue;
      for (const id of getTagValues(ev, 'e')) if (HEX64.test(id)) ids.add(id);
      for (const { kind, d } of deletedAddresses(ev)) {
        if (d === null) this.#reps.set(repKey(ev.pubkey, kind), { pubkey: ev.pubkey, kind });
        else this.#addrs.set(addrKey(kind, ev.pubkey, d), { kind, pubkey: ev.pubkey, d });
      }
    }
    this.#ids = [...ids];
    const keys = new Set<bigint>();
    for (const k of [...this.#ids, ...this.#reps.keys(), ...this.#addrs.keys()]) keys.add(lockKey(k));
    this.lockKeys = keys.size > MAX_KEY_LOCKS ? [] : [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map(String);
  }

  /**
   * BEGIN and the locks, in one message: the store-wide key first (shared; exclusive for a batch with more
   * than {@link MAX_KEY_LOCKS} keys, which then takes no others), then the keys in ascending order. Only
   * integers computed here are written into the text.
   */
  lockStatement(): string {
    if (this.lockKeys.length === 0) return `BEGIN; SELECT pg_advisory_xact_lock(${STORE_LOCK})`;
    return `BEGIN; SELECT pg_advisory_xact_lock_shared(${STORE_LOCK}); SELECT pg_advisory_xact_lock(k) FROM unnest('{${this.lockKeys.join(',')}}'::bigint[]) AS k ORDER BY k`;
  }

  /** What is stored under the batch's keys: events by id, deleted ids, and (when the batch has any) replaceable and addressable keys. */
  readStatement(): { sql: string; params: unknown[] } {
    const params: unknown[] = [this.#ids];
    const parts = [
      `SELECT 'e' AS t, seq, id, pubkey, kind, created_at, d_tag, NULL::bigint AS until FROM events WHERE id = ANY($1::text[])`,
      `SELECT 'x', NULL, id, pubkey, NULL, NULL, NULL, NULL FROM deleted_ids WHERE id = ANY($1::text[])`,
    ];
    if (this.#reps.size > 0) {
      const r = [...this.#reps.values()];
      params.push(
        r.map((x) => x.pubkey),
        r.map((x) => x.kind),
      );
      parts.push(`SELECT 'e', e.seq, e.id, e.pubkey, e.kind, e.created_at, e.d_tag, NULL
        FROM unnest($2::text[], $3::int[]) AS k(pubkey, kind) JOIN events e ON e.pubkey = k.pubkey AND e.kind = k.kind`);
    }
    if (this.#addrs.size > 0) {
      const a = [...this.#addrs.values()];
      const n = params.length;
      params.push(
        a.map((x) => x.kind),
        a.map((x) => x.pubkey),
        a.map((x) => x.d),
      );
      const keys = `unnest($${n + 1}::int[], $${n + 2}::text[], $${n + 3}::text[]) AS k(kind, pubkey, d_tag)`;
      parts.push(
        `SELECT 'e', e.seq, e.id, e.pubkey, e.kind, e.created_at, e.d_tag, NULL
         FROM ${keys} JOIN events e ON e.kind = k.kind AND e.pubkey = k.pubkey AND e.d_tag = k.d_tag`,
        `SELECT 'a', NULL, NULL, x.pubkey, x.kind, NULL, x.d_tag, x.until
         FROM ${keys} JOIN deleted_addresses x ON x.kind = k.kind AND x.pubkey = k.pubkey AND x.d_tag = k.d_tag`,
      );
    }
    return { sql: parts.join('\nUNION ALL '), params };
  }

  /** Takes in the read statement's rows. */
  load(rows: readonly StoredRow[]): void {
    const seen = new Set<number>();
    for (const r of rows) {
      if (r.t === 'x') this.#deletedIds.add(`${r.id}:${r.pubkey}`);
      else if (r.t === 'a') this.#deletedAddr.set(addrKey(r.kind!, r.pubkey, r.d_tag!), r.until!);
      else if (!seen.has(r.seq!)) {
        seen.add(r.seq!);
        this.#register({ id: r.id!, pubkey: r.pubkey, kind: r.kind!, created_at: r.created_at!, seq: r.seq!, gone: false }, r.d_tag);
      }
    }
  }

  #register(c: Candidate, d: string | null): void {
    this.#byId.set(c.id, c);
    const key = isReplaceableKind(c.kind) ? repKey(c.pubkey, c.kind) : isAddressableKind(c.kind) && d !== null ? addrKey(c.kind, c.pubkey, d) : undefined;
    if (key === undefined) return;
    const list = this.#byKey.get(key);
    if (list) list.push(c);
    else this.#byKey.set(key, [c]);
  }

  #remove(c: Candidate): void {
    if (c.gone) return;
    c.gone = true;
    if (c.seq !== undefined) this.#gone.push(c.seq);
    if (c.row) c.row.dropped = true;
  }

  /** The newest live event under a replaceable or addressable key, if any. */
  #newest(key: string): Candidate | undefined {
    let newest: Candidate | undefined;
    for (const c of this.#byKey.get(key) ?? []) if (!c.gone && (!newest || isNewer(c, newest))) newest = c;
    return newest;
  }

  /** Decides one event of the batch, in batch order: later events see the earlier ones' effects. */
  add(ev: VerifiedEvent, replica?: ReplicaWrite): WriteResult {
    if (replica) this.#cursors.set(replica.upstream, Math.max(this.#cursors.get(replica.upstream) ?? 0, replica.seq));
    const known = this.#byId.get(ev.id);
    if ((known && !known.gone) || this.#inBatch.has(ev.id)) return { status: 'duplicate' };
    if (this.#deletedIds.has(`${ev.id}:${ev.pubkey}`)) return { status: 'rejected', reason: DELETED_REASONS.event };
    let d: string | null = null;
    if (isReplaceableKind(ev.kind) || isAddressableKind(ev.kind)) {
      let key: string;
      if (isReplaceableKind(ev.kind)) key = repKey(ev.pubkey, ev.kind);
      else {
        d = getDTag(ev);
        key = addrKey(ev.kind, ev.pubkey, d);
        const until = this.#deletedAddr.get(key);
        if (until !== undefined && ev.created_at <= until) return { status: 'rejected', reason: DELETED_REASONS.address };
      }
      const newest = this.#newest(key);
      if (newest && !isNewer(ev, newest)) {
        const what = isReplaceableKind(ev.kind) ? 'replaceable' : 'addressable';
        return { status: 'rejected', reason: makeReason('duplicate', `a newer version of this ${what} event is stored`) };
      }
      for (const c of this.#byKey.get(key) ?? []) this.#remove(c);
    }
    if (ev.kind === Kind.Deletion) this.#applyDeletion(ev);
    const raw = JSON.stringify(ev);
    const result = { status: 'stored' as const, seq: 0, raw };
    const row: NewRow = { off: ++this.count, ev, d, origin: replica?.origin ?? null, raw, dropped: false, result };
    this.#rows.push(row);
    this.#inBatch.add(ev.id);
    this.#register({ id: ev.id, pubkey: ev.pubkey, kind: ev.kind, created_at: ev.created_at, row, gone: false }, d);
    return result;
  }

  /** NIP-09: removes the author's own events named by `e` and `a` tags, and remembers them. */
  #applyDeletion(ev: VerifiedEvent): void {
    for (const id of getTagValues(ev, 'e')) {
      if (!HEX64.test(id)) continue;
      const c = this.#byId.get(id);
      const live = c && !c.gone && c.pubkey === ev.pubkey ? c : undefined;
      // A deletion never deletes (or shadows) another deletion.
      if (live?.kind === Kind.Deletion) continue;
      if (live) this.#remove(live);
      this.#deletedIds.add(`${id}:${ev.pubkey}`);
      this.#newDeletedIds.set(`${id}:${ev.pubkey}`, { id, pubkey: ev.pubkey });
    }
    for (const { kind, d } of deletedAddresses(ev)) {
      const key = d === null ? repKey(ev.pubkey, kind) : addrKey(kind, ev.pubkey, d);
      for (const c of this.#byKey.get(key) ?? []) if (c.created_at <= ev.created_at) this.#remove(c);
      if (d === null) continue;
      const until = Math.max(this.#deletedAddr.get(key) ?? ev.created_at, ev.created_at);
      this.#deletedAddr.set(key, until);
      this.#newDeletedAddr.set(key, { kind, pubkey: ev.pubkey, d, until });
    }
  }

  /**
   * The one write statement: the sequencer row is bumped by `count` first (every other part reads its
   * new value, so none touches a row before the sequencer is held), then superseded and deleted
   * events go, the batch's events and tags are inserted under `end - count + off`, deletions are
   * remembered, wakes queued, and the new end NOTIFYed (delivered on commit). Returns the new end.
   */
  writeStatement(wake: { minIntervalMs: number; now: () => number } | undefined): { sql: string; params: unknown[] } {
    const params: unknown[] = [this.count];
    const p = (v: unknown) => `$${params.push(v)}`;
    const seq = '(s.n - $1 + x.off)';
    const rows = this.#rows.filter((r) => !r.dropped);
    const ctes = ['s AS (UPDATE seq_counter SET n = n + $1 WHERE id = 1 RETURNING n)'];
    if (this.#gone.length > 0) ctes.push(`gone AS (DELETE FROM events WHERE seq = ANY(${p(this.#gone)}::bigint[]) AND EXISTS (SELECT 1 FROM s))`);
    if (rows.length > 0) {
      const cols = [
        p(rows.map((r) => r.off)),
        p(rows.map((r) => r.ev.id)),
        p(rows.map((r) => r.ev.pubkey)),
        p(rows.map((r) => r.ev.created_at)),
        p(rows.map((r) => r.ev.kind)),
        p(rows.map((r) => r.d)),
        p(rows.map((r) => getExpiration(r.ev) ?? null)),
        p(rows.map((r) => r.raw)),
        p(rows.map((r) => r.origin)),
      ];
      ctes.push(`ins AS (INSERT INTO events (seq, id, pubkey, created_at, kind, d_tag, expires_at, raw, origin)
        SELECT ${seq}, x.id, x.pubkey, x.created_at, x.kind, x.d_tag, x.expires_at, x.raw, x.origin
        FROM s, unnest(${cols[0]}::bigint[], ${cols[1]}::text[], ${cols[2]}::text[], ${cols[3]}::bigint[], ${cols[4]}::int[], ${cols[5]}::text[], ${cols[6]}::bigint[], ${cols[7]}::text[], ${cols[8]}::text[])
          AS x(off, id, pubkey, created_at, kind, d_tag, expires_at, raw, origin))`);
      const tags: { off: number[]; name: string[]; value: string[]; created: number[] } = { off: [], name: [], value: [], created: [] };
      const wakeOwners: string[] = [];
      const wakeOffs: number[] = [];
      for (const r of rows) {
        // One row per distinct (name, value): a repeated tag would take two rows of a LIMIT.
        const indexed = new Set<string>();
        for (const t of r.ev.tags) {
          const name = t[0];
          const value = t[1];
          if (name === undefined || name.length !== 1 || value === undefined) continue;
          const key = `${name}\u0000${value}`;
          if (indexed.has(key)) continue;
          indexed.add(key);
          tags.off.push(r.off);
          tags.name.push(name);
          tags.value.push(value);
          tags.created.push(r.ev.created_at);
        }
        if (!wake) continue;
        for (const pk of new Set(getTagValues(r.ev, 'p'))) {
          if (pk === r.ev.pubkey || !HEX64.test(pk)) continue;
          wakeOwners.push(pk);
          wakeOffs.push(r.off);
        }
      }
      // The tags' foreign key is checked at the end of the statement, when the events are in.
      if (tags.off.length > 0) {
        ctes.push(`tg AS (INSERT INTO tags (seq, name, value, created_at) SELECT ${seq}, x.name, x.value, x.created_at
          FROM s, unnest(${p(tags.off)}::bigint[], ${p(tags.name)}::text[], ${p(tags.value)}::text[], ${p(tags.created)}::bigint[]) AS x(off, name, value, created_at))`);
      }
      // In the event's own transaction: an acknowledged event to a sleeping agent always leads to a wake.
      if (wake && wakeOwners.length > 0) {
        const from = `(SELECT x.owner, ${seq} FROM s, unnest(${p(wakeOwners)}::text[], ${p(wakeOffs)}::bigint[]) AS x(owner, off)) AS x(owner, seq)`;
        ctes.push(`wk AS (${queueWakesSql(from, `${p(wake.now())}::bigint`, `${p(wake.minIntervalMs)}::bigint`)})`);
      }
    }
    if (this.#newDeletedIds.size > 0) {
      const v = [...this.#newDeletedIds.values()];
      ctes.push(`di AS (INSERT INTO deleted_ids (id, pubkey) SELECT x.id, x.pubkey
        FROM s, unnest(${p(v.map((x) => x.id))}::text[], ${p(v.map((x) => x.pubkey))}::text[]) AS x(id, pubkey) ON CONFLICT DO NOTHING)`);
    }
    if (this.#newDeletedAddr.size > 0) {
      const v = [...this.#newDeletedAddr.values()];
      ctes.push(`da AS (INSERT INTO deleted_addresses (kind, pubkey, d_tag, until) SELECT x.kind, x.pubkey, x.d_tag, x.until
        FROM s, unnest(${p(v.map((x) => x.kind))}::int[], ${p(v.map((x) => x.pubkey))}::text[], ${p(v.map((x) => x.d))}::text[], ${p(v.map((x) => x.until))}::bigint[])
          AS x(kind, pubkey, d_tag, until)
        ON CONFLICT (kind, pubkey, d_tag) DO UPDATE SET until = GREATEST(deleted_addresses.until, excluded.until))`);
    }
    if (this.#cursors.size > 0) ctes.push(`cur AS (${this.#cursorUpsert(p, 's, ')})`);
    return { sql: `WITH ${ctes.join(',\n')}\nSELECT s.n, pg_notify('${SEQ_CHANNEL}', s.n::text) FROM s`, params };
  }

  /** Replication cursors moved in the event's transaction: each upstream's greatest (instances replicating one upstream commit its events in order). */
  #cursorUpsert(p: (v: unknown) => string, from: string): string {
    const c = [...this.#cursors.entries()];
    return `INSERT INTO replication_cursors (upstream, cursor, updated_at)
      SELECT x.upstream, x.cursor, ${p(this.#now)}::bigint FROM ${from}unnest(${p(c.map((x) => x[0]))}::text[], ${p(c.map((x) => x[1]))}::bigint[]) AS x(upstream, cursor)
      ON CONFLICT (upstream) DO UPDATE SET cursor = GREATEST(replication_cursors.cursor, excluded.cursor), updated_at = excluded.updated_at`;
  }

  /** The cursor statement of a batch that stored nothing (duplicates and refusals move the cursor too), if any. */
  cursorStatement(): { sql: string; params: unknown[] } | undefined {
    if (this.#cursors.size === 0) return undefined;
    const params: unknown[] = [];
    return { sql: this.#cursorUpsert((v) => `$${params.push(v)}`, ''), params };
  }

  /** Numbers the batch's stored events once the write statement returned the sequencer's new end. */
  number(end: number): void {
    const base = end - this.count;
    for (const r of this.#rows) r.result.seq = base + r.off;
  }
}

function isNewer(ev: { created_at: number; id: string }, stored: { created_at: number; id: string }): boolean {
  return ev.created_at > stored.created_at || (ev.created_at === stored.created_at && ev.id < stored.id);
}
