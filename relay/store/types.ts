import type { Database } from 'better-sqlite3';
import type { VerifiedEvent } from '../../shared/event.js';
import { makeReason } from '../../shared/reason.js';
import type { Filter } from '../../shared/filter.js';
import type { SharedPushWake, SharedPushWakeDeps } from '../push/postgres.js';
import type { IntegrityState } from './integrity.js';
import type { Viewer } from './sql-filter.js';
import type { CompactionJob, CompactionStep } from '../crdt/compaction.js';
import type { MailboxStorage } from '../mailbox/index.js';
import type { StorageFigures } from '../operator/figures.js';
import type { ReplayedReads } from '../policies/later-reads.js';

/** A value now (SQLite answers on the caller's turn) or later (a networked backend). */
export type MaybePromise<T> = T | Promise<T>;

/** Who reads, for private inboxes. */
export interface ReadOptions {
  viewer?: Viewer;
}

/** A stored event: its raw JSON (sent as is) and its relay-local sequence number. */
export interface StoredEvent {
  seq: number;
  raw: string;
}

/** What happened to one write. */
/** The refusals a store's write gives for ids and addresses their author deleted (NIP-09), the same on every store. */
export const DELETED_REASONS = {
  event: makeReason('blocked', 'this event was deleted by its author'),
  address: makeReason('blocked', 'this address was deleted by its author'),
} as const;

export type WriteResult = { status: 'stored'; seq: number; raw: string } | { status: 'duplicate' } | { status: 'rejected'; reason: string };

/** A page of events in ascending sequence order (the sequence extension). */
export interface SeqPage {
  events: StoredEvent[];
  /** Highest sequence number examined: resume after it. */
  cursor: number;
  /** True when more matching events exist past `cursor` (within the requested bound). */
  more: boolean;
}

/** What a replicated write records with the event, in the same transaction. */
export interface ReplicaWrite {
  /** The upstream's key (URL and filter). */
  upstream: string;
  /** The event's sequence number on the upstream: the cursor becomes at least this. */
  seq: number;
  /**
   * The event's origin chain: the relays it came through (NIP-11 pubkeys, comma-separated, nearest first: the
   * upstream, then the upstream's own chain). It is never served to a connection authenticated as one of them.
   */
  origin?: string;
}

/**
 * Replication (relay/replication/): the upstream cursors, refused ids and origin chains kept with the events.
 * SQLite answers at once; PostgreSQL answers later (callers only wait when they got a promise).
 */
export interface ReplicationStore {
  /** Whether the id is stored (a replicated event already here skips verification). */
  isKnown(id: string, pubkey?: string): MaybePromise<'stored' | 'deleted' | undefined>;
  /** Writes an event and, in the same transaction, its upstream cursor and origin. */
  writeReplicated(event: VerifiedEvent, replica: ReplicaWrite): Promise<WriteResult>;
  /** An upstream's committed cursor (0 if never read). */
  getReplicationCursor(upstream: string): MaybePromise<number>;
  /** Moves an upstream's cursor forward, or (reset) forgets it. */
  setReplicationCursor(upstream: string, seq: number, reset?: boolean): MaybePromise<void>;
  /** Remembers a replicated event id this relay's policies refused (bounded). */
  recordReplicationRefused(id: string, reason: string): MaybePromise<void>;
  /** Whether a replicated event id was refused here (NIP-77 repair does not fetch it again). */
  isReplicationRefused(id: string): MaybePromise<boolean>;
  /** Remembers a relay named in an origin chain (so its connections are checked after a restart). */
  recordReplicationPeer(pubkey: string): MaybePromise<void>;
  /** Every relay named in an origin chain here. */
  replicationPeers(): MaybePromise<string[]>;
  /**
   * The origin chain (comma-separated relay pubkeys) of the relay a stored event was replicated from, if any;
   * answered at once for any event just handed to `onStored` or returned by a read of this store (PostgreSQL
   * reads the chains along with those events).
   */
  originOf(seq: number): string | undefined;
  /** NIP-77 items of one filter (see EventStore.negentropyItems). */
  negentropyItems(filter: Filter, max: number, opts?: ReadOptions): MaybePromise<Array<{ timestamp: number; id: string }> | undefined>;
}

/** Reads answered synchronously, on the caller's turn (policies run synchronously and may need them). */
export interface SyncEventReads {
  /** Stored events matching any filter, newest first. */
  query(filters: readonly Filter[], opts?: ReadOptions & { limits?: readonly number[] }): StoredEvent[];
  /** Whether the id is stored, or was deleted by `pubkey`. */
  isKnown(id: string, pubkey?: string): 'stored' | 'deleted' | undefined;
}

/**
 * Relay-local tables in a SQLite database: the mailbox delivery ledger and quota, the wake queue,
 * CRDT compaction and the dashboard's storage figures live there.
 */
export interface LocalTables {
  readonly db: Database;
  /** The database file (for size figures). */
  readonly path: string;
  /** Adds work that commits atomically with each stored event (queueing a wake); quick, never throws. */
  addInTransaction(fn: (event: VerifiedEvent, seq: number) => void): void;
  /** What the start-up integrity check found so far (readiness answers 503 on damage). */
  integrity(): IntegrityState;
  /** Settles when that check is over (at once unless it runs in the background). */
  readonly integrityChecked: Promise<IntegrityState>;
}

