/**
 * The bookkeeping that makes a dying direct path lose nothing and double nothing: the sender
 * numbers what it sends and keeps it until acknowledged (a {@link SendWindow}); on failure the
 * unacknowledged rest goes through the relay; the receiver drops any id it has already seen
 * ({@link SeenIds}), whichever path brought it.
 */

/** Messages sent on a link and not yet acknowledged, in order. */
export class SendWindow<T> {
  #next = 1;
  #acked = 0;
  readonly #items = new Map<number, T>();

  /** Highest sequence number handed out so far. */
  get lastSeq(): number {
    return this.#next - 1;
  }

  /** Highest sequence number acknowledged so far. */
  get ackedSeq(): number {
    return this.#acked;
  }

  /** Unacknowledged messages. */
  get size(): number {
    return this.#items.size;
  }

  /** Stores a message and returns its sequence number. */
  push(item: T): number {
    const s = this.#next++;
    this.#items.set(s, item);
    return s;
  }

  /**
   * Cumulative acknowledgement of everything up to `upTo`: returns the messages it newly covers,
   * in order ([] for a stale ack), or undefined when it acknowledges something never sent.
   */
  ack(upTo: number): T[] | undefined {
    if (!Number.isInteger(upTo) || upTo > this.lastSeq) return undefined;
    const out: T[] = [];
    for (let s = this.#acked + 1; s <= upTo; s++) {
      const item = this.#items.get(s);
      if (item !== undefined) out.push(item);
      this.#items.delete(s);
    }
    if (upTo > this.#acked) this.#acked = upTo;
    return out;
  }

  /** Takes every unacknowledged message, in order, leaving the window empty (the link died). */
  drain(): T[] {
    const out = [...this.#items.values()];
    this.#items.clear();
    return out;
  }
}

/**
 * Remembers which message ids have been handed to the application. `markSeen` answers true the
 * first time a key is seen. A persistent implementation (the agent's store) makes the guarantee
 * survive restarts; it may be async.
 */
export interface SeenIds {
  markSeen(key: string): boolean | Promise<boolean>;
}

/**
 * The durable record of message keys handed to the application (the agent's store), so that a copy
 * arriving after a restart is still dropped. Read before a message is handed over; written after
 * its handler returned, several keys in one write, and before the direct path acknowledges them.
 */
export interface HandledIds {
  /** True when `key` was handed over (in this run or an earlier one). */
  has(key: string): boolean | Promise<boolean>;
  /** Records keys handed over, in one durable write. */
  add(keys: readonly string[]): void | Promise<void>;
}

/** An in-memory {@link SeenIds} that forgets the oldest keys beyond `max`. */
export class SeenSet implements SeenIds {
  readonly #max: number;
  readonly #keys = new Set<string>();

  constructor(max = 20_000) {
    this.#max = Math.max(1, max);
  }

  /** Keys remembered now. */
  get size(): number {
    return this.#keys.size;
  }

  /** True the first time `key` is seen. */
  markSeen(key: string): boolean {
    if (this.#keys.has(key)) return false;
    this.#keys.add(key);
    if (this.#keys.size > this.#max) this.#keys.delete(this.#keys.values().next().value!);
    return true;
  }
}

/** The key under which a message is deduplicated: ids are unique per sender. */
export function getSeenKey(peer: string, id: string): string {
  return `${peer}:${id}`;
}
