/**
 * Shared documents over the agent's relays: the transport binding of the CRDT core (client/crdt/),
 * which itself knows no network. See docs/crdt.md, "Documents over the relay".
 */
import * as Y from 'yjs';
import type { EventTemplate, NostrEvent } from '../shared/event.js';
import type { Filter } from '../shared/filter.js';
import { isHistoryReset } from '../shared/history-reset.js';
import { getBackoffDelay, type Timers } from './backoff.js';
import { isSnapshotConsistent } from './crdt/coverage.js';
import { CrdtError } from './crdt/errors.js';
import type { Json } from './crdt/json.js';
import type { LwwMap } from './crdt/lww-map.js';
import type { Register } from './crdt/register.js';
import { SharedDoc, defaultPolicies, onlySnapshotsFrom, type UpdatePolicy } from './crdt/shared-doc.js';
import type { LocalUpdateMeta, RemoteUpdateMeta } from './crdt/transport.js';
import {
  DocKind,
  assembleSnapshot,
  getSnapshotPart,
  makeDocAddress,
  makeMembershipEvent,
  makeSnapshotEvents,
  makeUpdateEvent,
  parseMembershipEvent,
  parseUpdateEvent,
  type SnapshotEnvelope,
} from './crdt/wire.js';
import type { KeyLogs } from './key-logs.js';
import type { MembershipRecord } from './crdt/membership.js';
import type { ClientLogger } from './emitter.js';
import { ClientError } from './errors.js';
import { parsePubkey } from './identity.js';
import type { PublishResult } from './outbox.js';
import type { RelayLink } from './relay-link.js';
import type { AgentStore, DocState } from './store.js';

/** What a document needs from its agent; `Agent.doc` builds it from the agent's own parts. */
export interface DocHost {
  /** The agent's pubkey: the author of every local delta. */
  readonly self: string;
  readonly links: ReadonlyMap<string, RelayLink>;
  readonly store: AgentStore;
  sign(template: EventTemplate): NostrEvent;
  /** Puts a signed event in the durable outbox for every relay; resolves once stored, `acked` once accepted. */
  enqueue(event: NostrEvent): Promise<{ acked: Promise<PublishResult> }>;
  readonly timers: Timers;
  /** Milliseconds since the epoch. */
  now(): number;
  random(): number;
  readonly log: ClientLogger;
  /** The earlier keys of a key's identity (its key event log, as known now): a member's successor key is a member. */
  priorKeys?(pubkey: string): readonly string[];
  /** Follows the key event logs of `keys`; `onMoved(keys)` is told the keys a followed log revealed since. Returns the stop. */
  followKeys?(keys: readonly string[], onMoved: (keys: readonly string[]) => void): () => void;
  /** Reads the key event log of `pubkey` (resolves once known, or known to be absent). */
  resolveKey?(pubkey: string): Promise<unknown>;
  /** This agent's own agent id, when it has a key event log (what `identity: true` opens). */
  readonly aid?: string;
  /** Peers' key event logs (documents addressed by agent id read their owner's). */
  readonly keyLogs?: Pick<KeyLogs, 'getByAid' | 'fetchLog' | 'onChange'>;
  /** Documents addressed by agent id (`identityDocs` of client/identity-docs.ts; createNodeAgent passes it). */
  readonly identityDocs?: IdentityDocs;
}

/**
 * Who owns a document and how its membership records are read and made: by a key (built in), or by an
 * identity (client/identity-docs.ts, passed in, so browser bundles that do not use it do not carry it).
 */
export interface DocOwnership {
  /** The owner the address names: a key, or an agent id. */
  readonly owner: string;
  readonly address: string;
  /** Whether `pubkey` is the owner now. */
  isOwner(pubkey: string): boolean;
  /** The filter of the document's membership records. */
  records(): Filter;
  /** The record an event carries (version: its rank); undefined when it is not the owner's. `later` runs if it may count once more is known. */
  read(ev: NostrEvent, later: () => void): { record: MembershipRecord; enforced: boolean } | undefined;
  /** A new record signed by this agent (an owner key) above `current`; throws ROOST_ERR_CRDT_NOT_OWNER when it cannot be. */
  make(members: string[], enforce: boolean, current: MembershipRecord): NostrEvent;
  /** The owner's keys (their later keys' deltas are fetched again). */
  keys(): string[];
  /** Calls `fn` when the owner's keys may have changed; returns the stop. */
  watch?(fn: () => void): () => void;
}

