import type { NostrEvent } from '../shared/event.js';
import { isAddressableKind, isReplaceableKind } from '../shared/kinds.js';
import { getReasonPrefix } from '../shared/reason.js';
import { getBackoffDelay, withTimeout, type Timers } from './backoff.js';
import { Emitter, type ClientLogger } from './emitter.js';
import { ClientError, isTransientReason } from './errors.js';
import type { OkResult, RelayLink } from './relay-link.js';
import type { AgentStore } from './store.js';

/** How one relay settled one event. */
export interface Settlement {
  eventId: string;
  relay: string;
  accepted: boolean;
  reason: string;
}

/** What `publish` resolves with: every relay asked accepted the event. */
export interface PublishResult {
  id: string;
  relays: OkResult[];
}

/** Events the outbox reports, also for events published before a restart (no promise waits for those). */
export type OutboxEvents = {
  accepted: [Settlement];
  refused: [Settlement];
};

interface Entry {
  event: NostrEvent;
  pending: Set<string>;
  results: OkResult[];
  waiters: Array<{ resolve: (r: PublishResult) => void; reject: (e: Error) => void }>;
}

interface Lane {
  queue: string[];
  busy: boolean;
  attempt: number;
  retryTimer: unknown;
}

/** Tunables of the outbox. */
export interface OutboxOptions {
  timers: Timers;
  random: () => number;
  log: ClientLogger;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Opens a link to a relay the agent does not use (outbox routing), so entries for it left by an earlier run are delivered. */
  openLink?: (url: string) => RelayLink | undefined;
}

/**
 * True when an `OK false` reason says the relay holds this very event. `duplicate:` on a replaceable
 * or addressable event means another version is stored instead (NIP-01 keeps the newer, or the lower
 * id on a tie): a refusal, since this event is not the one a reader gets.
 */
export function isDuplicateOfThis(event: Pick<NostrEvent, 'kind'>, reason: string): boolean {
  return getReasonPrefix(reason) === 'duplicate' && !isReplaceableKind(event.kind) && !isAddressableKind(event.kind);
}

/**
 * The durable outbox: an event is stored before it is first sent and stays until every relay asked
 * has settled it: `OK true` (or `duplicate:` for a regular event), or a definitive refusal. Transient refusals
 * (`rate-limited:`, `error:`, `auth-required:`), timeouts and lost connections are retried with
 * backoff, across restarts. Each relay has its own lane that sends one event at a time in the
 * order they were published, so a recipient reads one sender's events in that order.
 */
export class Outbox extends Emitter<OutboxEvents> {
  readonly #store: AgentStore;
  readonly #links: ReadonlyMap<string, RelayLink>;
  readonly #opts: Required<Omit<OutboxOptions, 'openLink'>> & Pick<OutboxOptions, 'openLink'>;
  readonly #entries = new Map<string, Entry>();
  readonly #lanes = new Map<string, Lane>();
  #closed = false;

