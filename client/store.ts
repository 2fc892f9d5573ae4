import type { NostrEvent } from '../shared/event.js';
import { decodeBase64, encodeBase64 } from './crdt/base64.js';
import type { KeyValueStorage } from './identity.js';

/** An event waiting in the outbox, with the relays that have not settled it yet. */
export interface OutboxEntry {
  event: NostrEvent;
  relays: string[];
}

/**
 * A message held for a direct link: kept from just before it goes out over the link until the peer
 * acknowledges it (or the relay path takes it), so a sender that dies meanwhile publishes it through
 * the relays on its next start. `data` is the NIP-17 rumor as JSON; `id` its id.
 */
export interface ParkedMessage {
  peer: string;
  id: string;
  data: string;
}

/** What an agent keeps of one shared document between runs (see client/crdt-relay.ts). */
export interface DocState {
  /** The document's Yjs state (`SharedDoc.encodeState()`), including updates still waiting for dependencies. */
  state: Uint8Array;
  /** Per relay: the highest sequence number of the document's events the state holds. */
  cursors: Record<string, number>;
  /**
   * The owner's membership record the state was read under (version = the record's created_at), and the
   * signed event itself, which any replica can hand to a relay that lost it.
   */
  membership?: { members: string[]; version: number; enforced: boolean; event?: NostrEvent };
  /** Per relay: members added after its cursor had passed, whose earlier deltas are still to be fetched. */
  backfill?: Record<string, string[]>;
}

/**
 * The agent's durable state: the outbox of unacknowledged events, a cursor per relay, and the ids
 * of recently delivered events (for exactly-once delivery across relays). Node uses SQLite
 * (client/node/sqlite-store.ts); browsers pass a key-value storage; tests may use memory.
 * Every method may be synchronous underneath; callers always await.
 */
export interface AgentStore {
  /** Keeps an event until every relay named has settled it. */
  outboxAdd(event: NostrEvent, relays: readonly string[]): Promise<void>;
  /** Pending entries, oldest first. */
  outboxList(): Promise<OutboxEntry[]>;
  /** One relay has settled an event (accepted or definitively refused); the entry goes when none remain. */
  outboxSettle(eventId: string, relay: string): Promise<void>;
  /** The relay's cursor: the highest sequence number handled (0 when none). */
  getCursor(relay: string): Promise<number>;
  /** Sets cursors (several relays at once, in one write). */
  setCursors(cursors: ReadonlyMap<string, number>): Promise<void>;
  /** True when the event id was delivered recently. */
  hasSeen(id: string): Promise<boolean>;
  /** Records a delivery: the id as seen and, atomically with it, the relay's cursor when `seq` is given. */
  markDelivered(id: string, atMs: number, relay?: string, seq?: number): Promise<void>;
  /** Records several ids as seen, in one write (direct messages handed over, before their acknowledgement). */
  markSeen(ids: readonly string[], atMs: number): Promise<void>;
  /** Forgets ids seen before `beforeMs`, and all but the newest `keep`. */
  pruneSeen(beforeMs: number, keep: number): Promise<void>;
  /** Keeps messages about to go out over a direct link (one write for the lot); an id already parked is kept once. */
  parkAdd(entries: readonly ParkedMessage[]): Promise<void>;
  /** Parked messages, oldest first. */
  parkList(): Promise<ParkedMessage[]>;
  /** Forgets parked messages (acknowledged by the peer, or handed to the outbox), in one write. */
  parkRemove(ids: readonly string[]): Promise<void>;
  /**
   * The `created_at` for the next version of a replaceable or addressable event (`key` = kind and `d`):
   * `atSec`, or one above the last one handed out when that is not below it, so each version
   * supersedes the previous one (NIP-01 keeps the lowest id on a tie). Remembered across restarts.
   */
  stampReplaceable(key: string, atSec: number): Promise<number>;
  /** The saved state of the shared document at `address`, if any. */
  getDoc(address: string): Promise<DocState | undefined>;
  /** Replaces the saved state of a shared document (state, cursors and membership in one write). */
  putDoc(address: string, doc: DocState): Promise<void>;
  close(): Promise<void>;
}