/** Documents addressed by agent id (client/identity-docs.ts): which identity `identity` names, and its ownership of a document. */
export interface IdentityDocs {
  /** The agent id `identity` names (`true`: the host's own); throws ROOST_ERR_BAD_INPUT when none. */
  aid(host: DocHost, identity: true | string): string;
  /** The ownership of document `name` of `aid` (its owner's log read first when unknown). */
  open(host: DocHost, aid: string, name: string): Promise<DocOwnership>;
}

/** A document owned by one key: `34337:<owner>:<name>`, records kind 34337 by that key. */
function keyOwnership(host: DocHost, owner: string, name: string): DocOwnership {
  const address = makeDocAddress(owner, name);
  return {
    owner,
    address,
    isOwner: (pk) => pk === owner,
    records: () => ({ kinds: [DocKind.Membership], authors: [owner], '#d': [name] }),
    read: (ev) => {
      const parsed = parseMembershipEvent(ev);
      return parsed?.address === address ? parsed : undefined;
    },
    make: (members, enforce, current) =>
      host.sign(makeMembershipEvent(name, members, Math.max(Math.floor(host.now() / 1000), current.version + 1), { enforce })),
    keys: () => [owner],
  };
}

/** Options of `agent.doc(name, opts)`. */
export interface AgentDocOptions {
  /** The document's owner (hex or npub); default this agent. The address is `34337:<owner>:<name>`. */
  owner?: string;
  /**
   * Open the document addressed by its owner's agent id instead of a key (`34339:<aid>:<name>`, docs/identity.md):
   * `true` for this agent's own (it needs a key event log), or another agent's id (64 hex). The address
   * outlives the owner's key rotations: any key that speaks for the identity signs its membership record.
   */
  identity?: true | string;
  /**
   * Owner only: the writers. When they differ from the record in force, the owner publishes a new
   * membership record (through the outbox, so this works offline too).
   */
  members?: readonly string[];
  /** Owner only: ask relays to refuse non-members' events (`["enforce", "members"]`). Default: keep the current record's choice. */
  enforce?: boolean;
  /** Policies every remote update passes (default the core's: members only). */
  policies?: readonly UpdatePolicy[];
  /** Whose snapshots to load and resume after: any member (default) or only the owner. */
  trustSnapshots?: 'members' | 'owner';
  /** Publish a snapshot after this many deltas (anyone's) since the last one; 0 (default) never does on its own. */
  snapshotEvery?: number;
  /** Longest base64 content of one snapshot part (default 60,000, under the relay's content limit). */
  snapshotPartChars?: number;
  /** State and cursors are written at most this often (ms, default 250), and on `flush`/`close`. */
  saveDelayMs?: number;
  /** Told about every remote update a policy refused. */
  onReject?: (reason: string, meta: RemoteUpdateMeta) => void;
}

interface RelayState {
  readonly link: RelayLink;
  readonly subId: string;
  cursor: number;
  sub: { close(): void } | undefined;
  /** The subscription has reached EOSE since the last connect. */
  synced: boolean;
  /** Bumped on every connect and disconnect: async work of an older connection stops. */
  generation: number;
  retries: number;
  retryTimer: unknown;
  /** After resuming from a snapshot: only newer snapshots are read in the stream. */
  snapshotSince: number | undefined;
}

let nextSubId = 0;

/** Opens the document `name` for an agent: loads what was saved, then syncs with every relay. */
export async function openAgentDoc(host: DocHost, name: string, opts: AgentDocOptions = {}): Promise<AgentDoc> {
  const owner = getDocOwner(host, opts);
  const own = opts.identity === undefined ? keyOwnership(host, owner, name) : await (host.identityDocs as IdentityDocs).open(host, owner, name);
  const saved = await host.store.getDoc(own.address);
  const doc = new AgentDoc(host, name, own, opts, saved);
  doc.start();
  return doc;
}

/**
 * The owner a document is addressed by: a key (`owner`, default this agent's), or an agent id (`identity`).
 * Throws ROOST_ERR_BAD_INPUT for both at once, or for `identity` without identityDocs.
 */
export function getDocOwner(host: DocHost, opts: Pick<AgentDocOptions, 'owner' | 'identity'>): string {
  if (opts.identity === undefined) return opts.owner === undefined ? host.self : parsePubkey(opts.owner);
  if (opts.owner !== undefined || !host.identityDocs) throw new ClientError('ROOST_ERR_BAD_INPUT', 'identity needs identityDocs and no owner');
  return host.identityDocs.aid(host, opts.identity);
}

/**
 * A shared document bound to the agent's relays. Every local change becomes one signed delta event
 * (kind 4337) in the agent's durable outbox; remote deltas are applied with a remote origin (never
 * echoed). Each relay is read from a cursor kept durably with the document's state, so a restarted
 * agent resumes where it stopped and an offline one merges what it missed; a newcomer starts from the
 * newest trusted snapshot and reads only the deltas after it. It holds its {@link SharedDoc} (`doc`)
 * rather than extending it, and forwards the document's reading and writing API.
 */
