import type { NostrEvent } from '../shared/event.js';
import type { Filter } from '../shared/filter.js';
import { isHistoryReset } from '../shared/history-reset.js';
import { getBackoffDelay, sleep, type Timers } from './backoff.js';
import { Emitter, type ClientLogger } from './emitter.js';
import type { RelayLink } from './relay-link.js';
import type { AgentStore } from './store.js';

/** Where an inbox event came from. */
export interface Delivery {
  relay: string;
  /** The relay's sequence number; undefined for ephemeral events (live only). */
  seq: number | undefined;
}

/** The application's handler; the cursor moves past an event only after this has returned (or resolved). */
export type InboxHandler = (event: NostrEvent, delivery: Delivery) => void | Promise<void>;

/** What the inbox reports. */
export type InboxEvents = {
  /** Everything the relay held for us when we (re)subscribed has been handled. */
  caughtUp: [relay: string, cursor: number];
  /** A handler kept failing; the event was given up on after its attempts. */
  handlerFailed: [event: NostrEvent, error: unknown];
  /** A relay ended the inbox subscription. */
  closed: [relay: string, reason: string];
};

/** Tunables of the inbox. */
export interface InboxOptions {
  timers: Timers;
  random: () => number;
  /** Milliseconds since the epoch. */
  now: () => number;
  log: ClientLogger;
  /** Attempts per event before a throwing handler is given up on. */
  handlerAttempts?: number;
  /** Seen ids are kept this long (ms) ... */
  seenTtlMs?: number;
  /** ... and at most this many. */
  seenMax?: number;
  /** Cursor moves for already-seen events are written at most this often (ms). */
  cursorFlushMs?: number;
}

type Item = { relay: string; event: NostrEvent; seq: number | undefined } | { relay: string; eose: true };

/** The subscription id the inbox uses on every relay. */
export const INBOX_SUB_ID = 'roost-inbox';

/**
 * Everything addressed to this agent (`#p` = me), from every relay, resumed from a durable cursor
 * per relay with the sequence extension (tail mode: backlog in ascending seq, then live). Events
 * from all relays go through one queue, handled one at a time: an id seen before (on any relay,
 * recorded durably) is skipped, so each event reaches the handler once; the relay's cursor and the
 * id are committed together after the handler returns.
 */
