import * as Y from 'yjs';
import { AddWinsSet } from './add-wins-set.js';
import { Counter, CounterMap } from './counter.js';
import { CrdtError } from './errors.js';
import { sortJson, type Json } from './json.js';
import { LwwMap } from './lww-map.js';
import { acceptMembership, isMemberOf, makeMembership, type MembershipRecord } from './membership.js';
import { Register } from './register.js';
import type { ClockRange, DocTransport, LocalUpdateMeta, RemoteUpdateMeta } from './transport.js';
import type { ViewContext } from './view-context.js';

/** Decides whether a remote update may be applied; returns a rejection reason (NIP-01 prefix) or undefined. */
export type UpdatePolicy = (update: Uint8Array, meta: RemoteUpdateMeta, doc: SharedDoc) => string | undefined;

/** Rejects updates whose verified author is not the owner or a member. */
export const rejectNonMembers: UpdatePolicy = (_update, meta, doc) => (doc.isMember(meta.author) ? undefined : `blocked: ${meta.author} is not a member`);

/**
 * Rejects snapshots unless `isTrusted(author)` (e.g. only the owner): a snapshot carries everyone's structs
 * on its signer's word, so a newcomer may want to take it only from someone it trusts more than any member.
 */
export function onlySnapshotsFrom(isTrusted: (author: string) => boolean): UpdatePolicy {
  return (_update, meta) => (meta.kind !== 'snapshot' || isTrusted(meta.author) ? undefined : `restricted: snapshot from untrusted ${meta.author}`);
}

/** The policies a document runs when none are given. */
export const defaultPolicies: readonly UpdatePolicy[] = Object.freeze([rejectNonMembers]);

/** Options of {@link createSharedDoc}. */
export interface SharedDocOptions {
  /** Opaque document id, handed to transports (for Nostr: the membership address, see wire.ts). */
  docId: string;
  /** This replica's pubkey: the author transports sign local deltas with. */
  self: string;
  /** Initial membership: the owner's record, or just the owner (then `members` lists the writers, version 0). */
  membership: MembershipRecord | { owner: string; members?: Iterable<string> };
  /** Checks run on every remote update, first rejection wins. Default: {@link defaultPolicies}. */
  policies?: readonly UpdatePolicy[];
  /** Wall clock in milliseconds for LWW timestamps. Default `Date.now`. */
  now?: () => number;
  /** Yjs client id. Random by default; set it only for seeded tests, never reuse one across sessions. */
  clientId?: number;
  /** Locally persisted state (from `encodeState()`), loaded before anything else; not published, not checked. */
  restore?: Uint8Array;
  /** Told about every rejected remote update. */
  onReject?: (reason: string, meta: RemoteUpdateMeta) => void;
  /** The earlier keys of `pubkey`'s identity (its key event log): a listed member's successor key is a member. */
  priorKeys?: (pubkey: string) => readonly string[];
  /**
   * For a document owned by an identity rather than a key (the record's `owner` is then its agent id):
   * whether `pubkey` speaks for the owner now (per its key event log).
   */
  isOwner?: (pubkey: string) => boolean;
}

/** A full-state update plus the state vector it covers: what a newcomer loads instead of the whole history. */
export interface DocSnapshot {
  update: Uint8Array;
  stateVector: Map<number, number>;
}

/** Marks a remote application so the local-update handler does not echo it. */
export class RemoteOrigin {
  constructor(readonly meta: RemoteUpdateMeta) {}
}

/** True when a Yjs transaction origin is a remote application made by {@link SharedDoc.receive}. */
export function isRemoteOrigin(origin: unknown): origin is RemoteOrigin {
  return origin instanceof RemoteOrigin;
}

const RESTORE_ORIGIN = Symbol('roost-crdt-restore');
const TICK_ORIGIN = Symbol('roost-crdt-tick');
const TICK_MAP = 'sys:tick';
const PREFIX = { map: 'lww:', set: 'set:', counters: 'ctr:', register: 'reg:', status: 'status:' } as const;

/**
 * One shared document: a Y.Doc, its membership, its typed views, and the transports it publishes to.
 * It knows nothing about networks: local transactions become binary deltas handed to `publish`, remote ones
 * come in through `receive` and are applied with a {@link RemoteOrigin}, so they are never echoed.
 */
export class SharedDoc {
  /** The underlying Yjs document (for Y.Text, Y.Array and other types the typed API does not cover). */
  readonly ydoc: Y.Doc;
  /** Opaque document id. */
  readonly docId: string;
  /** This replica's pubkey. */
  readonly self: string;
  #membership: MembershipRecord;
  readonly #policies: readonly UpdatePolicy[];
  readonly #priorKeys: (pubkey: string) => readonly string[];
  readonly #isOwner: (pubkey: string) => boolean;
  readonly #now: () => number;
  readonly #onReject: ((reason: string, meta: RemoteUpdateMeta) => void) | undefined;
  readonly #transports = new Map<DocTransport, (() => void) | undefined>();
  readonly #views = new Map<string, unknown>();
  #held: Uint8Array[] = [];
  #tick = 0;