  constructor(store: AgentStore, links: ReadonlyMap<string, RelayLink>, opts: OutboxOptions) {
    super();
    this.#store = store;
    this.#links = links;
    this.#opts = { retryBaseMs: 1000, retryMaxMs: 60_000, ...opts };
    for (const [url, link] of links) link.on('ready', () => this.#pump(url));
  }

  /** Starts delivering to a link added to the map after construction (a recipient's relay). */
  watch(url: string, link: RelayLink): void {
    link.on('ready', () => this.#pump(url));
    this.#pump(url);
  }

  /** Number of events not yet settled everywhere. */
  get size(): number {
    return this.#entries.size;
  }

  /** Restores what an earlier run left unsettled and starts sending it. */
  async load(): Promise<number> {
    const entries = await this.#store.outboxList();
    for (const e of entries) {
      // Already queued by this run (published before start): queueing it again would orphan its waiters.
      if (this.#entries.has(e.event.id)) continue;
      for (const r of e.relays) if (!this.#links.has(r)) this.#opts.openLink?.(r);
      const known = e.relays.filter((r) => this.#links.has(r));
      if (known.length < e.relays.length) {
        this.#opts.log.warn(
          { eventId: e.event.id, relays: e.relays.filter((r) => !this.#links.has(r)) },
          'outbox entry names relays this agent no longer uses; kept for them',
        );
      }
      if (known.length > 0) this.#enqueue(e.event, known);
    }
    for (const url of this.#links.keys()) this.#pump(url);
    return entries.length;
  }

  /**
   * Stores the event (resolving once it is durable), then sends it to each relay. The returned
   * `acked` resolves once all accepted it and rejects with ROOST_ERR_REFUSED (carrying the NIP-01
   * reason) on the first definitive refusal.
   */
  async enqueue(event: NostrEvent, relays: readonly string[]): Promise<{ acked: Promise<PublishResult> }> {
    if (this.#closed) throw new ClientError('ROOST_ERR_CLOSED', 'the agent is closed');
    const targets = [...new Set(relays)].filter((r) => this.#links.has(r));
    if (targets.length === 0) throw new ClientError('ROOST_ERR_NO_RELAY', 'no known relay to publish to');
    await this.#store.outboxAdd(event, targets);
    const entry = this.#entries.get(event.id) ?? this.#enqueue(event, targets);
    const acked = new Promise<PublishResult>((resolve, reject) => entry.waiters.push({ resolve, reject }));
    // Refusals are also reported as 'refused' events: a caller that does not wait is not an unhandled rejection.
    acked.catch(() => {});
    for (const r of targets) this.#pump(r);
    return { acked };
  }

  /** {@link enqueue} and wait for the acknowledgements; ROOST_ERR_TIMEOUT after `timeoutMs` (the event stays in the outbox). */
  async add(event: NostrEvent, relays: readonly string[], timeoutMs?: number): Promise<PublishResult> {
    const { acked } = await this.enqueue(event, relays);
    if (timeoutMs === undefined) return acked;
    return withTimeout(
      acked,
      timeoutMs,
      this.#opts.timers,
      () => new ClientError('ROOST_ERR_TIMEOUT', `not acknowledged within ${timeoutMs} ms; still in the outbox`, { eventId: event.id }),
    );
  }

  /** Stops sending (entries stay stored for the next run). */
  close(): void {
    this.#closed = true;
    for (const lane of this.#lanes.values()) if (lane.retryTimer !== undefined) this.#opts.timers.clearTimeout(lane.retryTimer);
    for (const e of this.#entries.values()) {
      for (const w of e.waiters)
        w.reject(
          new ClientError('ROOST_ERR_CLOSED', 'the agent closed before every relay acknowledged; the event stays in the outbox', { eventId: e.event.id }),
        );
      e.waiters = [];
    }
  }

  #enqueue(event: NostrEvent, relays: readonly string[]): Entry {
    const entry: Entry = { event, pending: new Set(relays), results: [], waiters: [] };
    this.#entries.set(event.id, entry);
    for (const r of relays) this.#lane(r).queue.push(event.id);
    return entry;
  }

  #lane(relay: string): Lane {
    let lane = this.#lanes.get(relay);
    if (!lane) this.#lanes.set(relay, (lane = { queue: [], busy: false, attempt: 0, retryTimer: undefined }));
    return lane;
  }

  #pump(relay: string): void {
    const lane = this.#lanes.get(relay);
    const link = this.#links.get(relay);
    if (this.#closed || !lane || !link || lane.busy || lane.retryTimer !== undefined || !link.isReady) return;
    const id = lane.queue[0];
    if (id === undefined) return;
    const entry = this.#entries.get(id);
    if (!entry?.pending.has(relay)) {
      lane.queue.shift();
      this.#pump(relay);
      return;
    }
    lane.busy = true;
    link.publish(entry.event).then(
      (ok) => {
        lane.busy = false;
        if (ok.accepted || isDuplicateOfThis(entry.event, ok.reason)) return this.#settle(lane, entry, ok, true);
        if (isTransientReason(ok.reason)) return this.#retry(lane, relay, `refused: ${ok.reason}`);
        return this.#settle(lane, entry, ok, false);
      },
      (err: ClientError) => {
        lane.busy = false;
        // A lost connection resumes on the link's next 'ready'; a timeout is retried.
        if (err.code === 'ROOST_ERR_TIMEOUT') this.#retry(lane, relay, 'no OK in time');
      },
    );
  }

  #retry(lane: Lane, relay: string, why: string): void {
    const delay = getBackoffDelay(lane.attempt++, this.#opts.retryBaseMs, this.#opts.retryMaxMs, this.#opts.random);
    this.#opts.log.info({ relay, eventId: lane.queue[0], attempt: lane.attempt, delay, why }, 'outbox retry');
    lane.retryTimer = this.#opts.timers.setTimeout(() => {
      lane.retryTimer = undefined;
      this.#pump(relay);
    }, delay);
  }

  async #settle(lane: Lane, entry: Entry, ok: OkResult, accepted: boolean): Promise<void> {
    lane.busy = true;
    try {
      await this.#store.outboxSettle(entry.event.id, ok.relay);
    } catch (err) {
      this.#opts.log.error({ err: String(err), eventId: entry.event.id }, 'outbox settle failed');
    }
    lane.busy = false;
    lane.attempt = 0;
    if (lane.queue[0] === entry.event.id) lane.queue.shift();
    entry.pending.delete(ok.relay);
    entry.results.push(ok);
    const s: Settlement = { eventId: entry.event.id, relay: ok.relay, accepted, reason: ok.reason };
    if (accepted) this.emit('accepted', s);
    else {
      this.#opts.log.warn({ relay: ok.relay, eventId: entry.event.id, reason: ok.reason }, 'event refused');
      this.emit('refused', s);
      const err = new ClientError('ROOST_ERR_REFUSED', `${ok.relay} refused ${entry.event.id.slice(0, 12)}: ${ok.reason}`, {
        reason: ok.reason,
        relay: ok.relay,
        eventId: entry.event.id,
      });
      for (const w of entry.waiters) w.reject(err);
      entry.waiters = [];
    }
    if (entry.pending.size === 0) {
      this.#entries.delete(entry.event.id);
      const result: PublishResult = { id: entry.event.id, relays: entry.results };
      for (const w of entry.waiters) w.resolve(result);
    }
    this.#pump(ok.relay);
  }
}
