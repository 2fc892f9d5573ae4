import type { Json } from './json.js';
import type { AwarenessMessage } from './wire.js';

/** Options of {@link createAwareness}. */
export interface AwarenessOptions {
  /** This replica's pubkey. */
  self: string;
  /** Wall clock in milliseconds. Default `Date.now`. */
  now?: () => number;
  /** A peer not heard from for this long is gone. Default 30 000. */
  timeoutMs?: number;
  /** Presence from other pubkeys is ignored (e.g. `doc.isMember`). Default: everyone. */
  isAllowed?: (pubkey: string) => boolean;
}

/** Pubkeys whose presence appeared, changed or went away in one step. */
export interface AwarenessChange {
  added: string[];
  updated: string[];
  removed: string[];
}

type PresenceState = Readonly<Record<string, Json>>;

interface Peer {
  clock: number;
  state: PresenceState;
  seenAt: number;
}

/**
 * Who is looking at a document right now: a small last-message-wins table keyed by pubkey, never persisted
 * and kept apart from the durable Y.Doc. The message clock is `max(now, last + 1)`, so a restarted agent
 * is not ignored. Timers belong to the caller: call `renew()` and `prune()` every few seconds.
 */
export class Awareness {
  readonly self: string;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  readonly #isAllowed: (pubkey: string) => boolean;
  readonly #peers = new Map<string, Peer>();
  readonly #listeners = new Set<(change: AwarenessChange) => void>();
  #clock = 0;
  #local: PresenceState | null = null;
  #sentAt = -Infinity;

  /** Use {@link createAwareness}. */
  constructor(options: AwarenessOptions) {
    this.self = options.self;
    this.#now = options.now ?? Date.now;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#isAllowed = options.isAllowed ?? (() => true);
  }

  #emit(change: AwarenessChange): void {
    if (change.added.length + change.updated.length + change.removed.length === 0) return;
    for (const l of this.#listeners) l(change);
  }

  #message(): AwarenessMessage {
    this.#clock = Math.max(Math.floor(this.#now()), this.#clock + 1);
    this.#sentAt = this.#now();
    return { clock: this.#clock, state: this.#local };
  }

  /** Sets (or with null, withdraws) this replica's presence; returns the message to publish. */
  setLocal(state: PresenceState | null): AwarenessMessage {
    this.#local = state === null ? null : structuredClone(state);
    return this.#message();
  }

  /** This replica's presence. */
  getLocal(): PresenceState | null {
    return this.#local;
  }

  /** Applies a peer's message signed by `author`; returns whether it changed anything. */
  receive(author: string, message: AwarenessMessage): boolean {
    if (author === this.self || !this.#isAllowed(author)) return false;
    const known = this.#peers.get(author);
    if (known && message.clock <= known.clock) return false;
    if (message.state === null) {
      if (!known) return false;
      this.#peers.delete(author);
      this.#emit({ added: [], updated: [], removed: [author] });
      return true;
    }
    this.#peers.set(author, { clock: message.clock, state: message.state, seenAt: this.#now() });
    this.#emit({ added: known ? [] : [author], updated: known ? [author] : [], removed: [] });
    return true;
  }

  /** A refresh of the local presence when half the timeout has passed since the last one, else undefined. */
  renew(): AwarenessMessage | undefined {
    if (this.#local === null || this.#now() - this.#sentAt < this.#timeoutMs / 2) return undefined;
    return this.#message();
  }

  /** Forgets peers silent for longer than the timeout; returns their pubkeys. */
  prune(): string[] {
    const limit = this.#now() - this.#timeoutMs;
    const removed: string[] = [];
    for (const [pk, p] of this.#peers) if (p.seenAt < limit) removed.push(pk);
    for (const pk of removed) this.#peers.delete(pk);
    this.#emit({ added: [], updated: [], removed });
    return removed;
  }

  /** Present pubkeys (self included when present) with their states. */
  states(): Map<string, PresenceState> {
    const out = new Map<string, PresenceState>();
    if (this.#local !== null) out.set(this.self, this.#local);
    for (const [pk, p] of this.#peers) out.set(pk, p.state);
    return out;
  }

  /** Calls `listener` with every change to peers' presence; returns an unsubscribe. */
  onChange(listener: (change: AwarenessChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/** Creates an empty presence table (see {@link AwarenessOptions}). */
export function createAwareness(options: AwarenessOptions): Awareness {
  return new Awareness(options);
}