/**
 * What a backend provides besides events and the sequence tail, which every backend provides. The
 * relay turns on each subsystem a capability backs and logs, at start, each one it must leave off.
 */
export interface StoreCapabilities {
  /**
   * Synchronous reads: the task and ballot policies, CRDT membership and the mailbox quota's
   * duplicate check run inside synchronous policy hooks.
   */
  readonly syncReads?: SyncEventReads;
  /** Relay-local tables: mailbox ledger, wake queue, CRDT compaction, storage figures. */
  readonly local?: LocalTables;
  /**
   * Where moderation lists and admin state persist (SQLite). Without it they live in memory and are
   * lost at restart.
   */
  readonly adminDb?: Database;
  /** NIP-86 changes shared by every relay on this store (bans, allow lists, kind rules, settings). */
  readonly sharedAdmin?: SharedAdminLog;
  /** Who is online on any relay sharing this store (heartbeat rows with expiry). */
  readonly sharedPresence?: SharedPresence;
  /** Push wake on the shared database: wakes queued in the event's transaction, sent once by one instance. */
  readonly sharedWake?: SharedWakeBackend;
  /** Replication from upstream relays (cursor and origin kept with the events). */
  readonly replication?: ReplicationStore;
  /** The relay's secret key kept in a shared database (one identity for every instance). */
  readonly relayKey?: () => Promise<Uint8Array>;
  /** Rate-limit budgets shared by every relay on this store (per IP and per pubkey, cluster-wide). */
  readonly sharedRates?: SharedRateStore;
  /**
   * Claims shared by every relay on this store: what closes the check-then-insert races of the key
   * event and task policies across instances (relay/policies/later-reads.ts).
   */
  readonly claims?: PolicyClaims;
  /** Compaction of shared documents on this store's own database (a SQLite store compacts through `local`). */
  readonly docCompaction?: DocCompaction;
  /** The agent mailbox (ledger, quota questions, refusal notices, retention) on this store's own database. */
  readonly mailbox?: (replayed: ReplayedReads) => MailboxStorage;
  /** The dashboard's storage figures for a store without local tables (answered from the last reading). */
  readonly storageFigures?: () => StorageFigures;
}

/** Marks the deltas a document snapshot covers to expire (relay/crdt/compaction.ts). */
export interface DocCompaction {
  /** Marks one page of a job (at most `pageSize` deltas examined), starting after `afterSeq`. */
  step(job: CompactionJob, afterSeq: number, pageSize?: number): MaybePromise<CompactionStep>;
  /** Expires an author's snapshot parts of `address` left over from other generations than `generation`. */
  expireStaleParts(address: string, author: string, generation: string, expiresAt: number): MaybePromise<number>;
}

/** Keys an event holds from passing a policy until it is stored or refused (unique across instances). */
export interface PolicyClaims {
  /**
   * Claims every key for event `id`, or none: undefined when they are its now, else the first key
   * another event holds. A claim older than the claim window (60 s) is taken over.
   */
  claim(keys: readonly string[], id: string, now: number): Promise<{ key: string; holder: string } | undefined>;
  /** Gives up the keys `id` holds. */
  release(keys: readonly string[], id: string): Promise<void>;
}

/** One key's exchange with a shared rate budget (relay/policies/shared-rate-limit.ts). */
export interface RateExchange {
  /** The rate (its NIP-11 name). */
  bucket: string;
  /** An IP or a pubkey. */
  key: string;
  /** Tokens per minute, and the bucket's size. */
  cap: number;
  /** Tokens spent on credit since the last exchange (net of refunds): taken from the bucket now, even below zero. */
  charge: number;
  /** Tokens of the instance's lease not spent: put back (up to the cap). */
  back: number;
  /** Tokens asked for, to spend until the next exchange. */
  want: number;
  /** Tokens a grant must leave in the bucket: the credit of every instance. */
  reserve: number;
}

/** What one exchange answered, per row in order, and how many instances are alive. */
export interface RateExchangeResult {
  granted: number[];
  /** Tokens left in each bucket after the grant. */
  tokens: number[];
  instances: number;
}

/** Token buckets in a store shared by several relays, spent by each in leases. */
export interface SharedRateStore {
  /**
   * Records this instance as alive and, in one transaction, charges, puts back and grants for every
   * row (none: only the heartbeat). `aliveMs`: how recently an instance must have exchanged to count.
   */
  exchange(rows: readonly RateExchange[], nowMs: number, aliveMs: number): Promise<RateExchangeResult>;
}

/** Opens push wake on a shared database (and turns on queueing wakes in write transactions). */
export interface SharedWakeBackend {
  open(deps: Omit<SharedPushWakeDeps, 'pool'>): Promise<SharedPushWake>;
  /** Gives `to` the wake registration of `from` (a stored rotation), unless `to` has its own; once across instances. */
  followKey?(from: string, to: string, eventCreated: number): Promise<number>;
}