/** A deep copy, so a caller's later changes never reach what a memory store holds. */
function copyDoc(d: DocState): DocState {
  const { state, ...rest } = d;
  return { ...(JSON.parse(JSON.stringify(rest)) as Omit<DocState, 'state'>), state: state.slice() };
}

/** Plain state behind the memory and key-value stores. */
interface State {
  outbox: Array<{ event: NostrEvent; relays: string[] }>;
  cursors: Record<string, number>;
  seen: Map<string, number>;
  parked: Map<string, ParkedMessage>;
  stamps: Record<string, number>;
}

/** The parts of the plain state a change touches. */
type Part = 'outbox' | 'cursors' | 'seen' | 'parked' | 'stamps';

/** An AgentStore in memory: for tests and agents that need no durability. */
export class MemoryStore implements AgentStore {
  protected state: State = { outbox: [], cursors: {}, seen: new Map(), parked: new Map(), stamps: {} };
  readonly #docs = new Map<string, DocState>();

  /** Called after each change with the parts that changed; the key-value store persists them. */
  protected async changed(_parts: readonly Part[]): Promise<void> {}

  async outboxAdd(event: NostrEvent, relays: readonly string[]): Promise<void> {
    if (relays.length === 0 || this.state.outbox.some((e) => e.event.id === event.id)) return;
    this.state.outbox.push({ event, relays: [...relays] });
    await this.changed(['outbox']);
  }

  async outboxList(): Promise<OutboxEntry[]> {
    return this.state.outbox.map((e) => ({ event: e.event, relays: [...e.relays] }));
  }

  async outboxSettle(eventId: string, relay: string): Promise<void> {
    const i = this.state.outbox.findIndex((e) => e.event.id === eventId);
    if (i < 0) return;
    const entry = this.state.outbox[i]!;
    entry.relays = entry.relays.filter((r) => r !== relay);
    if (entry.relays.length === 0) this.state.outbox.splice(i, 1);
    await this.changed(['outbox']);
  }

  async getCursor(relay: string): Promise<number> {
    return this.state.cursors[relay] ?? 0;
  }

  async setCursors(cursors: ReadonlyMap<string, number>): Promise<void> {
    for (const [relay, seq] of cursors) this.state.cursors[relay] = seq;
    await this.changed(['cursors']);
  }

  async hasSeen(id: string): Promise<boolean> {
    return this.state.seen.has(id);
  }

  async markDelivered(id: string, atMs: number, relay?: string, seq?: number): Promise<void> {
    this.state.seen.delete(id);
    this.state.seen.set(id, atMs);
    if (relay !== undefined && seq !== undefined) this.state.cursors[relay] = seq;
    await this.changed(relay !== undefined && seq !== undefined ? ['seen', 'cursors'] : ['seen']);
  }

  async markSeen(ids: readonly string[], atMs: number): Promise<void> {
    for (const id of ids) {
      this.state.seen.delete(id);
      this.state.seen.set(id, atMs);
    }
    await this.changed(['seen']);
  }

  async parkAdd(entries: readonly ParkedMessage[]): Promise<void> {
    for (const e of entries) if (!this.state.parked.has(e.id)) this.state.parked.set(e.id, { peer: e.peer, id: e.id, data: e.data });
    await this.changed(['parked']);
  }

  async parkList(): Promise<ParkedMessage[]> {
    return [...this.state.parked.values()].map((e) => ({ ...e }));
  }

  async parkRemove(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.state.parked.delete(id);
    await this.changed(['parked']);
  }

  async pruneSeen(beforeMs: number, keep: number): Promise<void> {
    const seen = this.state.seen;
    let excess = seen.size - keep;
    for (const [id, at] of seen) {
      if (excess <= 0 && at >= beforeMs) break;
      seen.delete(id);
      excess--;
    }
    await this.changed(['seen']);
  }