export class AgentDoc {
  /** The document itself (the binding holds it, as a Yjs provider holds its Y.Doc); the methods below forward to it. */
  readonly doc: SharedDoc;
  /** The document's address, `34337:<owner>:<name>` (or `34339:<aid>:<name>` for one addressed by agent id). */
  readonly address: string;
  /** The document's name (the membership record's `d` tag). */
  readonly name: string;
  /** The owner's pubkey, or the owner's agent id when the document is addressed by identity ({@link byIdentity}). */
  readonly owner: string;
  /** True when the document is addressed by its owner's agent id: its owner is whichever key speaks for that identity now. */
  readonly byIdentity: boolean;
  readonly #own: DocOwnership;
  readonly #host: DocHost;
  readonly #opts: AgentDocOptions;
  readonly #relays = new Map<string, RelayState>();
  /** Per relay: members whose deltas from before the cursor must still be fetched. */
  readonly #backfill = new Map<string, Set<string>>();
  #stopFollowing: (() => void) | undefined;
  readonly #resolving = new Set<string>();
  /** Snapshot parts seen in the stream, by author and generation, until complete. */
  readonly #parts = new Map<string, NostrEvent[]>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #syncWaiters = new Set<() => void>();
  readonly #unlisten: Array<() => void> = [];
  readonly #closeListeners: Array<() => void> = [];
  #enforced = false;
  /** The owner's signed record in force, when this replica has seen it. */
  #recordEvent: NostrEvent | undefined;
  #saveTimer: unknown;
  #saveChain: Promise<void> = Promise.resolve();
  #sinceSnapshot = 0;
  #lastSnapshotAt = 0;
  #snapshotting = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  /** Use `agent.doc(name)` (or {@link openAgentDoc}). */
  constructor(host: DocHost, name: string, own: DocOwnership, opts: AgentDocOptions, saved: DocState | undefined) {
    const { owner, address } = own;
    this.byIdentity = opts.identity !== undefined;
    this.owner = owner;
    this.#own = own;
    this.#host = host;
    const trust = opts.trustSnapshots === 'owner' ? [onlySnapshotsFrom((pk) => this.isOwnerKey(pk))] : [];
    this.doc = new SharedDoc({
      docId: address,
      self: host.self,
      membership: saved?.membership ? { owner, members: saved.membership.members, version: saved.membership.version } : { owner },
      policies: [...(opts.policies ?? defaultPolicies), ...trust],
      now: () => host.now(),
      restore: saved?.state,
      onReject: opts.onReject,
      priorKeys: (pk) => host.priorKeys?.(pk) ?? [],
      isOwner: (pk) => own.isOwner(pk),
    });
    this.address = address;
    this.name = name;
    this.#opts = opts;
    this.#enforced = saved?.membership?.enforced ?? false;
    this.#recordEvent = saved?.membership?.event;
    for (const [url, authors] of Object.entries(saved?.backfill ?? {})) this.#backfill.set(url, new Set(authors));
    for (const [url, link] of host.links) {
      this.#relays.set(url, {
        link,
        subId: `doc:${++nextSubId}`,
        cursor: saved?.cursors[url] ?? 0,
        sub: undefined,
        synced: false,
        generation: 0,
        retries: 0,
        retryTimer: undefined,
        snapshotSince: undefined,
      });
    }
    this.#followWriters();
  }

  // --- the SharedDoc API, forwarded ---

  /** The underlying Yjs document. */
  get ydoc(): SharedDoc['ydoc'] {
    return this.doc.ydoc;
  }
  /** The document id (its address). */
  get docId(): string {
    return this.doc.docId;
  }
  /** This replica's pubkey. */
  get self(): string {
    return this.doc.self;
  }
  /** The membership record in force. */
  get membership(): SharedDoc['membership'] {
    return this.doc.membership;
  }
  /** True when this replica may write. */
  get canWrite(): boolean {
    return this.doc.canWrite;
  }
  /** See {@link SharedDoc.isMember}. */
  isMember(pubkey: string): boolean {
    return this.doc.isMember(pubkey);
  }
  /** See {@link SharedDoc.transact}. */
  transact<T>(fn: () => T): T {
    return this.doc.transact(fn);
  }
  /** See {@link SharedDoc.stateVector}. */
  stateVector(): Uint8Array {
    return this.doc.stateVector();
  }
  /** See {@link SharedDoc.diff}. */
  diff(stateVector?: Uint8Array): Uint8Array {
    return this.doc.diff(stateVector);
  }
  /** See {@link SharedDoc.hasPending}. */
  hasPending(): boolean {
    return this.doc.hasPending();
  }
  /** See {@link SharedDoc.encodeState}. */
  encodeState(): Uint8Array {
    return this.doc.encodeState();
  }
  /** See {@link SharedDoc.snapshot}. */
  snapshot(): ReturnType<SharedDoc['snapshot']> {
    return this.doc.snapshot();
  }
  /** See {@link SharedDoc.map}. */
  map<V extends Json = Json>(name: string): LwwMap<V> {
    return this.doc.map<V>(name);
  }
  /** See {@link SharedDoc.set}. */
  set(name: string): ReturnType<SharedDoc['set']> {
    return this.doc.set(name);
  }
  /** See {@link SharedDoc.counters}. */
  counters(name: string): ReturnType<SharedDoc['counters']> {
    return this.doc.counters(name);
  }
  /** See {@link SharedDoc.counter}. */
  counter(name: string): ReturnType<SharedDoc['counter']> {
    return this.doc.counter(name);
  }
  /** See {@link SharedDoc.register}. */
  register<V extends Json = Json>(name: string): Register<V> {
    return this.doc.register<V>(name);
  }
  /** See {@link SharedDoc.status}. */
  status<V extends Json = Json>(pubkey: string = this.doc.self): LwwMap<V> {
    return this.doc.status<V>(pubkey);
  }
  /** See {@link SharedDoc.statusAuthors}. */
  statusAuthors(): string[] {
    return this.doc.statusAuthors();
  }
  /** See {@link SharedDoc.toJSON}. */
  toJSON(): ReturnType<SharedDoc['toJSON']> {
    return this.doc.toJSON();
  }

  /**
   * True when `pubkey` is the owner: the owner key, or, for a document addressed by identity, a key that
   * speaks for the owner identity now by its key event log (current, or rotated out and inside its grace
   * period; never a revoked one).
   */
  isOwnerKey(pubkey: string): boolean {
    return this.#own.isOwner(pubkey);
  }

  /** Starts publishing and reading (called once by {@link openAgentDoc}). */
  start(): void {
    this.doc.connect({ publish: (update, meta) => this.#publishDelta(update, meta) });
    // The owner rotated: the new key's deltas this replica refused before it knew are fetched again.
    const stop = this.#own.watch?.(() => this.#closed || this.#followWriters());
    if (stop) this.#unlisten.push(stop);
    const { members, enforce } = this.#opts;
    if (this.isOwnerKey(this.doc.self) && (members !== undefined || enforce !== undefined)) {
      this.setMembers(members ?? this.doc.membership.members, { enforce });
    }
    for (const rs of this.#relays.values()) {
      this.#unlisten.push(rs.link.on('ready', () => this.#connectRelay(rs)));
      this.#unlisten.push(rs.link.on('disconnected', () => this.#dropRelay(rs)));
      if (rs.link.isReady) this.#connectRelay(rs);
    }
  }

  /** True once every connected relay has sent everything it held for the document (and one is connected). */
  get isSynced(): boolean {
    const ready = [...this.#relays.values()].filter((rs) => rs.link.isReady);
    return ready.length > 0 && ready.every((rs) => rs.synced);
  }

  /** Whether the owner's record asks relays to refuse non-members. */
  get enforced(): boolean {
    return this.#enforced;
  }

  /** The cursor of one relay: the highest sequence number of the document's events this replica holds. */
  cursor(relay: string): number {
    return this.#relays.get(relay)?.cursor ?? 0;
  }

  /** Resolves true once {@link isSynced}, false after `timeoutMs`. */
  whenSynced(timeoutMs = 10_000): Promise<boolean> {
    if (this.isSynced) return Promise.resolve(true);
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = () => {
        this.#syncWaiters.delete(done);
        this.#host.timers.clearTimeout(timer);
        resolve(this.isSynced);
      };
      const timer = this.#host.timers.setTimeout(done, timeoutMs);
      this.#syncWaiters.add(done);
    });
  }

  /**
   * Owner only: publishes a new membership record (the version is its created_at, always above the
   * current one) and applies it here at once. Throws ROOST_ERR_CRDT_NOT_OWNER for anyone else.
   */
  setMembers(members: Iterable<string>, opts: { enforce?: boolean } = {}): void {
    if (!this.isOwnerKey(this.doc.self)) throw new CrdtError('ROOST_ERR_CRDT_NOT_OWNER', `only the owner changes the members of ${this.address}`);
    const list = [...new Set([...members].map((m) => parsePubkey(m)))].filter((m) => m !== this.owner).sort();
    const enforce = opts.enforce ?? this.#enforced;
    const current = this.doc.membership;
    if (current.version > 0 && enforce === this.#enforced && list.join() === current.members.join()) return;
    const event = this.#own.make(list, enforce, current);
    const before = this.#writers();
    this.doc.applyMembership(this.#own.read(event, () => undefined)!.record, this.owner);
    this.#enforced = enforce;
    this.#recordEvent = event;
    this.#backfillAdded(before);
    this.#track(this.#host.enqueue(event).then(({ acked }) => void acked.catch(() => undefined)));
    this.#scheduleSave();
  }

  /**
   * Publishes a snapshot of the whole state (split into parts when large), tagged with this replica's
   * cursor on each relay, so newcomers load it and resume after it; when the owner publishes it, the
   * relay lets the deltas it covers expire. Resolves once every relay accepted every part.
   * Throws ROOST_ERR_CRDT_READ_ONLY for non-members, ROOST_ERR_CRDT_PENDING while updates wait for
   * dependencies.
   */
  async publishSnapshot(): Promise<PublishResult[]> {
    if (!this.doc.canWrite) throw new CrdtError('ROOST_ERR_CRDT_READ_ONLY', `${this.doc.self} is not a member of ${this.address}`);
    const snap = this.doc.snapshot();
    const cursors = new Map<string, number>();
    // A relay whose backfill is outstanding is left out: the state does not hold all it read there yet.
    for (const [url, rs] of this.#relays) if (rs.cursor > 0 && !this.#backfill.get(url)?.size) cursors.set(url, rs.cursor);
    const createdAt = Math.max(this.#nowSeconds(), this.#lastSnapshotAt + 1);
    this.#lastSnapshotAt = createdAt;
    this.#sinceSnapshot = 0;
    const parts = makeSnapshotEvents(this.address, snap, createdAt, this.#opts.snapshotPartChars, cursors).map((t) => this.#host.sign(t));
    const acked: Array<Promise<PublishResult>> = [];
    for (const part of parts) {
      const stored = this.#host.enqueue(part);
      this.#track(stored);
      acked.push((await stored).acked);
    }
    this.#host.log.info({ address: this.address, parts: parts.length, bytes: snap.update.length }, 'snapshot published');
    return Promise.all(acked);
  }

  /** Resolves once every local change so far is in the durable outbox and the state and cursors are saved. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
    await this.#save();
  }

  /** Registers a listener called once the document is closed. */
  onClose(fn: () => void): void {
    this.#closeListeners.push(fn);
  }

  /** Stops syncing, saves state and cursors (unacknowledged deltas stay in the outbox), frees the document. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Same as {@link close}, not awaited. */
  destroy(): void {
    void this.close();
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#stopFollowing?.();
    for (const off of this.#unlisten) off();
    for (const rs of this.#relays.values()) this.#dropRelay(rs);
    for (const w of [...this.#syncWaiters]) w();
    if (this.#saveTimer !== undefined) this.#host.timers.clearTimeout(this.#saveTimer);
    try {
      await this.flush();
    } catch (err) {
      this.#host.log.error({ address: this.address, err: String(err) }, 'document state could not be saved');
    }
    this.doc.destroy();
    for (const fn of this.#closeListeners) fn();
  }

  // --- publishing ---

  #nowSeconds(): number {
    return Math.floor(this.#host.now() / 1000);
  }

  #track<T>(p: Promise<T>): void {
    const tracked = p.then(
      () => undefined,
      (err: unknown) => this.#host.log.error({ address: this.address, err: String(err) }, 'document event could not be queued'),
    );
    this.#inflight.add(tracked);
    void tracked.finally(() => this.#inflight.delete(tracked));
  }

  #publishDelta(update: Uint8Array, meta: LocalUpdateMeta): void {
    const event = this.#host.sign(makeUpdateEvent(this.address, update, meta.clock, this.#nowSeconds()));
    // Refusals reach the agent's 'refused' event; nothing waits for the acknowledgement here.
    this.#track(this.#host.enqueue(event).then(({ acked }) => void acked.catch(() => undefined)));
    this.#countDelta();
    this.#scheduleSave();
  }

  #countDelta(): void {
    const every = this.#opts.snapshotEvery ?? 0;
    if (every <= 0 || ++this.#sinceSnapshot < every || this.#snapshotting || !this.doc.canWrite || this.doc.hasPending()) return;
    this.#snapshotting = true;
    this.publishSnapshot()
      .catch((err: unknown) => this.#host.log.warn({ address: this.address, err: String(err) }, 'automatic snapshot failed'))
      .finally(() => (this.#snapshotting = false));
  }

  // --- reading ---

  #filters(rs: RelayState): Filter[] {
    const after = rs.cursor;
    const snapshots: Filter = { kinds: [DocKind.Snapshot], '#a': [this.address], seq_after: after };
    // The snapshot just resumed after would come again (its parts are stored after the cursor it names).
    if (rs.snapshotSince !== undefined) snapshots.since = rs.snapshotSince;
    return [{ ...this.#own.records(), seq_after: after }, { kinds: [DocKind.Update], '#a': [this.address], seq_after: after }, snapshots];
  }

  /**
   * On every connect, in order: the owner's current record (a record newer than the saved one may add
   * members), deltas of members added after the cursor had passed, a trusted snapshot newer than the
   * cursor (applied, and the cursor moved to what its author had read), then the stream from the cursor.
   */
  #connectRelay(rs: RelayState): void {
    if (this.#closed) return;
    const generation = ++rs.generation;
    rs.synced = false;
    if (rs.retryTimer !== undefined) this.#host.timers.clearTimeout(rs.retryTimer);
    rs.retryTimer = undefined;
    const current = () => !this.#closed && rs.generation === generation && rs.link.isReady;
    void (async () => {
      try {
        const records = await rs.link.query([this.#own.records()]);
        if (!current()) return;
        for (const ev of records) this.#onMembership(ev);
        await this.#runBackfill(rs, current);
        if (!current()) return;
        const parts = await rs.link.query([{ kinds: [DocKind.Snapshot], '#a': [this.address], seq_after: rs.cursor }]);
        if (!current()) return;
        this.#jumpToSnapshot(rs, parts);
        rs.sub = rs.link.subscribe(rs.subId, {
          filters: () => this.#filters(rs),
          onEvent: (ev, seq) => this.#onStreamEvent(rs, ev, seq),
          onEose: (cursor) => this.#onEose(rs, cursor),
          onClosed: (reason) => this.#onClosed(rs, reason),
        });
      } catch (err) {
        if (!current()) return;
        const reason = (err as { details?: { reason?: string } }).details?.reason;
        if (reason !== undefined && isHistoryReset(reason)) return this.#onHistoryReset(rs);
        this.#host.log.warn({ address: this.address, relay: rs.link.url, err: String(err) }, 'document catch-up failed; retrying');
        this.#retry(rs);
      }
    })();
  }

  #dropRelay(rs: RelayState): void {
    rs.generation++;
    rs.synced = false;
    rs.sub?.close();
    rs.sub = undefined;
    if (rs.retryTimer !== undefined) this.#host.timers.clearTimeout(rs.retryTimer);
    rs.retryTimer = undefined;
  }

  #retry(rs: RelayState): void {
    const delay = getBackoffDelay(rs.retries++, 500, 30_000, () => this.#host.random()) + 100;
    rs.retryTimer = this.#host.timers.setTimeout(() => {
      rs.retryTimer = undefined;
      if (rs.link.isReady) this.#connectRelay(rs);
    }, delay);
  }

  #onStreamEvent(rs: RelayState, ev: NostrEvent, seq: number | undefined): void {
    if (this.#closed) return;
    if (ev.kind === DocKind.Membership || ev.kind === DocKind.IdentityMembership) this.#onMembership(ev);
    else if (ev.kind === DocKind.Update) this.#onDelta(ev);
    else if (ev.kind === DocKind.Snapshot) this.#onSnapshotPart(rs, ev);
    if (seq !== undefined && seq > rs.cursor) {
      rs.cursor = seq;
      this.#scheduleSave();
    }
  }

  #onEose(rs: RelayState, cursor: number | undefined): void {
    if (this.#closed) return;
    if (cursor !== undefined && cursor > rs.cursor) {
      rs.cursor = cursor;
      this.#scheduleSave();
    }
    rs.synced = true;
    rs.retries = 0;
    for (const key of [...this.#parts.keys()]) void this.#completeParts(rs, key);
    // A record read in the backlog may have added members; their earlier deltas are fetched now.
    if (this.#backfill.get(rs.link.url)?.size) {
      const generation = rs.generation;
      void this.#runBackfill(rs, () => !this.#closed && rs.generation === generation && rs.link.isReady).catch(() => undefined);
    }
    if (this.isSynced) for (const w of [...this.#syncWaiters]) w();
  }

  #onClosed(rs: RelayState, reason: string): void {
    rs.sub = undefined;
    if (this.#closed) return;
    if (isHistoryReset(reason)) return this.#onHistoryReset(rs);
    this.#host.log.warn({ address: this.address, relay: rs.link.url, reason }, 'document subscription closed by the relay; retrying');
    rs.generation++;
    this.#retry(rs);
  }

  /**
   * The relay's history was reset (its newest seq is behind our cursor): read it again from 0; the
   * state keeps what it had. A member republishes a snapshot, so the relay's readers can start again.
   */
  #onHistoryReset(rs: RelayState): void {
    this.#host.log.warn({ address: this.address, relay: rs.link.url, cursor: rs.cursor }, 'relay refused the document cursor; resuming from 0');
    rs.generation++;
    rs.cursor = 0;
    rs.snapshotSince = undefined;
    this.#scheduleSave();
    this.#connectRelay(rs);
    // The owner's signed record first (any replica may hand it over), so the relay and its readers know the writers.
    if (this.#recordEvent) this.#track(this.#host.enqueue(this.#recordEvent).then(({ acked }) => void acked.catch(() => undefined)));
    if (this.doc.canWrite && !this.doc.hasPending()) {
      this.publishSnapshot().catch((err: unknown) => this.#host.log.warn({ address: this.address, err: String(err) }, 'snapshot after a relay reset failed'));
    }
  }

  #onDelta(ev: NostrEvent): void {
    const env = parseUpdateEvent(ev);
    // An event may name several documents in `a` tags; it belongs to the one its first names.
    if (!env || env.address !== this.address) return;
    if (this.doc.receive(env.update, { author: ev.pubkey, kind: 'delta', id: ev.id })) this.#countDelta();
    else if (!this.doc.isMember(ev.pubkey)) this.#resolveAuthor(ev.pubkey);
  }

  /** An author refused as a non-member may be a member's new key this replica has not heard of: ask its log. */
  #resolveAuthor(author: string): void {
    const resolving = this.#host.resolveKey?.(author);
    if (!resolving || this.#resolving.has(author)) return;
    this.#resolving.add(author);
    void resolving
      .then(() => {
        if (!this.#closed && this.doc.isMember(author)) this.#backfillKeys([author]);
      })
      .catch(() => undefined)
      .finally(() => this.#resolving.delete(author));
  }

  #onMembership(ev: NostrEvent): void {
    const parsed = this.#own.read(ev, () => this.#closed || this.#onMembership(ev));
    if (!parsed) return;
    const before = this.#writers();
    if (!this.doc.applyMembership(parsed.record, this.owner)) {
      if (parsed.record.version === this.doc.membership.version && this.#recordEvent === undefined) {
        this.#recordEvent = ev;
        this.#scheduleSave();
      }
      return;
    }
    this.#enforced = parsed.enforced;
    this.#recordEvent = ev;
    this.#backfillAdded(before);
    this.#scheduleSave();
  }

  #writers(): Set<string> {
    return new Set([...this.#own.keys(), ...this.doc.membership.members]);
  }

  /** Deltas of new members that a relay sent before the record arrived were refused: fetch them again. */
  #backfillAdded(before: ReadonlySet<string>): void {
    this.#followWriters();
    this.#backfillKeys(this.doc.membership.members.filter((m) => !before.has(m)));
  }

  /**
   * Follows the writers' key event logs: when one rotates, the deltas its new key wrote before this
   * replica saw the rotation (refused then) are fetched again.
   */
  #followWriters(): void {
    this.#stopFollowing?.();
    this.#stopFollowing = this.#host.followKeys?.([...this.#writers()], (keys) => {
      if (!this.#closed) this.#backfillKeys(keys);
    });
  }

  #backfillKeys(added: readonly string[]): void {
    if (added.length === 0) return;
    for (const [url, rs] of this.#relays) {
      if (rs.cursor === 0) continue;
      const set = this.#backfill.get(url) ?? new Set<string>();
      for (const m of added) set.add(m);
      this.#backfill.set(url, set);
      if (rs.synced) {
        const generation = rs.generation;
        void this.#runBackfill(rs, () => !this.#closed && rs.generation === generation && rs.link.isReady).catch(() => undefined);
      }
    }
  }

  async #runBackfill(rs: RelayState, current: () => boolean): Promise<void> {
    const authors = this.#backfill.get(rs.link.url);
    if (!authors || authors.size === 0) return;
    const list = [...authors];
    const events = await rs.link.query([{ kinds: [DocKind.Update], '#a': [this.address], authors: list }], 30_000);
    if (!current()) return;
    for (const ev of events.sort((a, b) => a.created_at - b.created_at)) this.#onDelta(ev);
    for (const m of list) authors.delete(m);
    if (authors.size === 0) this.#backfill.delete(rs.link.url);
    this.#scheduleSave();
  }

  #trusts(author: string): boolean {
    return this.doc.isMember(author) && (this.#opts.trustSnapshots !== 'owner' || this.isOwnerKey(author));
  }

  /**
   * Takes a trusted, consistent snapshot unless this replica already holds everything it covers;
   * returns whether the replica now holds it.
   */
  #takeSnapshot(env: SnapshotEnvelope): boolean {
    if (!this.#trusts(env.author)) return false;
    if (!isSnapshotConsistent(env.update, env.stateVector)) {
      this.#host.log.warn({ address: this.address, author: env.author }, 'snapshot content does not match its sv tag; ignored');
      return false;
    }
    this.#sinceSnapshot = 0;
    const mine = Y.decodeStateVector(this.doc.stateVector());
    const covered = [...env.stateVector].every(([client, clock]) => (mine.get(client) ?? 0) >= clock);
    return covered || this.doc.receive(env.update, { author: env.author, kind: 'snapshot' });
  }

  /** Of the snapshots newer than the cursor, takes the one that lets this relay's cursor move furthest. */
  #jumpToSnapshot(rs: RelayState, parts: NostrEvent[]): void {
    const byAuthor = new Map<string, NostrEvent[]>();
    for (const ev of parts) byAuthor.set(ev.pubkey, [...(byAuthor.get(ev.pubkey) ?? []), ev]);
    const candidates = [...byAuthor.values()]
      .map((evs) => assembleSnapshot(this.address, evs))
      .filter((env): env is SnapshotEnvelope => env !== undefined && (env.cursors.get(rs.link.url) ?? 0) > rs.cursor && this.#trusts(env.author))
      .sort((a, b) => b.cursors.get(rs.link.url)! - a.cursors.get(rs.link.url)!);
    for (const env of candidates) {
      if (!this.#takeSnapshot(env)) continue;
      rs.cursor = env.cursors.get(rs.link.url)!;
      rs.snapshotSince = env.createdAt + 1;
      this.#host.log.info({ address: this.address, relay: rs.link.url, cursor: rs.cursor, author: env.author }, 'resuming after a snapshot');
      this.#scheduleSave();
      return;
    }
  }

  #onSnapshotPart(rs: RelayState, ev: NostrEvent): void {
    const part = getSnapshotPart(ev);
    if (!part || !this.#trusts(ev.pubkey)) return;
    const key = `${ev.pubkey}\u0000${part.id}`;
    const list = this.#parts.get(key) ?? [];
    list.push(ev);
    this.#parts.set(key, list);
    const env = assembleSnapshot(this.address, list);
    if (env) {
      this.#parts.delete(key);
      this.#takeSnapshot(env);
    } else if (rs.synced) void this.#completeParts(rs, key);
  }

  /** Fetches the missing parts of a snapshot seen only in part (its first parts were behind the cursor). */
  async #completeParts(rs: RelayState, key: string): Promise<void> {
    const list = this.#parts.get(key);
    if (!list || !rs.link.isReady) return;
    this.#parts.delete(key);
    try {
      const more = await rs.link.query([{ kinds: [DocKind.Snapshot], '#a': [this.address], authors: [list[0]!.pubkey] }]);
      if (this.#closed) return;
      const env = assembleSnapshot(this.address, [...list, ...more]);
      if (env) this.#takeSnapshot(env);
    } catch (err) {
      this.#host.log.debug({ address: this.address, err: String(err) }, 'snapshot parts could not be fetched');
    }
  }

  // --- saving ---

  #scheduleSave(): void {
    if (this.#saveTimer !== undefined || this.#closed) return;
    this.#saveTimer = this.#host.timers.setTimeout(() => {
      this.#saveTimer = undefined;
      this.#save().catch((err: unknown) => this.#host.log.error({ address: this.address, err: String(err) }, 'document state could not be saved'));
    }, this.#opts.saveDelayMs ?? 250);
  }

  /**
   * Writes state, cursors and membership together. The state is encoded first; the write waits for
   * the outbox entries of every local delta it holds, so a saved state never holds a local change that
   * a crash could keep out of the outbox.
   */
  #save(): Promise<void> {
    this.#saveChain = this.#saveChain.then(async () => {
      if (this.doc.ydoc.isDestroyed) return;
      const m = this.doc.membership;
      const record: DocState = {
        state: this.doc.encodeState(),
        cursors: Object.fromEntries([...this.#relays].map(([url, rs]) => [url, rs.cursor])),
        membership: { members: [...m.members], version: m.version, enforced: this.#enforced, ...(this.#recordEvent ? { event: this.#recordEvent } : {}) },
        backfill: Object.fromEntries([...this.#backfill].map(([url, set]) => [url, [...set]])),
      };
      await Promise.allSettled([...this.#inflight]);
      await this.#host.store.putDoc(this.address, record);
    });
    return this.#saveChain;
  }
}