  /** Use {@link createSharedDoc}. */
  constructor(options: SharedDocOptions) {
    this.docId = options.docId;
    this.self = options.self;
    const m = options.membership;
    this.#membership = 'version' in m ? makeMembership(m.owner, m.members, m.version) : makeMembership(m.owner, m.members ?? []);
    this.#policies = options.policies ?? defaultPolicies;
    this.#priorKeys = options.priorKeys ?? (() => []);
    this.#isOwner = options.isOwner ?? (() => false);
    this.#now = options.now ?? Date.now;
    this.#onReject = options.onReject;
    this.ydoc = new Y.Doc();
    if (options.clientId !== undefined) this.ydoc.clientID = options.clientId;
    if (options.restore) Y.applyUpdate(this.ydoc, options.restore, RESTORE_ORIGIN);
    this.ydoc.on('update', this.#onUpdate);
  }

  #onUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin instanceof RemoteOrigin || origin === RESTORE_ORIGIN) return;
    const client = this.ydoc.clientID;
    const { from, to } = Y.parseUpdateMeta(update);
    if (!to.has(client)) {
      // A delete-only transaction creates no struct, so no state vector could ever show it was seen. Give it
      // one (a tick) in a follow-up transaction, which Yjs runs before the outer transact returns.
      this.#held.push(update);
      this.ydoc.transact(() => this.ydoc.getMap(TICK_MAP).set('t', ++this.#tick), TICK_ORIGIN);
      return;
    }
    let delta = update;
    if (origin === TICK_ORIGIN && this.#held.length > 0) {
      delta = Y.mergeUpdates([...this.#held, update]);
      this.#held = [];
    }
    const clock: ClockRange = { client, from: from.get(client)!, to: to.get(client)! };
    const meta: LocalUpdateMeta = { docId: this.docId, author: this.self, clock };
    for (const t of this.#transports.keys()) t.publish(delta, meta);
  };

  /** Publishes local deltas to `transport` and, if it can, takes remote updates from it; returns a disconnect. */
  connect(transport: DocTransport): () => void {
    if (!this.#transports.has(transport)) {
      this.#transports.set(
        transport,
        transport.attach?.((u, m) => this.receive(u, m)),
      );
    }
    return () => {
      const detach = this.#transports.get(transport);
      this.#transports.delete(transport);
      detach?.();
    };
  }

  /**
   * Applies a remote update after the policies accept it; returns whether it was applied. Duplicates are
   * harmless; updates whose dependencies are missing wait inside Yjs until the dependencies arrive.
   */
  receive(update: Uint8Array, meta: RemoteUpdateMeta): boolean {
    for (const policy of this.#policies) {
      const reason = policy(update, meta, this);
      if (reason !== undefined) {
        this.#onReject?.(reason, meta);
        return false;
      }
    }
    try {
      Y.applyUpdate(this.ydoc, update, new RemoteOrigin(meta));
    } catch {
      this.#onReject?.('invalid: malformed update', meta);
      return false;
    }
    return true;
  }

  /** Runs `fn` as one local transaction: one delta, one observer round. */
  transact<T>(fn: () => T): T {
    let out!: T;
    this.ydoc.transact(() => {
      out = fn();
    });
    return out;
  }

  /** The current membership record. */
  get membership(): MembershipRecord {
    return this.#membership;
  }

  /** True when `pubkey` is the owner or a member, or the successor key of a member (`priorKeys`). */
  isMember(pubkey: string): boolean {
    if (isMemberOf(this.#membership, pubkey) || this.#isOwner(pubkey)) return true;
    const record = this.#membership;
    return this.#priorKeys(pubkey).some((k) => isMemberOf(record, k));
  }

  /** True when this replica may write (it is a member). */
  get canWrite(): boolean {
    return this.isMember(this.self);
  }

  /** Takes a newer membership record signed by the owner (`author` is the verified signer); returns whether it did. */
  applyMembership(record: MembershipRecord, author: string): boolean {
    const next = acceptMembership(this.#membership, record, author);
    if (next) this.#membership = next;
    return next !== undefined;
  }

  /** Yjs state vector: what this replica has, for a peer to diff against. */
  stateVector(): Uint8Array {
    return Y.encodeStateVector(this.ydoc);
  }

  /** Everything this replica has that a peer with `stateVector` lacks (whole state when omitted). */
  diff(stateVector?: Uint8Array): Uint8Array {
    return Y.encodeStateAsUpdate(this.ydoc, stateVector);
  }

  /** True while some received structs or deletions wait for dependencies that have not arrived. */
  hasPending(): boolean {
    return this.ydoc.store.pendingStructs !== null || this.ydoc.store.pendingDs !== null;
  }

  /** The full state for local persistence (pass back as `restore`). */
  encodeState(): Uint8Array {
    return Y.encodeStateAsUpdate(this.ydoc);
  }

  /**
   * A compaction snapshot: the full state and the state vector it covers. Refuses (ROOST_ERR_CRDT_PENDING)
   * while updates wait for dependencies, since their deletions would be covered by the vector but missing.
   */
  snapshot(): DocSnapshot {
    if (this.hasPending()) throw new CrdtError('ROOST_ERR_CRDT_PENDING', 'cannot snapshot while updates wait for dependencies');
    return { update: Y.encodeStateAsUpdate(this.ydoc), stateVector: Y.decodeStateVector(Y.encodeStateVector(this.ydoc)) };
  }

  #context(guard: () => void): ViewContext {
    return { ydoc: this.ydoc, now: this.#now, assertWritable: guard };
  }

  #memberGuard = (): void => {
    if (!this.canWrite) throw new CrdtError('ROOST_ERR_CRDT_READ_ONLY', `${this.self} is not a member of ${this.docId}`);
  };

  #ymap(root: string): Y.Map<unknown> {
    try {
      return this.ydoc.getMap(root);
    } catch (err) {
      throw new CrdtError('ROOST_ERR_CRDT_TYPE_CLASH', `${root} exists with another type`, { cause: err });
    }
  }

  #view<T>(root: string, make: (ymap: Y.Map<unknown>) => T): T {
    let v = this.#views.get(root) as T | undefined;
    if (v === undefined) {
      v = make(this.#ymap(root));
      this.#views.set(root, v);
    }
    return v;
  }

  /** A last-writer-wins map named `name` (task boards, settings). */
  map<V extends Json = Json>(name: string): LwwMap<V> {
    return this.#view(PREFIX.map + name, (y) => new LwwMap<V>(y, this.#context(this.#memberGuard)));
  }

  /** An add-wins set of strings named `name` (peer sets). */
  set(name: string): AddWinsSet {
    return this.#view(PREFIX.set + name, (y) => new AddWinsSet(y, this.#context(this.#memberGuard)));
  }

  /** A family of grow/shrink counters named `name`, keyed e.g. by peer pubkey (coupling, trust). */
  counters(name: string): CounterMap {
    return this.#view(PREFIX.counters + name, (y) => new CounterMap(y, this.#context(this.#memberGuard)));
  }

  /** A single grow/shrink counter named `name`. */
  counter(name: string): Counter {
    return new Counter(this.counters(name));
  }

  /** A last-writer-wins register named `name`. */
  register<V extends Json = Json>(name: string): Register<V> {
    return new Register(this.#view(PREFIX.register + name, (y) => new LwwMap<V>(y, this.#context(this.#memberGuard))));
  }

  /**
   * The status map (mood, energy, capabilities...) of agent `pubkey`, default this replica. Everyone reads
   * every status; writing one that is not yours throws ROOST_ERR_CRDT_NOT_OWNER (an API rule, not a proof:
   * see docs/crdt.md on what a malicious member can do).
   */
  status<V extends Json = Json>(pubkey: string = this.self): LwwMap<V> {
    return this.#view(
      PREFIX.status + pubkey,
      (y) =>
        new LwwMap<V>(
          y,
          this.#context(() => {
            if (pubkey !== this.self) throw new CrdtError('ROOST_ERR_CRDT_NOT_OWNER', `status of ${pubkey} belongs to its agent`);
            this.#memberGuard();
          }),
        ),
    );
  }

  #rootNames(prefix: string): string[] {
    const out: string[] = [];
    for (const name of this.ydoc.share.keys()) if (name.startsWith(prefix)) out.push(name.slice(prefix.length));
    return out.sort();
  }

  /** Pubkeys that have a status in this document, sorted. */
  statusAuthors(): string[] {
    return this.#rootNames(PREFIX.status).filter((pubkey) => this.status(pubkey).size > 0);
  }

  /** The typed state as plain JSON with sorted keys, empty views left out: equal on replicas that saw the same updates. */
  toJSON(): Record<string, Json> {
    // a root type exists wherever it was merely looked at; only content counts
    const isEmpty = (j: Json) => j === null || (typeof j === 'object' && Object.keys(j).length === 0);
    const group = <T extends { toJSON(): Json }>(prefix: string, get: (name: string) => T): Record<string, Json> =>
      Object.fromEntries(
        this.#rootNames(prefix)
          .map((n) => [n, get(n).toJSON()] as const)
          .filter(([, j]) => !isEmpty(j)),
      );
    return sortJson({
      status: group(PREFIX.status, (n) => this.status(n)),
      maps: group(PREFIX.map, (n) => this.map(n)),
      sets: group(PREFIX.set, (n) => this.set(n)),
      counters: group(PREFIX.counters, (n) => this.counters(n)),
      registers: group(PREFIX.register, (n) => ({ toJSON: () => this.register(n).get() ?? null })),
    }) as Record<string, Json>;
  }

  /** Disconnects every transport and frees the Y.Doc. */
  destroy(): void {
    for (const detach of this.#transports.values()) detach?.();
    this.#transports.clear();
    this.ydoc.off('update', this.#onUpdate);
    this.ydoc.destroy();
  }
}

/** Creates a shared document over a fresh Y.Doc (see {@link SharedDocOptions}). */
export function createSharedDoc(options: SharedDocOptions): SharedDoc {
  return new SharedDoc(options);
}
