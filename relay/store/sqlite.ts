import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type { ReplicaWrite } from './types.js';
import type { Database, Statement } from 'better-sqlite3';
import type { VerifiedEvent } from '../../shared/event.js';
import { getDTag, getExpiration, getTagValues } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import { Kind, isAddressableKind, isReplaceableKind } from '../../shared/kinds.js';
import { makeReason } from '../../shared/reason.js';
import { RoostError } from '../config.js';
import { Checkpointer } from './checkpointer.js';
import { checkInBackground, resolveStartupCheck, type IntegrityState, type StartupCheck } from './integrity.js';
import { migrate } from './migrate.js';
import { buildCountQuery, buildFilterQuery, type SqlFilterOptions } from './sql-filter.js';
import { DELETED_REASONS, type EventStore, type ReadOptions, type SeqPage, type StoreCapabilities, type StoredEvent, type WriteResult } from './types.js';

/** Settings of the SQLite store. */
export interface SqliteStoreOptions {
  path: string;
  syncMode?: 'full' | 'normal';
  commitWindowMs?: number;
  commitMaxBatch?: number;
  /** Seconds since the epoch (injected for tests). */
  now?: () => number;
  /** Called synchronously, in sequence order, for each event right after its transaction commits. */
  onStored?: (event: VerifiedEvent, seq: number, raw: string) => void;
  /**
   * Checkpoint the WAL from a worker thread (default true for a file): commits then only append to
   * the WAL. False leaves it to SQLite's automatic checkpoint, which runs inside a commit.
   */
  checkpointWorker?: boolean;
  /** Integrity check when the file is opened (default `full`; the relay's config defaults to `auto`). */
  startupCheck?: StartupCheck;
}

/** Refused replicated ids remembered (oldest dropped first). */
const MAX_REFUSED_KEPT = 100_000;
/** A commit at least this large means writes are arriving fast enough for the window to group them. */
const GROUP_MIN_BATCH = 32;
/** Events committed since the last checkpoint that make the next one due at once. */
const CHECKPOINT_EVENTS = 2000;
/** How often a checkpoint is asked for while events are committed. */
const CHECKPOINT_INTERVAL_MS = 1000;
/** How often one is asked for regardless (other modules write on the same connection). */
const CHECKPOINT_IDLE_MS = 10_000;
/** The WAL file is cut back to this size when it restarts after a checkpoint. */
const WAL_SIZE_LIMIT = 64 * 1024 * 1024;

interface PendingWrite {
  event: VerifiedEvent;
  resolve: (r: WriteResult) => void;
  /** A replicated event: its upstream cursor (and origin) commit in the same transaction. */
  replica?: ReplicaWrite;
}

/** The newest stored version of a replaceable or addressable event. */
interface Newest {
  seq: number;
  created_at: number;
  id: string;
}

/**
 * A row of a filter read, as better-sqlite3's raw mode returns it (an array, no object made per row): seq, the body
 * (null when bodies were not asked for), created_at, id.
 */
type Row = [seq: number, raw: string, created_at: number, id: string];

/** Newest first, ties by id ascending (NIP-01). */
function newestFirst(a: Row, b: Row): number {
  return b[2] - a[2] || (a[3] < b[3] ? -1 : a[3] > b[3] ? 1 : 0);
}

/**
 * Opens (creating if needed) the database file, applies migrations, and sets WAL mode. With `check`
 * = `full` a failed `PRAGMA quick_check` refuses the file (ROOST_ERR_DB_CORRUPT).
 */
/** Most of the database file read through a memory map (SQLite caps it at its compile-time maximum). */
const MMAP_BYTES = 1 << 30;