/** Presence shared by the relays on one database. */
export interface SharedPresence {
  /** Records which agents are authenticated here now (all of them: the heartbeat) or one more. */
  markOnline(pubkeys: readonly string[]): Promise<void>;
  /** This relay's last connection of the agent closed. */
  markOffline(pubkey: string): Promise<void>;
  /** Which of `pubkeys` are online on any relay. */
  onlineOf(pubkeys: readonly string[]): Promise<Set<string>>;
  /** How often `markOnline` must be called with every agent online here. */
  readonly heartbeatMs: number;
}

/** One NIP-86 change in a shared admin log (validated parameters). */
export interface AdminLogEntry {
  pubkey: string;
  method: string;
  params: unknown[];
}

/** A log of NIP-86 changes that every relay on a shared database applies in the same order. */
export interface SharedAdminLog {
  /** Records a change durably (and carries out its effect on shared storage: `banevent` deletes the event). */
  append(entry: AdminLogEntry): Promise<void>;
  /** Adds a function called for every entry, in log order, from the first one on. */
  follow(fn: (entry: AdminLogEntry) => void): void;
  /** Resolves once every entry recorded before the call has been handed to the followers. */
  catchUp(): Promise<void>;
  /** Records a NIP-98 authorisation as used on every instance; false when it already was. */
  claimAuthorization(sig: string, until: number): Promise<boolean>;
}

/**
 * Storage behind the relay. Reads may answer synchronously (SQLite: no promise, no extra turn) or
 * with a promise (a networked backend); callers only wait when they got a promise.
 */
export interface EventStore {
  /** What this backend provides beyond events and the sequence tail. */
  readonly provides: StoreCapabilities;
  /** Queues a verified event; resolves after the transaction holding it has committed. */
  write(event: VerifiedEvent): Promise<WriteResult>;
  /** Stored events matching any filter, newest first; `limits[i]` caps filter i; `maxSeq` as for `querySeqs`. */
  query(filters: readonly Filter[], opts?: ReadOptions & { limits?: readonly number[]; maxSeq?: number }): MaybePromise<StoredEvent[]>;
  /**
   * The seqs `query` would answer, in its order, without reading a body: a cursor to stream from.
   * `maxSeq` leaves out events with a higher seq (they are delivered live instead).
   */
  querySeqs(filters: readonly Filter[], opts?: ReadOptions & { limits?: readonly number[]; maxSeq?: number }): MaybePromise<number[]>;
  /** One stored event's JSON by seq; undefined once it is gone (deleted or expired since). */
  getRaw(seq: number): MaybePromise<string | undefined>;
  /**
   * Several stored events' JSON by seq in one read, in the order asked (undefined for those gone); optional, for
   * stores with synchronous reads (one statement instead of one per event).
   */
  getRaws?(seqs: readonly number[]): (string | undefined)[];
  /**
   * The first `max` events (at most) of the answer `query` would give, bodies included, and whether they are all of
   * it. Optional, for stores with synchronous reads: a small answer, or the head of a large one, in one statement per
   * filter instead of its seqs and then its bodies.
   */
  querySmall?(
    filters: readonly Filter[],
    max: number,
    opts?: ReadOptions & { limits?: readonly number[]; maxSeq?: number },
  ): { events: StoredEvent[]; whole: boolean };
  /** Events with seq in (after, until] matching any filter, ascending, at most `limit`. */
  querySeq(filters: readonly Filter[], after: number, until: number | undefined, limit: number, opts?: ReadOptions): MaybePromise<SeqPage>;
  /**
   * NIP-77: the (created_at, id) of every stored event the filter matches, or undefined when more
   * than `max` do. Unordered; the caller sorts.
   */
  negentropyItems(filter: Filter, max: number, opts?: ReadOptions): MaybePromise<Array<{ timestamp: number; id: string }> | undefined>;
  /** NIP-45 count of stored events matching any filter. */
  count(filters: readonly Filter[], opts?: ReadOptions): MaybePromise<number>;
  /** Whether the id is stored, or was deleted by `pubkey` (so it need not be verified again). */
  isKnown(id: string, pubkey?: string): MaybePromise<'stored' | 'deleted' | undefined>;
  /** Sets the listener called synchronously, in sequence order, for each committed event. */
  setOnStored(fn: (event: VerifiedEvent, seq: number, raw: string) => void): void;
  /**
   * Highest sequence number handed to the `onStored` listener: every event up to it was, in order,
   * and every later one will be. A subscription goes live from it in the same turn.
   */
  lastSeq(): number;
  /**
   * Resolves once the listener has been handed every event committed (by any writer of a shared
   * database) before the call; for a store that is its only writer it resolves at once.
   */
  catchUp(): Promise<number>;
  /** Deletes expired events; returns how many. */
  sweepExpired(now: number): MaybePromise<number>;
  /** Flushes queued writes and closes. */
  close(): Promise<void>;
}

/** Whether a store's answer is still to come. */
export function isPending<T>(v: MaybePromise<T>): v is Promise<T> {
  // instanceof, not a `then` lookup: SQLite's answers are often strings, and a property lookup boxes them.
  return v instanceof Promise;
}
