import type { VerifiedEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import type { Viewer } from './sql-filter.js';

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

/** Storage behind the relay; SQLite is the first backend. */
export interface EventStore {
  /** Queues a verified event; resolves after the transaction holding it has committed. */
  write(event: VerifiedEvent): Promise<WriteResult>;
  /** Replication: writes an event and, in the same transaction, its upstream cursor and origin. */
  writeReplicated(event: VerifiedEvent, replica: ReplicaWrite): Promise<WriteResult>;
  /** Replication: an upstream's committed cursor (0 if never read). */
  getReplicationCursor(upstream: string): number;
  /** Replication: moves an upstream's cursor forward, or (reset) forgets it. */
  setReplicationCursor(upstream: string, seq: number, reset?: boolean): void;
  /** Replication: remembers a replicated event id this relay's policies refused (bounded). */
  recordReplicationRefused(id: string, reason: string): void;
  /** Replication: whether a replicated event id was refused here (NIP-77 repair does not fetch it again). */
  isReplicationRefused(id: string): boolean;
  /** Replication: remembers a relay named in an origin chain (so its connections are checked after a restart). */
  recordReplicationPeer(pubkey: string): void;
  /** Replication: every relay named in an origin chain here. */
  replicationPeers(): string[];
  /** Replication: the origin chain (comma-separated relay pubkeys) of the relay a stored event was replicated from, if any. */
  originOf(seq: number): string | undefined;
  /** Stored events matching any filter, newest first; `limits[i]` caps filter i. */
  query(filters: readonly Filter[], opts?: ReadOptions & { limits?: readonly number[] }): StoredEvent[];
  /** The seqs `query` would answer, in its order, without reading a body: a cursor to stream from. */
  querySeqs(filters: readonly Filter[], opts?: ReadOptions & { limits?: readonly number[] }): number[];
  /** One stored event's JSON by seq; undefined once it is gone (deleted or expired since). */
  getRaw(seq: number): string | undefined;
  /** Events with seq in (after, until] matching any filter, ascending, at most `limit`. */
  querySeq(filters: readonly Filter[], after: number, until: number | undefined, limit: number, opts?: ReadOptions): SeqPage;
  /**
   * NIP-77: the (created_at, id) of every stored event the filter matches, or undefined when more
   * than `max` do. Unordered; the caller sorts.
   */
  negentropyItems(filter: Filter, max: number, opts?: ReadOptions): Array<{ timestamp: number; id: string }> | undefined;
  /** NIP-45 count of stored events matching any filter. */
  count(filters: readonly Filter[], opts?: ReadOptions): number;
  /** Whether the id is stored, or was deleted by `pubkey` (so it need not be verified again). */
  isKnown(id: string, pubkey?: string): 'stored' | 'deleted' | undefined;
  /** Sets the listener called synchronously, in sequence order, right after each event commits. */
  setOnStored(fn: (event: VerifiedEvent, seq: number, raw: string) => void): void;
  /** Highest sequence number committed so far. */
  lastSeq(): number;
  /** Deletes expired events; returns how many. */
  sweepExpired(now: number): number;
  /** Flushes queued writes and closes. */
  close(): Promise<void>;
}