export class Inbox extends Emitter<InboxEvents> {
  readonly #store: AgentStore;
  /** The keys read: this agent's, and its rotated-out keys during their grace period. */
  readonly #me: () => string[];
  readonly #handler: InboxHandler;
  readonly #opts: Required<InboxOptions>;
  readonly #cursors = new Map<string, number>();
  readonly #dirty = new Map<string, number>();
  readonly #queue: Item[] = [];
  readonly #subs = new Map<string, { close(): void }>();
  readonly #retries = new Map<string, number>();
  #flushTimer: unknown;
  #sincePrune = 0;
  readonly #resubscribeTimers = new Set<unknown>();
  #draining: Promise<void> = Promise.resolve();
  #running = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(store: AgentStore, me: string | (() => string[]), handler: InboxHandler, opts: InboxOptions) {
    super();
    this.#store = store;
    this.#me = typeof me === 'string' ? () => [me] : me;
    this.#handler = handler;
    this.#opts = { handlerAttempts: 3, seenTtlMs: 7 * 86_400_000, seenMax: 100_000, cursorFlushMs: 200, ...opts };
  }

  /** The cursor in force for a relay (highest seq handled). */
  cursor(relay: string): number {
    return this.#cursors.get(relay) ?? 0;
  }

  /** Starts reading one relay's inbox from its stored cursor. */
  async attach(link: RelayLink): Promise<void> {
    const relay = link.url;
    this.#cursors.set(relay, await this.#store.getCursor(relay));
    const filters = (): Filter[] => [{ '#p': this.#me(), seq_after: this.cursor(relay) }];
    const handle = link.subscribe(INBOX_SUB_ID, {
      filters,
      onEvent: (event, seq) => this.#push({ relay, event, seq }),
      onEose: () => this.#push({ relay, eose: true }),
      onClosed: (reason) => void this.#onClosed(link, reason),
    });
    this.#subs.set(relay, handle);
  }

  /** Prunes old seen ids (call at start and now and then). */
  async prune(): Promise<void> {
    await this.#store.pruneSeen(this.#opts.now() - this.#opts.seenTtlMs, this.#opts.seenMax);
  }

  /** Resolves when everything queued so far has been handled. */
  async idle(): Promise<void> {
    while (this.#running) await this.#draining;
  }

  /** Stops reading; waits for the handler in progress, then writes pending cursor moves. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#resubscribeTimers) this.#opts.timers.clearTimeout(t);
    this.#resubscribeTimers.clear();
    for (const s of this.#subs.values()) s.close();
    this.#subs.clear();
    this.#queue.length = 0;
    await this.idle();
    if (this.#flushTimer !== undefined) this.#opts.timers.clearTimeout(this.#flushTimer);
    await this.#flush();
  }

  #push(item: Item): void {
    if (this.#closed) return;
    this.#queue.push(item);
    // The flag, not the promise, says whether the loop runs: it is cleared in the same synchronous
    // step in which the loop finds the queue empty (several frames can arrive in one task).
    if (!this.#running) {
      this.#running = true;
      this.#draining = this.#drain();
    }
  }

  async #drain(): Promise<void> {
    try {
      for (let item = this.#queue.shift(); item; item = this.#queue.shift()) {
        try {
          if ('eose' in item) {
            this.#retries.delete(item.relay);
            this.emit('caughtUp', item.relay, this.cursor(item.relay));
          } else await this.#process(item.relay, item.event, item.seq);
        } catch (err) {
          // Storage failed: leave the cursor where it is; the event comes again after a reconnect.
          this.#opts.log.error({ err: String(err), relay: item.relay }, 'inbox storage failed');
        }
      }
    } finally {
      this.#running = false;
    }
  }

  async #process(relay: string, event: NostrEvent, seq: number | undefined): Promise<void> {
    if (this.#closed) return;
    if (seq !== undefined && seq <= this.cursor(relay)) return;
    if (await this.#store.hasSeen(event.id)) {
      if (seq !== undefined) this.#advanceLazily(relay, seq);
      return;
    }
    await this.#runHandler(event, { relay, seq });
    await this.#store.markDelivered(event.id, this.#opts.now(), seq === undefined ? undefined : relay, seq);
    // A long-running agent keeps its seen-id window bounded without waiting for a restart.
    if (++this.#sincePrune >= 1000) {
      this.#sincePrune = 0;
      await this.prune();
    }
    if (seq !== undefined) {
      this.#cursors.set(relay, seq);
      this.#dirty.delete(relay);
    }
  }

  async #runHandler(event: NostrEvent, delivery: Delivery): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#handler(event, delivery);
        return;
      } catch (err) {
        if (attempt + 1 >= this.#opts.handlerAttempts) {
          this.#opts.log.error({ eventId: event.id, err: String(err) }, 'inbox handler failed; giving up on this event');
          this.emit('handlerFailed', event, err);
          return;
        }
        await sleep(this.#opts.timers, getBackoffDelay(attempt, 100, 2000, this.#opts.random) + 50);
      }
    }
  }

  /** Moves a cursor past an event seen before; written in batches (a replay would be skipped anyway). */
  #advanceLazily(relay: string, seq: number): void {
    this.#cursors.set(relay, seq);
    this.#dirty.set(relay, seq);
    if (this.#flushTimer === undefined) {
      this.#flushTimer = this.#opts.timers.setTimeout(() => {
        this.#flushTimer = undefined;
        void this.#flush();
      }, this.#opts.cursorFlushMs);
    }
  }

  async #flush(): Promise<void> {
    if (this.#dirty.size === 0) return;
    const batch = new Map(this.#dirty);
    this.#dirty.clear();
    try {
      await this.#store.setCursors(batch);
    } catch (err) {
      this.#opts.log.error({ err: String(err) }, 'cursor write failed');
    }
  }

  async #onClosed(link: RelayLink, reason: string): Promise<void> {
    const relay = link.url;
    this.emit('closed', relay, reason);
    if (this.#closed) return;
    if (isHistoryReset(reason)) {
      // The relay's history was reset (its newest seq is behind our cursor): start over; ids seen
      // recently are still skipped.
      this.#opts.log.warn({ relay, cursor: this.cursor(relay) }, 'relay refused our cursor; resuming its inbox from 0');
      await this.idle();
      this.#cursors.set(relay, 0);
      this.#dirty.delete(relay);
      await this.#store.setCursors(new Map([[relay, 0]]));
      link.resubscribe(INBOX_SUB_ID);
      return;
    }
    const attempt = this.#retries.get(relay) ?? 0;
    this.#retries.set(relay, attempt + 1);
    const delay = getBackoffDelay(attempt, 1000, 60_000, this.#opts.random) + 250;
    this.#opts.log.warn({ relay, reason, delay }, 'inbox subscription closed by the relay; retrying');
    const timer = this.#opts.timers.setTimeout(() => {
      this.#resubscribeTimers.delete(timer);
      if (!this.#closed) link.resubscribe(INBOX_SUB_ID);
    }, delay);
    this.#resubscribeTimers.add(timer);
  }
}