  async stampReplaceable(key: string, atSec: number): Promise<number> {
    const last = this.state.stamps[key];
    const at = last !== undefined && atSec <= last ? last + 1 : atSec;
    this.state.stamps[key] = at;
    await this.changed(['stamps']);
    return at;
  }

  async getDoc(address: string): Promise<DocState | undefined> {
    const d = this.#docs.get(address);
    return d && copyDoc(d);
  }

  async putDoc(address: string, doc: DocState): Promise<void> {
    this.#docs.set(address, copyDoc(doc));
  }

  async close(): Promise<void> {}
}

/**
 * An AgentStore over a small key-value storage (browsers: `localStorage` or an IndexedDB wrapper
 * passed in by the caller). Five keys under `prefix`: outbox, cursors, seen, parked, stamps. Each change rewrites
 * its key, so keep `maxSeen` modest.
 */
export class KeyValueStore extends MemoryStore {
  readonly #storage: KeyValueStorage;
  readonly #prefix: string;
  readonly #maxSeen: number;

  private constructor(storage: KeyValueStorage, prefix: string, maxSeen: number) {
    super();
    this.#storage = storage;
    this.#prefix = prefix;
    this.#maxSeen = maxSeen;
  }

  /** Opens the store, reading what an earlier session saved. */
  static async open(storage: KeyValueStorage, opts: { prefix?: string; maxSeen?: number } = {}): Promise<KeyValueStore> {
    const s = new KeyValueStore(storage, opts.prefix ?? 'roost:', opts.maxSeen ?? 2000);
    await s.#load();
    return s;
  }

  async #load(): Promise<void> {
    const read = async <T>(key: string, fallback: T): Promise<T> => {
      const v = await this.#storage.getItem(this.#prefix + key);
      if (!v) return fallback;
      try {
        return JSON.parse(v) as T;
      } catch {
        return fallback;
      }
    };
    this.state.outbox = await read('outbox', []);
    this.state.cursors = await read('cursors', {});
    this.state.seen = new Map(await read<Array<[string, number]>>('seen', []));
    this.state.stamps = await read('stamps', {});
    this.state.parked = new Map((await read<ParkedMessage[]>('parked', [])).map((e) => [e.id, e]));
  }

  override async getDoc(address: string): Promise<DocState | undefined> {
    const text = await this.#storage.getItem(this.#prefix + 'doc:' + address);
    if (!text) return undefined;
    try {
      const saved = JSON.parse(text) as Omit<DocState, 'state'> & { state: string };
      const state = decodeBase64(saved.state);
      return state ? { ...saved, state } : undefined;
    } catch {
      return undefined;
    }
  }

  override async putDoc(address: string, doc: DocState): Promise<void> {
    await this.#storage.setItem(this.#prefix + 'doc:' + address, JSON.stringify({ ...doc, state: encodeBase64(doc.state) }));
  }

  protected override async changed(parts: readonly Part[]): Promise<void> {
    for (const part of parts) {
      if (part === 'parked') await this.#storage.setItem(this.#prefix + 'parked', JSON.stringify([...this.state.parked.values()]));
      else if (part === 'outbox') await this.#storage.setItem(this.#prefix + 'outbox', JSON.stringify(this.state.outbox));
      else if (part === 'stamps') await this.#storage.setItem(this.#prefix + 'stamps', JSON.stringify(this.state.stamps));
      else if (part === 'cursors') await this.#storage.setItem(this.#prefix + 'cursors', JSON.stringify(this.state.cursors));
      else {
        const seen = this.state.seen;
        while (seen.size > this.#maxSeen) seen.delete(seen.keys().next().value!);
        await this.#storage.setItem(this.#prefix + 'seen', JSON.stringify([...seen]));
      }
    }
  }
}
