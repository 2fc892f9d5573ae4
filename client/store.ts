import type { NostrEvent } from '../shared/event.js';
import { decodeBase64, encodeBase64 } from './crdt/base64.js';
import type { KeyValueStorage } from './identity.js';

/** An event waiting in the outbox, with the relays that have not settled it yet. */
export interface OutboxEntry {
  event: NostrEvent;
  relays: string[];
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
  /** Forgets ids seen before `beforeMs`, and all but the newest `keep`. */
  pruneSeen(beforeMs: number, keep: number): Promise<void>;
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
}

/** An AgentStore in memory: for tests and agents that need no durability. */
export class MemoryStore implements AgentStore {
  protected state: State = { outbox: [], cursors: {}, seen: new Map() };
  readonly #docs = new Map<string, DocState>();

  /** Called after each change with the parts that changed; the key-value store persists them. */
  protected async changed(_parts: ReadonlyArray<'outbox' | 'cursors' | 'seen'>): Promise<void> {}

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
 * passed in by the caller). Three keys under `prefix`: outbox, cursors, seen. Each change rewrites
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

  protected override async changed(parts: ReadonlyArray<'outbox' | 'cursors' | 'seen'>): Promise<void> {
    for (const part of parts) {
      if (part === 'outbox') await this.#storage.setItem(this.#prefix + 'outbox', JSON.stringify(this.state.outbox));
      else if (part === 'cursors') await this.#storage.setItem(this.#prefix + 'cursors', JSON.stringify(this.state.cursors));
      else {
        const seen = this.state.seen;
        while (seen.size > this.#maxSeen) seen.delete(seen.keys().next().value!);
        await this.#storage.setItem(this.#prefix + 'seen', JSON.stringify([...seen]));
      }
    }
  }
}