export function openDatabase(path: string, syncMode: 'full' | 'normal' = 'full', check: 'full' | 'off' = 'full'): Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  let db: Database;
  try {
    db = new BetterSqlite3(path);
    db.pragma('journal_mode = WAL');
  } catch (err) {
    throw new RoostError('ROOST_ERR_DB_OPEN', `cannot open database ${path}: ${(err as Error).message}`, { cause: err });
  }
  db.pragma(`synchronous = ${syncMode === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('busy_timeout = 5000');
  db.pragma('cache_size = -65536');
  // Reads through a memory map: a page outside SQLite's own cache costs a page-table walk instead of
  // a pread and a copy (a reconnect storm reads 20 scattered rows per agent: ~35 % less CPU per query).
  db.pragma(`mmap_size = ${MMAP_BYTES}`);
  db.pragma('temp_store = MEMORY');
  if (check === 'full') {
    const found = db.pragma('quick_check', { simple: true });
    if (found !== 'ok') {
      db.close();
      throw new RoostError('ROOST_ERR_DB_CORRUPT', `database ${path} failed its integrity check: ${String(found)}`);
    }
  } else {
    // Reading the schema still refuses a file that is not a database at all.
    try {
      db.prepare('SELECT count(*) FROM sqlite_master').get();
    } catch (err) {
      db.close();
      throw new RoostError('ROOST_ERR_DB_CORRUPT', `database ${path} failed its integrity check: ${(err as Error).message}`);
    }
  }
  migrate(db);
  return db;
}

/** The SQLite event store: group-committed writes, indexed reads, raw JSON kept for sending. */
export class SqliteStore implements EventStore {
  readonly db: Database;
  /** Everything: synchronous reads, the relay-local tables and persistent admin state. */
  readonly provides: StoreCapabilities;
  #now: () => number;
  #queue: PendingWrite[] = [];
  #timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** When the last commit ended (performance.now()). */
  #lastCommitEnd = -Infinity;
  /** Writes in the last commit. */
  #lastBatch = 0;
  #timerIsImmediate = false;
  #windowMs: number;
  #maxBatch: number;
  #lastSeq: number;
  #closed = false;
  #onStored: SqliteStoreOptions['onStored'];
  #inTransaction: Array<(event: VerifiedEvent, seq: number) => void> = [];
  #stmtCache = new Map<string, Statement>();
  #rowStmtCache = new Map<string, Statement>();
  #s: ReturnType<SqliteStore['prepareWrites']>;
  #checkpointer: Checkpointer | undefined;
  #checkpointTimer: NodeJS.Timeout | undefined;
  #sinceCheckpoint = 0;
  /** Commits wait while a checkpoint copies the end of the WAL. */
  #held = false;
  #integrity: IntegrityState = { state: 'pending' };
  /** Settles when the start-up integrity check is over (at once unless it runs in the background). */
  readonly integrityChecked: Promise<IntegrityState>;
  #refusedSincePrune = 0;
  /** False while no deletion was ever recorded (the common case): the per-event lookup is skipped. */
  #hasDeletedIds: boolean;

  constructor(opts: SqliteStoreOptions) {
    const check = resolveStartupCheck(opts.startupCheck ?? 'full', opts.path);
    this.db = openDatabase(opts.path, opts.syncMode, check === 'full' ? 'full' : 'off');
    if (check === 'background') this.integrityChecked = checkInBackground(opts.path).then((s) => (this.#integrity = s));
    else {
      this.#integrity = check === 'full' ? { state: 'ok', ms: 0 } : { state: 'off' };
      this.integrityChecked = Promise.resolve(this.#integrity);
    }
    if (opts.path !== ':memory:' && opts.checkpointWorker !== false) this.#startCheckpointer(opts);
    this.#now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    this.#windowMs = opts.commitWindowMs ?? 2;
    this.#maxBatch = opts.commitMaxBatch ?? 1000;
    this.#onStored = opts.onStored;
    this.#s = this.prepareWrites();
    this.#hasDeletedIds = this.db.prepare('SELECT EXISTS (SELECT 1 FROM deleted_ids)').pluck().get() === 1;
    const row = this.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as { seq: number } | undefined;
    this.#lastSeq = row?.seq ?? 0;
    const local = {
      db: this.db,
      path: opts.path,
      addInTransaction: (fn: (event: VerifiedEvent, seq: number) => void) => this.addInTransaction(fn),
      integrity: () => this.#integrity,
      integrityChecked: this.integrityChecked,
    };
    this.provides = { syncReads: this, local, adminDb: this.db, replication: this };
  }

  #startCheckpointer(opts: SqliteStoreOptions): void {
    this.db.pragma('wal_autocheckpoint = 0');
    this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
    this.#checkpointer = new Checkpointer({
      path: opts.path,
      synchronous: opts.syncMode === 'normal' ? 'NORMAL' : 'FULL',
      onHold: () => (this.#held = true),
      onFinished: () => {
        this.#held = false;
        if (this.#queue.length > 0) this.#flushSoon(true);
      },
    });
    let ticks = 0;
    this.#checkpointTimer = setInterval(() => {
      // Writes made on this connection by other modules (ledger, push, admin) are covered by the idle round.
      if (this.#sinceCheckpoint > 0 || ++ticks * CHECKPOINT_INTERVAL_MS >= CHECKPOINT_IDLE_MS) {
        ticks = 0;
        this.#checkpoint();
      }
    }, CHECKPOINT_INTERVAL_MS);
    this.#checkpointTimer.unref();
  }

  #checkpoint(): void {
    const c = this.#checkpointer;
    if (c === undefined) return;
    this.#sinceCheckpoint = 0;
    if (!c.failed) return c.request();
    // The worker is gone: checkpoint here, as SQLite would have done automatically.
    try {
      this.db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // busy: the next interval tries again
    }
  }

  /**
   * Adds work that must commit atomically with each stored event (e.g. queueing a wake). It runs
   * inside the write transaction, so it must be quick and must not throw.
   */
  addInTransaction(fn: (event: VerifiedEvent, seq: number) => void): void {
    this.#inTransaction.push(fn);
  }

  /** Sets the post-commit listener (the relay's fan-out). */
  setOnStored(fn: SqliteStoreOptions['onStored']): void {
    this.#onStored = fn;
  }

  private prepareWrites() {
    const db = this.db;
    return {
      known: db.prepare('SELECT 1 FROM events WHERE id = ?').pluck(),
      rawBySeq: db.prepare('SELECT raw FROM events WHERE seq = ?'),
      rawsBySeqs: db.prepare('SELECT seq, raw FROM events WHERE seq IN (SELECT value FROM json_each(?))'),
      deleted: db.prepare('SELECT 1 FROM deleted_ids WHERE id = ? AND pubkey = ?').pluck(),
      insert: db.prepare('INSERT INTO events (id, pubkey, created_at, kind, d_tag, expires_at, raw) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      // A regular event's duplicate check: the id's UNIQUE index is walked by the insert itself.
      insertUnlessKnown: db.prepare('INSERT OR IGNORE INTO events (id, pubkey, created_at, kind, d_tag, expires_at, raw) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      insertTag: db.prepare('INSERT INTO tags (seq, name, value, created_at) VALUES (?, ?, ?, ?)'),
      newestReplaceable: db.prepare('SELECT seq, created_at, id FROM events WHERE pubkey = ? AND kind = ? ORDER BY created_at DESC, id ASC LIMIT 1'),
      newestAddressable: db.prepare(
        'SELECT seq, created_at, id FROM events WHERE kind = ? AND pubkey = ? AND d_tag = ? ORDER BY created_at DESC, id ASC LIMIT 1',
      ),
      replaceableSeqs: db.prepare('SELECT seq FROM events WHERE pubkey = ? AND kind = ?').pluck(),
      addressableSeqs: db.prepare('SELECT seq FROM events WHERE kind = ? AND pubkey = ? AND d_tag = ?').pluck(),
      addressDeletedUntil: db.prepare('SELECT until FROM deleted_addresses WHERE kind = ? AND pubkey = ? AND d_tag = ?').pluck(),
      deleteBySeq: db.prepare('DELETE FROM events WHERE seq = ?'),
      deleteOrigin: db.prepare('DELETE FROM event_origins WHERE seq = ?'),
      insertOrigin: db.prepare('INSERT OR REPLACE INTO event_origins (seq, origin) VALUES (?, ?)'),
      originOf: db.prepare('SELECT origin FROM event_origins WHERE seq = ?').pluck(),
      getCursor: db.prepare('SELECT cursor FROM replication_cursors WHERE upstream = ?').pluck(),
      setCursor: db.prepare(
        'INSERT INTO replication_cursors (upstream, cursor, updated_at) VALUES (?, ?, ?) ON CONFLICT (upstream) DO UPDATE SET cursor = max(cursor, excluded.cursor), updated_at = excluded.updated_at',
      ),
      resetCursor: db.prepare('DELETE FROM replication_cursors WHERE upstream = ?'),
      insertRefused: db.prepare('INSERT OR REPLACE INTO replication_refused (id, reason, at) VALUES (?, ?, ?)'),
      isRefused: db.prepare('SELECT 1 FROM replication_refused WHERE id = ?').pluck(),
      insertPeer: db.prepare('INSERT OR IGNORE INTO replication_peers (pubkey) VALUES (?)'),
      listPeers: db.prepare('SELECT pubkey FROM replication_peers').pluck(),
      countRefused: db.prepare('SELECT count(*) FROM replication_refused').pluck(),
      pruneRefused: db.prepare('DELETE FROM replication_refused WHERE id IN (SELECT id FROM replication_refused ORDER BY at ASC LIMIT ?)'),
      deleteTagsBySeq: db.prepare('DELETE FROM tags WHERE seq = ?'),
      seqOfOwnId: db.prepare('SELECT seq, kind FROM events WHERE id = ? AND pubkey = ?'),
      recordDeletedId: db.prepare('INSERT OR IGNORE INTO deleted_ids (id, pubkey) VALUES (?, ?)'),
      addressSeqsUpTo: db.prepare('SELECT seq FROM events WHERE kind = ? AND pubkey = ? AND d_tag = ? AND created_at <= ?').pluck(),
      replaceableSeqsUpTo: db.prepare('SELECT seq FROM events WHERE kind = ? AND pubkey = ? AND created_at <= ?').pluck(),
      recordDeletedAddress: db.prepare(
        `INSERT INTO deleted_addresses (kind, pubkey, d_tag, until) VALUES (?, ?, ?, ?)
         ON CONFLICT (kind, pubkey, d_tag) DO UPDATE SET until = max(until, excluded.until)`,
      ),
      expiredSeqs: db.prepare('SELECT seq FROM events WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT 5000').pluck(),
    };
  }

  /** Queues a verified event; resolves after its transaction has committed (group commit). */
  write(event: VerifiedEvent, replica?: ReplicaWrite): Promise<WriteResult> {
    if (this.#closed) return Promise.resolve({ status: 'rejected', reason: makeReason('error', 'relay is shutting down') });
    return new Promise((resolve) => {
      this.#queue.push(replica ? { event, resolve, replica } : { event, resolve });
      // The window only groups writes under load (the last commit was large and recent); otherwise a
      // write is committed at once, so a lone event does not wait for company that is not coming.
      const busy = this.#lastBatch >= GROUP_MIN_BATCH && performance.now() - this.#lastCommitEnd < this.#windowMs;
      this.#flushSoon(this.#queue.length >= this.#maxBatch || !busy);
    });
  }

  #flushSoon(now: boolean): void {
    if (this.#timer !== undefined && (!now || this.#timerIsImmediate)) return;
    if (this.#timer !== undefined) this.#clearTimer();
    this.#timerIsImmediate = now || this.#windowMs === 0;
    if (this.#timerIsImmediate) this.#timer = setImmediate(() => this.#flushUnlessHeld());
    else this.#timer = setTimeout(() => this.#flushUnlessHeld(), this.#windowMs);
  }

  #clearTimer(): void {
    const t = this.#timer;
    if (t === undefined) return;
    if (typeof (t as NodeJS.Timeout).refresh === 'function') clearTimeout(t as NodeJS.Timeout);
    else clearImmediate(t as NodeJS.Immediate);
    this.#timer = undefined;
  }

  #flushUnlessHeld(): void {
    this.#timer = undefined;
    if (!this.#held) this.flush();
  }

  /** Commits every queued write in one transaction, then notifies and resolves in order. */
  flush(): void {
    this.#clearTimer();
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#lastBatch = batch.length;
      const results: WriteResult[] = [];
      try {
        this.db.transaction(() => {
          for (const w of batch) {
            const r = this.#writeOne(w.event);
            results.push(r);
            if (w.replica) this.#recordReplica(w.replica, r);
          }
        })();
      } catch (err) {
        const reason = makeReason('error', `storage failure: ${(err as { code?: string }).code ?? (err as Error).message}`);
        for (const w of batch) w.resolve({ status: 'rejected', reason });
        continue;
      }
      for (let i = 0; i < batch.length; i++) {
        const r = results[i]!;
        if (r.status === 'stored') {
          if (r.seq > this.#lastSeq) this.#lastSeq = r.seq;
          this.#onStored?.(batch[i]!.event, r.seq, r.raw);
        }
      }
      for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]!);
      this.#sinceCheckpoint += batch.length;
      if (this.#sinceCheckpoint >= CHECKPOINT_EVENTS) this.#checkpoint();
    }
    this.#lastCommitEnd = performance.now();
  }

  #removeSeq(seq: number): void {
    this.#s.deleteTagsBySeq.run(seq);
    this.#s.deleteBySeq.run(seq);
    this.#s.deleteOrigin.run(seq);
  }

  #writeOne(ev: VerifiedEvent): WriteResult {
    const s = this.#s;
    // Replaceable, addressable and deletion events act on other rows before their own insert, so they
    // are probed first; any other event learns it is a duplicate from its insert (no second index walk).
    const probe = ev.kind === Kind.Deletion || isReplaceableKind(ev.kind) || isAddressableKind(ev.kind);
    if (probe && s.known.get(ev.id)) return { status: 'duplicate' };
    if (this.#hasDeletedIds && s.deleted.get(ev.id, ev.pubkey)) {
      return { status: 'rejected', reason: DELETED_REASONS.event };
    }
    let dTag: string | null = null;
    if (isReplaceableKind(ev.kind)) {
      const newest = s.newestReplaceable.get(ev.pubkey, ev.kind) as Newest | undefined;
      if (newest && !isNewer(ev, newest)) {
        return { status: 'rejected', reason: makeReason('duplicate', 'a newer version of this replaceable event is stored') };
      }
      for (const seq of s.replaceableSeqs.all(ev.pubkey, ev.kind) as number[]) this.#removeSeq(seq);
    } else if (isAddressableKind(ev.kind)) {
      dTag = getDTag(ev);
      const until = s.addressDeletedUntil.get(ev.kind, ev.pubkey, dTag) as number | undefined;
      if (until !== undefined && ev.created_at <= until) {
        return { status: 'rejected', reason: DELETED_REASONS.address };
      }
      const newest = s.newestAddressable.get(ev.kind, ev.pubkey, dTag) as Newest | undefined;
      if (newest && !isNewer(ev, newest)) {
        return { status: 'rejected', reason: makeReason('duplicate', 'a newer version of this addressable event is stored') };
      }
      for (const seq of s.addressableSeqs.all(ev.kind, ev.pubkey, dTag) as number[]) this.#removeSeq(seq);
    }
    if (ev.kind === Kind.Deletion) this.#applyDeletion(ev);
    const raw = JSON.stringify(ev);
    const info = (probe ? s.insert : s.insertUnlessKnown).run(ev.id, ev.pubkey, ev.created_at, ev.kind, dTag, getExpiration(ev) ?? null, raw);
    if (info.changes === 0) return { status: 'duplicate' };
    const seq = Number(info.lastInsertRowid);
    // One row per distinct (name, value): a repeated tag would take two rows of a LIMIT.
    let indexed: Set<string> | undefined;
    for (const t of ev.tags) {
      const name = t[0];
      const value = t[1];
      if (name === undefined || name.length !== 1 || value === undefined) continue;
      if (ev.tags.length > 1) {
        const key = name + value;
        if (indexed?.has(key)) continue;
        (indexed ??= new Set()).add(key);
      }
      s.insertTag.run(seq, name, value, ev.created_at);
    }
    for (const fn of this.#inTransaction) fn(ev, seq);
    return { status: 'stored', seq, raw };
  }

  /** NIP-09: removes the author's own events named by `e` and `a` tags, and remembers them. */
  #applyDeletion(ev: VerifiedEvent): void {
    const s = this.#s;
    for (const id of getTagValues(ev, 'e')) {
      if (!/^[0-9a-f]{64}$/.test(id)) continue;
      const own = s.seqOfOwnId.get(id, ev.pubkey) as { seq: number; kind: number } | undefined;
      if (own && own.kind === Kind.Deletion) continue;
      if (own) this.#removeSeq(own.seq);
      s.recordDeletedId.run(id, ev.pubkey);
      this.#hasDeletedIds = true;
    }
    for (const addr of getTagValues(ev, 'a')) {
      const m = /^(\d+):([0-9a-f]{64}):(.*)$/s.exec(addr);
      if (!m || m[2] !== ev.pubkey) continue;
      const kind = Number(m[1]);
      if (isAddressableKind(kind)) {
        for (const seq of s.addressSeqsUpTo.all(kind, ev.pubkey, m[3]!, ev.created_at) as number[]) this.#removeSeq(seq);
        s.recordDeletedAddress.run(kind, ev.pubkey, m[3]!, ev.created_at);
      } else if (isReplaceableKind(kind)) {
        for (const seq of s.replaceableSeqsUpTo.all(kind, ev.pubkey, ev.created_at) as number[]) this.#removeSeq(seq);
      }
    }
  }

  /** A cached filter read in raw mode (rows as arrays). */
  #rowStmt(sql: string): Statement {
    let st = this.#rowStmtCache.get(sql);
    if (!st) {
      st = this.db.prepare(sql).raw(true);
      if (this.#rowStmtCache.size > 500) this.#rowStmtCache.clear();
      this.#rowStmtCache.set(sql, st);
    }
    return st;
  }

  #stmt(sql: string): Statement {
    let st = this.#stmtCache.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      if (this.#stmtCache.size > 500) this.#stmtCache.clear();
      this.#stmtCache.set(sql, st);
    }
    return st;
  }

  /**
   * Runs one filter. The LIMIT written into the SQL is rounded up to a power of two, so few distinct
   * statements serve every limit, and the rows past the limit are dropped here.
   */
  #run(f: Filter, opts: SqlFilterOptions, exact = false): Row[] {
    const want = opts.order.limit;
    const fetch = exact ? want : roundLimit(want);
    const q = buildFilterQuery(f, { ...opts, order: { ...opts.order, limit: fetch } });
    let rows = this.#rowStmt(q.sql).all(...q.params) as Row[];
    if (q.mayRepeat && rows.length > 1) {
      const seen = new Set<number>();
      const unique = rows.filter((r) => !seen.has(r[0]) && seen.add(r[0]));
      // An event repeating the driving tag took more than one row: ask the general plan instead.
      if (unique.length < rows.length && rows.length >= fetch && fetch >= 0 && unique.length < want) {
        return this.#run(f, { ...opts, tagDriver: false }, exact);
      }
      rows = unique;
    }
    return want >= 0 && rows.length > want ? rows.slice(0, want) : rows;
  }

  /** Stored events matching any filter, newest first; `limits[i]` caps filter i. */
  query(filters: readonly Filter[], opts: ReadOptions & { limits?: readonly number[]; maxSeq?: number } = {}): StoredEvent[] {
    return this.#upTo(this.#query(filters, opts, true).rows, opts.maxSeq).map((r) => ({ seq: r[0], raw: r[1] }));
  }

  /** The seqs `query` would answer, in its order, without reading a body (streamed later with `getRaw`). */
  querySeqs(filters: readonly Filter[], opts: ReadOptions & { limits?: readonly number[]; maxSeq?: number } = {}): number[] {
    return this.#upTo(this.#query(filters, opts, false).rows, opts.maxSeq).map((r) => r[0]);
  }

  /**
   * The first events of the answer `query` would give, at most `max`, bodies included, and whether that is the whole
   * answer. A filter whose limit is above `max` is read with LIMIT `max + 1` (one statement text per shape), so a
   * large answer costs at most `max + 1` rows with bodies per filter here; its first `max` events are its first
   * `max` (newest first, as `query` orders them).
   */
  querySmall(
    filters: readonly Filter[],
    max: number,
    opts: ReadOptions & { limits?: readonly number[]; maxSeq?: number } = {},
  ): { events: StoredEvent[]; whole: boolean } {
    const { rows: all, cut } = this.#query(filters, opts, true, max);
    const rows = this.#upTo(all, opts.maxSeq);
    const whole = !cut && rows.length <= max;
    return { events: (whole ? rows : rows.slice(0, max)).map((r) => ({ seq: r[0], raw: r[1] })), whole };
  }

  /** The stored JSON of one event by seq; undefined once it was deleted. */
  getRaw(seq: number): string | undefined {
    return (this.#s.rawBySeq.get(seq) as { raw: string } | undefined)?.raw;
  }

  /** The stored JSON of several events by seq, in the order asked; undefined for those deleted since. */
  getRaws(seqs: readonly number[]): (string | undefined)[] {
    const rows = this.#s.rawsBySeqs.all(JSON.stringify(seqs)) as { seq: number; raw: string }[];
    const bySeq = new Map<number, string>();
    for (const r of rows) bySeq.set(r.seq, r.raw);
    return seqs.map((s) => bySeq.get(s));
  }

  /**
   * Every filter's rows merged, newest first. With `cap`, a filter whose limit is above it (or unlimited) is read
   * with LIMIT `cap + 1` only, and `cut` says whether one of them had more.
   */
  #query(filters: readonly Filter[], opts: ReadOptions & { limits?: readonly number[] }, bodies: boolean, cap?: number): { rows: Row[]; cut: boolean } {
    const now = this.#now();
    let cut = false;
    const read = (f: Filter, i: number): Row[] => {
      const limit = opts.limits?.[i] ?? f.limit ?? 500;
      if (limit === 0) return [];
      if (cap !== undefined && (limit > cap || limit < 0)) {
        const rows = this.#run(f, { now, viewer: opts.viewer, order: { by: 'created', limit: cap + 1 }, bodies }, true);
        if (rows.length > cap) cut = true;
        return rows;
      }
      return this.#run(f, { now, viewer: opts.viewer, order: { by: 'created', limit }, bodies });
    };
    if (filters.length === 1) return { rows: read(filters[0]!, 0), cut };
    const bySeq = new Map<number, Row>();
    filters.forEach((f, i) => {
      for (const r of read(f, i)) bySeq.set(r[0], r);
    });
    return { rows: [...bySeq.values()].sort(newestFirst), cut };
  }

  /** The rows up to `maxSeq`. Asked on the turn that reads lastSeq (the relay's REQ), nothing newer exists: no filtering. */
  #upTo(rows: Row[], maxSeq: number | undefined): Row[] {
    return maxSeq === undefined || maxSeq >= this.#lastSeq ? rows : rows.filter((r) => r[0] <= maxSeq);
  }

  /** Events with seq in (after, until] matching any filter, ascending by seq, at most `limit`. */
  querySeq(filters: readonly Filter[], after: number, until: number | undefined, limit: number, opts: ReadOptions = {}): SeqPage {
    const now = this.#now();
    const take = limit + 1;
    let rows: Row[];
    // One filter's rows come in seq order, each event once (the query groups by seq).
    if (filters.length === 1) rows = this.#run(filters[0]!, { now, viewer: opts.viewer, order: { by: 'seq', after, until, limit: take } });
    else {
      const bySeq = new Map<number, Row>();
      for (const f of filters) {
        for (const r of this.#run(f, { now, viewer: opts.viewer, order: { by: 'seq', after, until, limit: take } })) bySeq.set(r[0], r);
      }
      rows = [...bySeq.values()].sort((a, b) => a[0] - b[0]);
    }
    const more = rows.length > limit;
    const n = Math.min(rows.length, limit);
    const events: StoredEvent[] = new Array(n);
    for (let k = 0; k < n; k++) events[k] = { seq: rows[k]![0], raw: rows[k]![1] };
    const last = events.length > 0 ? events[events.length - 1]!.seq : after;
    // Caught up: the cursor is the newest committed (or bound) seq, so an idle mailbox advances.
    const cursor = more ? last : Math.max(last, Math.min(until ?? this.#lastSeq, this.#lastSeq));
    return { events, cursor, more };
  }

  /** Replication: the cursor and origin of a replicated event, inside its write transaction, whatever became of it. */
  #recordReplica(r: ReplicaWrite, result: WriteResult): void {
    this.#s.setCursor.run(r.upstream, r.seq, this.#now());
    if (result.status === 'stored' && r.origin !== undefined) this.#s.insertOrigin.run(result.seq, r.origin);
  }

  /** Stores a replicated event; its upstream cursor advances in the same transaction (nothing fetched twice after a crash). */
  writeReplicated(event: VerifiedEvent, replica: ReplicaWrite): Promise<WriteResult> {
    return this.write(event, replica);
  }

  /** The committed cursor of an upstream (0 when it was never read). */
  getReplicationCursor(upstream: string): number {
    return (this.#s.getCursor.get(upstream) as number | undefined) ?? 0;
  }

  /** Moves an upstream's cursor forward (past events it examined but did not send); `reset` starts it again from 0. */
  setReplicationCursor(upstream: string, seq: number, reset = false): void {
    if (reset) this.#s.resetCursor.run(upstream);
    else this.#s.setCursor.run(upstream, seq, this.#now());
  }

  /** Remembers a replicated event this relay's policies refused (kept to the newest {@link MAX_REFUSED_KEPT}). */
  recordReplicationRefused(id: string, reason: string): void {
    this.#s.insertRefused.run(id, reason.slice(0, 200), this.#now());
    if (++this.#refusedSincePrune >= 1000) {
      this.#refusedSincePrune = 0;
      const over = (this.#s.countRefused.get() as number) - MAX_REFUSED_KEPT;
      if (over > 0) this.#s.pruneRefused.run(over);
    }
  }

  /** Remembers a relay named in an origin chain. */
  recordReplicationPeer(pubkey: string): void {
    this.#s.insertPeer.run(pubkey);
  }

  /** Every relay ever named in an origin chain here. */
  replicationPeers(): string[] {
    return this.#s.listPeers.all() as string[];
  }

  /** Whether a replicated event with this id was refused here before. */
  isReplicationRefused(id: string): boolean {
    return this.#s.isRefused.get(id) === 1;
  }

  /** The relay a stored event was replicated from (its pubkey), if any. */
  originOf(seq: number): string | undefined {
    return (this.#s.originOf.get(seq) as string | undefined) ?? undefined;
  }

  /** NIP-77 items of one filter (no bodies read), or undefined past `max`. */
  negentropyItems(filter: Filter, max: number, opts: ReadOptions = {}): Array<{ timestamp: number; id: string }> | undefined {
    const rows = this.#run(filter, { now: this.#now(), viewer: opts.viewer, order: { by: 'created', limit: max + 1 }, bodies: false });
    if (rows.length > max) return undefined;
    return rows.map((r) => ({ timestamp: r[2], id: r[3] }));
  }

  /** NIP-45 count over the union of the filters: one SQL COUNT, no event body read. */
  count(filters: readonly Filter[], opts: ReadOptions = {}): number {
    const q = buildCountQuery(filters, { now: this.#now(), viewer: opts.viewer });
    return (this.#stmt(q.sql).get(...q.params) as { n: number }).n;
  }

  /** Whether the id is stored, or was deleted by the given author. */
  isKnown(id: string, pubkey?: string): 'stored' | 'deleted' | undefined {
    if (this.#s.known.get(id)) return 'stored';
    if (pubkey !== undefined && this.#hasDeletedIds && this.#s.deleted.get(id, pubkey)) return 'deleted';
    return undefined;
  }

  /** What the start-up integrity check found so far. */
  get integrity(): IntegrityState {
    return this.#integrity;
  }

  /** Highest committed sequence number (every commit is handed to the listener on its own turn). */
  lastSeq(): number {
    return this.#lastSeq;
  }

  /** The only writer of its file: the listener has seen every commit already. */
  catchUp(): Promise<number> {
    return Promise.resolve(this.#lastSeq);
  }

  /** Deletes events whose NIP-40 expiration has passed. */
  sweepExpired(now = this.#now()): number {
    let total = 0;
    for (;;) {
      const seqs = this.#s.expiredSeqs.all(now) as number[];
      if (seqs.length === 0) return total;
      this.db.transaction(() => {
        for (const seq of seqs) this.#removeSeq(seq);
      })();
      total += seqs.length;
    }
  }

  /** Commits what is queued and closes the database. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.flush();
    clearInterval(this.#checkpointTimer);
    // The worker's connection closes first, so closing this last one checkpoints and removes the WAL.
    await this.#checkpointer?.close();
    this.db.close();
  }
}

/** A limit rounded up to a power of two (-1, 0 and 1 unchanged). */
function roundLimit(n: number): number {
  return n <= 1 ? n : 2 ** Math.ceil(Math.log2(n));
}

function isNewer(ev: { created_at: number; id: string }, stored: { created_at: number; id: string }): boolean {
  return ev.created_at > stored.created_at || (ev.created_at === stored.created_at && ev.id < stored.id);
}
