import {
  AGENT_CARD_D,
  AGENT_CARD_KIND,
  AGENT_HEARTBEAT_KIND,
  CAPABILITY_TAG,
  makeAgentCard,
  makeHeartbeat,
  type AgentCard,
  type HeartbeatStatus,
} from '../shared/agent-card.js';
import type { EventTemplate, NostrEvent } from '../shared/event.js';
import { getTagValue } from '../shared/event.js';
import type { Filter } from '../shared/filter.js';
import { Kind, isAddressableKind, isEphemeralKind, isReplaceableKind } from '../shared/kinds.js';
import { systemTimers, withTimeout, type Timers } from './backoff.js';
import { Messenger, type DirectMessage, type DirectSetup, type RequestHandler, type SendResult } from './messaging.js';
// Types only: the transport (and the zod schemas of its signalling) stays out of bundles that do not use it.
import type { DirectTransport } from './transport/webrtc.js';
import { openAgentDoc, type AgentDoc, type AgentDocOptions, type DocHost } from './crdt-relay.js';
import { makeDocAddress } from './crdt/wire.js';
import { Emitter, silentLogger, type ClientLogger } from './emitter.js';
import { ClientError } from './errors.js';
import { parsePubkey, verifyEvent, type Identity } from './identity.js';
import { Inbox, type Delivery } from './inbox.js';
import { fetchRelayInfo, type FetchLike, type RelayInfo } from './nip11.js';
import { Outbox, isDuplicateOfThis, type PublishResult, type Settlement } from './outbox.js';
import { combineDiscovery, fetchPresence, type AgentInfo } from './presence.js';
import { RelayLink, normalizeRelayUrl, type OkResult, type RelayLinkOptions, type WebSocketConstructor } from './relay-link.js';
import { MemoryStore, type AgentStore } from './store.js';
import { checkWakeChannels, makeWakeRegistration, type WakeChannel } from './wake.js';

/**
 * Options of {@link Agent.enableDirect}: `direct` (the transport module, passed in so it is bundled
 * only by applications that use it: `import * as direct from './client/transport/index.js'`), `rtc`
 * (`getBrowserRtc()` in browsers, `loadNodeRtc` in Node), and optionally `iceServers`, `autoConnect`
 * (open a link in the background when sending to a peer without one), `accept(peer)` and further
 * `transport` tunables.
 */
export type DirectOptions = DirectSetup;

export type { DirectMessage, RequestHandler, SendResult } from './messaging.js';

/** Any other event addressed to this agent (`#p`). */
export interface InboxEvent {
  type: 'event';
  event: NostrEvent;
  relay: string;
  seq: number | undefined;
}

/** What the inbox hands the application. */
export type InboxMessage = DirectMessage | InboxEvent;

/** The application's inbox handler: awaited before the cursor moves on. */
export type MessageHandler = (msg: InboxMessage) => void | Promise<void>;

/** What an agent reports. */
export type AgentEvents = {
  ready: [relay: string, authed: boolean];
  disconnected: [relay: string, reason: string];
  /** The inbox of one relay has been handled up to what the relay held at subscription time. */
  caughtUp: [relay: string, cursor: number];
  /** A relay definitively refused an outbox event (also for events published before a restart). */
  refused: [Settlement];
  accepted: [Settlement];
  /** A message nobody handled (no `onMessage` handler), or a late response. */
  message: [InboxMessage];
  error: [ClientError | Error];
};

/** Options of {@link createAgent}; everything but identity and relays has a default. */
export interface AgentOptions {
  identity: Identity;
  relays: readonly string[];
  /** Durable state (outbox, cursors, seen ids). Default: memory (nothing survives a restart). Closed by `close()`. */
  store?: AgentStore;
  /** Default: the platform's `WebSocket` (browsers, Node 22+). Node 20: pass `ws` (client/node does). */
  WebSocket?: WebSocketConstructor;
  /** Default: the platform's `fetch` (NIP-11 and presence). */
  fetch?: FetchLike;
  timers?: Timers;
  random?: () => number;
  /** Milliseconds since the epoch. */
  now?: () => number;
  log?: ClientLogger;
  verify?: (event: NostrEvent) => boolean;
  /** Connection tunables (backoff, pings, timeouts). */
  link?: Partial<Omit<RelayLinkOptions, 'WebSocket' | 'identity' | 'timers' | 'random' | 'now' | 'verify' | 'log'>>;
  outbox?: { retryBaseMs?: number; retryMaxMs?: number };
  /** Read the inbox (default true). A send-only agent sets false. */
  inbox?: boolean;
  /** Heartbeat period in seconds while running (default 300; 0: no heartbeat). */
  heartbeatSeconds?: number;
}

/** Options of a publish. */
export interface PublishOptions {
  /** Relays to publish to (default: all of the agent's). */
  relays?: readonly string[];
  /** Give up waiting after this long (the event stays in the outbox). */
  timeoutMs?: number;
  /** false: no outbox; sent to the relays connected now and awaited once (heartbeats, status). */
  durable?: boolean;
}

/** Creates an agent (not connected yet: call `start()`). */
export function createAgent(opts: AgentOptions): Agent {
  return new Agent(opts);
}

/**
 * A thin agent over one or more relays: durable acknowledged publishing, an exactly-once inbox
 * resumed from per-relay cursors, end-to-end encrypted direct messages with request/response,
 * presence and discovery, and push-wake registration.
 */
export class Agent extends Emitter<AgentEvents> {
  readonly identity: Identity;
  readonly pubkey: string;
  readonly #links = new Map<string, RelayLink>();
  readonly #messenger: Messenger;
  readonly #store: AgentStore;
  readonly #outbox: Outbox;
  readonly #inbox: Inbox | undefined;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #log: ClientLogger;
  readonly #fetch: FetchLike | undefined;
  readonly #heartbeatSeconds: number;
  readonly #info = new Map<string, Promise<RelayInfo>>();
  readonly #docs = new Map<string, Promise<AgentDoc>>();
  #onMessage: MessageHandler | undefined;
  #wake: WakeChannel[] | undefined;
  #heartbeatTimer: unknown;
  #state: 'new' | 'running' | 'closed' = 'new';

  constructor(opts: AgentOptions) {
    super();
    if (opts.relays.length === 0) throw new ClientError('ROOST_ERR_NO_RELAY', 'an agent needs at least one relay');
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new ClientError('ROOST_ERR_BAD_INPUT', 'no WebSocket implementation: pass one (Node 20: the ws package, or use client/node)');
    this.identity = opts.identity;
    this.pubkey = opts.identity.pubkey;
    this.#store = opts.store ?? new MemoryStore();
    this.#timers = opts.timers ?? systemTimers;
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log ?? silentLogger;
    this.#fetch = opts.fetch ?? (globalThis.fetch ? (globalThis.fetch.bind(globalThis) as unknown as FetchLike) : undefined);
    this.#heartbeatSeconds = opts.heartbeatSeconds ?? 300;
    for (const url of opts.relays) {
      const link = new RelayLink(url, {
        ...opts.link,
        WebSocket: WS,
        identity: opts.identity,
        timers: this.#timers,
        random: this.#random,
        now: this.#now,
        verify: opts.verify ?? verifyEvent,
        log: this.#log,
      });
      if (this.#links.has(link.url)) continue;
      this.#links.set(link.url, link);
      link.on('ready', (authed) => {
        this.emit('ready', link.url, authed);
        void this.#onLinkReady(link);
      });
      link.on('disconnected', (reason) => {
        // NIP-11 is read again on the next connect: the relay may have been replaced meanwhile.
        this.#info.delete(link.url);
        this.emit('disconnected', link.url, reason);
      });
    }
    this.#outbox = new Outbox(this.#store, this.#links, { timers: this.#timers, random: this.#random, log: this.#log, ...opts.outbox });
    this.#outbox.on('refused', (s) => this.emit('refused', s));
    this.#outbox.on('accepted', (s) => this.emit('accepted', s));
    this.#messenger = new Messenger({
      identity: this.identity,
      store: this.#store,
      outbox: this.#outbox,
      links: this.#links,
      publish: (event, o) => this.publishSigned(event, o),
      deliver: (msg) => this.#deliver(msg),
      timers: this.#timers,
      now: this.#now,
      log: this.#log,
    });
    if (opts.inbox !== false) {
      this.#inbox = new Inbox(this.#store, this.pubkey, (ev, d) => this.#handleInbox(ev, d), {
        timers: this.#timers,
        random: this.#random,
        now: this.#now,
        log: this.#log,
      });
      this.#inbox.on('caughtUp', (relay, cursor) => this.emit('caughtUp', relay, cursor));
      this.#inbox.on('handlerFailed', (_ev, err) => this.emit('error', err instanceof Error ? err : new Error(String(err))));
    }
  }

  /** The public key as `npub1…`. */
  get npub(): string {
    return this.identity.npub;
  }

  /** The agent's relays (normalised URLs). */
  get relays(): string[] {
    return [...this.#links.keys()];
  }

  /** Relays connected (and authenticated, where asked) right now. */
  get connectedRelays(): string[] {
    return [...this.#links.values()].filter((l) => l.isReady).map((l) => l.url);
  }

  /** Events waiting in the outbox. */
  get outboxSize(): number {
    return this.#outbox.size;
  }

  /** Sets the inbox handler (awaited; the cursor moves only after it returns). */
  onMessage(handler: MessageHandler): this {
    this.#onMessage = handler;
    return this;
  }

  /** Sets the request handler: its answer goes back to the requester as the response. */
  onRequest(handler: RequestHandler): this {
    this.#messenger.onRequest(handler);
    return this;
  }

  /** Connects to every relay, resends what the outbox kept, and resumes the inbox from its cursors. */
  async start(): Promise<void> {
    if (this.#state !== 'new') return;
    this.#state = 'running';
    await this.#outbox.load();
    await this.#messenger.publishParked();
    if (this.#inbox) {
      await this.#inbox.prune();
      for (const link of this.#links.values()) await this.#inbox.attach(link);
    }
    for (const link of this.#links.values()) link.start();
    if (this.#heartbeatSeconds > 0) this.#scheduleHeartbeat();
  }

  /** Resolves once at least `count` relays (default all) are connected, or false after `timeoutMs`. */
  async whenConnected(timeoutMs = 10_000, count = this.#links.size): Promise<boolean> {
    const deadline = this.#now() + timeoutMs;
    for (;;) {
      if (this.connectedRelays.length >= count) return true;
      const left = deadline - this.#now();
      if (left <= 0) return false;
      await Promise.race([...this.#links.values()].filter((l) => !l.isReady).map((l) => l.whenReady(left)));
    }
  }

  /** Resolves once everything the inbox has received so far has been handled. */
  async inboxIdle(): Promise<void> {
    await this.#inbox?.idle();
  }

  /**
   * Stops handing over inbox messages: the message being handled is still committed, the next one
   * is left for a later run. Safe to call from inside the handler (do not await it there).
   */
  async stopInbox(): Promise<void> {
    await this.#inbox?.close();
  }

  /** The inbox cursor for one relay. */
  inboxCursor(relay: string): number {
    return this.#inbox?.cursor(normalizeRelayUrl(relay)) ?? 0;
  }

  /**
   * Signs and publishes an event through the durable outbox; resolves when every relay asked said
   * `OK true`. A definitive refusal rejects with ROOST_ERR_REFUSED (`err.prefix`, `err.details.reason`).
   */
  async publish(template: EventTemplate | (Partial<EventTemplate> & { kind: number }), opts: PublishOptions = {}): Promise<PublishResult> {
    const event = this.identity.sign(await this.#stamped(this.#template(template), template.created_at === undefined));
    return this.publishSigned(event, opts);
  }

  /** Publishes an already signed event (same rules as {@link publish}). */
  async publishSigned(event: NostrEvent, opts: PublishOptions = {}): Promise<PublishResult> {
    const relays = this.#targets(opts.relays);
    if (opts.durable === false) return this.#publishOnce(event, relays, opts.timeoutMs);
    return this.#outbox.add(event, relays, opts.timeoutMs);
  }

  /** Fire and forget (ephemeral events): sent to the relays connected now; returns how many. */
  publishEphemeral(template: Partial<EventTemplate> & { kind: number }): { event: NostrEvent; sentTo: number } {
    if (!isEphemeralKind(template.kind)) throw new ClientError('ROOST_ERR_BAD_INPUT', `kind ${template.kind} is not ephemeral (20000-29999)`);
    const event = this.identity.sign(this.#template(template));
    let sentTo = 0;
    for (const link of this.#links.values()) if (link.fire(event)) sentTo++;
    return { event, sentTo };
  }

  /**
   * Sends an end-to-end encrypted direct message (NIP-17 rumor): over a verified direct link when
   * there is one (`path: 'direct'`, resolved on the peer's acknowledgement), else in a NIP-59 gift
   * wrap through the outbox, resolved when the relays acknowledged it (`wrapId`, `result`).
   */
  send(to: string, content: string, opts: PublishOptions & { tags?: string[][] } = {}): Promise<SendResult> {
    return this.#messenger.send(to, content, opts);
  }

  /**
   * Turns on direct WebRTC links: signalling goes through this agent's relays as encrypted
   * ephemeral events, messages to a peer with a verified link go over it, and anything a dying link
   * did not acknowledge falls back to the relay, de-duplicated on arrival. Returns the link pool
   * (`isDirect(peer)`, `state(peer)`, `connect`, `disconnect`).
   */
  enableDirect(opts: DirectOptions): DirectTransport {
    return this.#messenger.enableDirect(opts);
  }

  /** Opens (or reuses) a verified direct link to `peer`; needs {@link enableDirect} first. */
  async connectDirect(peer: string): Promise<void> {
    const pool = this.#messenger.direct;
    if (!pool) throw new ClientError('ROOST_ERR_BAD_INPUT', 'call enableDirect({ rtc }) before connectDirect');
    await pool.connect(parsePubkey(peer));
  }

  /**
   * Sends a request and waits for the response (a direct message carrying the request's correlation
   * id). ROOST_ERR_TIMEOUT when none arrives within `timeoutMs` (default 30 s).
   */
  async request(to: string, content: string, opts: PublishOptions & { timeoutMs?: number } = {}): Promise<DirectMessage> {
    if (!this.#inbox) throw new ClientError('ROOST_ERR_BAD_INPUT', 'request needs the inbox (inbox: false was set)');
    return this.#messenger.request(to, content, opts);
  }

  /** Answers a direct message (with the request's correlation id when it was a request). */
  reply(msg: DirectMessage, content: string, opts: PublishOptions = {}): Promise<SendResult> {
    return this.#messenger.reply(msg, content, opts);
  }

  /**
   * A live subscription on every relay (plain NIP-01, no cursor): each event handed over once even
   * when several relays carry it. Re-sent after reconnects. For durable reading use the inbox.
   */
  subscribe(filters: Filter[], onEvent: (event: NostrEvent, relay: string) => void, opts: { onEose?: (relay: string) => void } = {}): { close(): void } {
    const subId = `sub:${(this.#random() * 2 ** 48).toString(36)}`;
    const seen = new Set<string>();
    const handles = [...this.#links.values()].map((link) =>
      link.subscribe(subId, {
        filters: () => filters,
        onEvent: (ev) => {
          if (seen.has(ev.id)) return;
          seen.add(ev.id);
          if (seen.size > 10_000) seen.delete(seen.values().next().value!);
          onEvent(ev, link.url);
        },
        onEose: () => opts.onEose?.(link.url),
        onClosed: (reason) =>
          this.emit('error', new ClientError('ROOST_ERR_REFUSED', `${link.url} closed a subscription: ${reason}`, { reason, relay: link.url })),
      }),
    );
    return { close: () => handles.forEach((h) => h.close()) };
  }

  /** Opens a gift wrap addressed to this agent (for events from {@link subscribe}); throws ROOST_ERR_DECRYPT. */
  openDirectMessage(wrap: NostrEvent, delivery: { relay: string; seq?: number }): DirectMessage {
    return this.#messenger.open(wrap, delivery);
  }

  /**
   * Opens the shared document `name` (owned by `opts.owner`, default this agent): a CRDT document
   * whose local changes are published as signed deltas through the durable outbox and which reads
   * every relay from a cursor saved with its state, so it works offline and resumes after restarts.
   * Asking again for an open document returns it (later options are ignored). See docs/crdt.md.
   */
  async doc(name: string, opts: AgentDocOptions = {}): Promise<AgentDoc> {
    if (this.#state === 'closed') throw new ClientError('ROOST_ERR_CLOSED', 'the agent is closed');
    const owner = opts.owner === undefined ? this.pubkey : parsePubkey(opts.owner);
    const address = makeDocAddress(owner, name);
    let open = this.#docs.get(address);
    if (!open) {
      open = openAgentDoc(this.#docHost(), name, { ...opts, owner });
      this.#docs.set(address, open);
      open.then(
        (d) => d.onClose(() => this.#docs.delete(address)),
        () => this.#docs.delete(address),
      );
    }
    return open;
  }

  /** Publishes (replaces) this agent's card; `relays` defaults to the agent's relays. */
  async publishCard(card: Omit<AgentCard, 'relays'> & { relays?: string[] }, opts: PublishOptions = {}): Promise<PublishResult> {
    const full: AgentCard = { ...card, relays: card.relays ?? this.relays };
    return this.publishSigned(this.identity.sign(await this.#stamped(makeAgentCard(full, Math.floor(this.#now() / 1000)))), opts);
  }

  /** Publishes a heartbeat now (not durable: a stale one is worth nothing). */
  async heartbeat(status: HeartbeatStatus = 'online', timeoutMs = 5000): Promise<PublishResult> {
    const hb = makeHeartbeat({ status, interval: this.#heartbeatSeconds || 300, wake: (this.#wake?.length ?? 0) > 0 }, Math.floor(this.#now() / 1000));
    return this.publishSigned(this.identity.sign(await this.#stamped(hb)), { durable: false, timeoutMs });
  }

  /**
   * Finds agents offering every capability asked for, across the agent's relays, with presence:
   * online (a relay sees it connected, or a fresh heartbeat), asleep (wakeable by push) or offline.
   */
  async discover(query: { capabilities?: readonly string[]; timeoutMs?: number } = {}): Promise<AgentInfo[]> {
    const wanted = [...(query.capabilities ?? [])];
    const timeoutMs = query.timeoutMs ?? 5000;
    const cardFilter: Filter = { kinds: [AGENT_CARD_KIND], '#d': [AGENT_CARD_D], limit: 500 };
    if (wanted.length > 0) cardFilter[`#${CAPABILITY_TAG}`] = [wanted[0]!];
    const links = [...this.#links.values()];
    const cards = (await Promise.all(links.map((l) => l.query([cardFilter], timeoutMs).catch(() => [] as NostrEvent[])))).flat();
    const authors = [...new Set(cards.map((c) => c.pubkey))];
    if (authors.length === 0) return [];
    const beats = (
      await Promise.all(links.map((l) => l.query([{ kinds: [AGENT_HEARTBEAT_KIND], authors }], timeoutMs).catch(() => [] as NostrEvent[])))
    ).flat();
    const presence: Array<{ relay: string; online: Record<string, boolean> }> = [];
    if (this.#fetch) {
      const answers = await Promise.all(links.map(async (l) => ({ relay: l.url, online: await fetchPresence(l.url, authors, this.#fetch!, timeoutMs) })));
      for (const a of answers) if (a.online) presence.push({ relay: a.relay, online: a.online });
    }
    return combineDiscovery(cards, beats, presence, wanted, Math.floor(this.#now() / 1000));
  }

  /**
   * Registers the devices that wake this agent (APNs/FCM) with every relay, now and again on every
   * connect. Resolves with each connected relay's answer. An empty list removes them.
   */
  async registerWake(channels: readonly WakeChannel[]): Promise<OkResult[]> {
    this.#wake = checkWakeChannels(channels);
    const ready = [...this.#links.values()].filter((l) => l.isReady);
    return Promise.all(ready.map((l) => this.#sendWake(l)));
  }

  /** Removes every wake channel from the relays (re-sent on connect during this session). */
  async removeWake(): Promise<OkResult[]> {
    return this.registerWake([]);
  }

  /**
   * Stops: publishes a last heartbeat (asleep when wakeable, else offline), waits for the handler in
   * progress, keeps unacknowledged events in the outbox, closes the connections and the store.
   */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    const wasRunning = this.#state === 'running';
    this.#state = 'closed';
    if (this.#heartbeatTimer !== undefined) this.#timers.clearTimeout(this.#heartbeatTimer);
    if (wasRunning && this.#heartbeatSeconds > 0 && this.connectedRelays.length > 0) {
      await this.heartbeat((this.#wake?.length ?? 0) > 0 ? 'asleep' : 'offline', 2000).catch(() => undefined);
    }
    for (const open of [...this.#docs.values()]) await (await open.catch(() => undefined))?.close();
    await this.#inbox?.close();
    this.#outbox.close();
    await this.#messenger.close();
    for (const link of this.#links.values()) link.close();
    await this.#messenger.flush();
    await this.#store.close();
  }

  // --- internals ---

  #docHost(): DocHost {
    return {
      self: this.pubkey,
      links: this.#links,
      store: this.#store,
      sign: (t) => this.identity.sign(t),
      enqueue: (event) => this.#outbox.enqueue(event, this.relays),
      timers: this.#timers,
      now: this.#now,
      random: this.#random,
      log: this.#log,
    };
  }

  #template(t: Partial<EventTemplate> & { kind: number }): EventTemplate {
    return { kind: t.kind, content: t.content ?? '', tags: t.tags ?? [], created_at: t.created_at ?? Math.floor(this.#now() / 1000) };
  }

  /**
   * A replaceable or addressable template gets a `created_at` above the last version this agent
   * stamped for its kind and `d` (kept in the store), so it always supersedes it: two versions in one
   * second would otherwise tie and the relay keep the lower id. `restamp` false keeps a caller's time.
   */
  async #stamped(t: EventTemplate, restamp = true): Promise<EventTemplate> {
    if (!restamp || !(isReplaceableKind(t.kind) || isAddressableKind(t.kind))) return t;
    const d = isAddressableKind(t.kind) ? (getTagValue(t, 'd') ?? '') : '';
    return { ...t, created_at: await this.#store.stampReplaceable(`${t.kind}:${d}`, t.created_at) };
  }

  #targets(relays: readonly string[] | undefined): string[] {
    if (!relays) return this.relays;
    const out = relays.map(normalizeRelayUrl);
    const unknown = out.filter((r) => !this.#links.has(r));
    if (unknown.length) throw new ClientError('ROOST_ERR_NO_RELAY', `not one of this agent's relays: ${unknown.join(', ')}`);
    return out;
  }

  async #publishOnce(event: NostrEvent, relays: readonly string[], timeoutMs = 10_000): Promise<PublishResult> {
    const links = relays.map((r) => this.#links.get(r)!).filter((l) => l.isReady);
    if (links.length === 0) throw new ClientError('ROOST_ERR_DISCONNECTED', 'no relay connected', { eventId: event.id });
    const results = await Promise.all(
      links.map((l) =>
        withTimeout(
          l.publish(event),
          timeoutMs,
          this.#timers,
          () => new ClientError('ROOST_ERR_TIMEOUT', `no OK from ${l.url}`, { relay: l.url, eventId: event.id }),
        ),
      ),
    );
    const refused = results.find((r) => !r.accepted && !isDuplicateOfThis(event, r.reason));
    if (refused) {
      throw new ClientError('ROOST_ERR_REFUSED', `${refused.relay} refused ${event.id.slice(0, 12)}: ${refused.reason}`, {
        reason: refused.reason,
        relay: refused.relay,
        eventId: event.id,
      });
    }
    return { id: event.id, relays: results };
  }

  async #onLinkReady(link: RelayLink): Promise<void> {
    if (this.#state !== 'running') return;
    if (this.#heartbeatSeconds > 0) {
      const hb = makeHeartbeat({ status: 'online', interval: this.#heartbeatSeconds, wake: (this.#wake?.length ?? 0) > 0 }, Math.floor(this.#now() / 1000));
      this.#stamped(hb)
        .then((t) => link.publish(this.identity.sign(t)))
        .catch(() => undefined);
    }
    if (this.#wake !== undefined) {
      try {
        const r = await this.#sendWake(link);
        if (!r.accepted)
          this.emit(
            'error',
            new ClientError('ROOST_ERR_REFUSED', `${link.url} refused the wake registration: ${r.reason}`, { reason: r.reason, relay: link.url }),
          );
      } catch (err) {
        this.emit('error', err as Error);
      }
    }
  }

  async #relayInfo(url: string): Promise<RelayInfo> {
    let p = this.#info.get(url);
    if (!p) {
      if (!this.#fetch) throw new ClientError('ROOST_ERR_RELAY_INFO', 'no fetch implementation for NIP-11');
      p = fetchRelayInfo(url, this.#fetch);
      this.#info.set(url, p);
      p.catch(() => this.#info.delete(url));
    }
    return p;
  }

  async #sendWake(link: RelayLink): Promise<OkResult> {
    const info = await this.#relayInfo(link.url);
    if (typeof info.pubkey !== 'string' || !/^[0-9a-f]{64}$/.test(info.pubkey)) {
      throw new ClientError('ROOST_ERR_RELAY_INFO', `${link.url} publishes no pubkey in NIP-11: it does not take wake registrations`, { relay: link.url });
    }
    const channels = this.#wake ?? [];
    const event = makeWakeRegistration(this.identity, info.pubkey, channels, Math.floor(this.#now() / 1000));
    this.#log.info({ relay: link.url, channels: channels.length }, 'registering wake channels');
    return link.publish(event);
  }

  #scheduleHeartbeat(): void {
    this.#heartbeatTimer = this.#timers.setTimeout(() => {
      if (this.#state !== 'running') return;
      if (this.connectedRelays.length > 0) this.heartbeat('online').catch(() => undefined);
      this.#scheduleHeartbeat();
    }, this.#heartbeatSeconds * 1000);
  }

  async #handleInbox(event: NostrEvent, delivery: Delivery): Promise<void> {
    if (event.kind !== Kind.GiftWrap) {
      await this.#deliver({ type: 'event', event, relay: delivery.relay, seq: delivery.seq });
      return;
    }
    let msg: DirectMessage;
    try {
      msg = this.openDirectMessage(event, delivery);
    } catch (err) {
      this.#log.warn({ eventId: event.id, relay: delivery.relay }, 'gift wrap could not be opened; skipped');
      this.emit('error', err as Error);
      return;
    }
    await this.#messenger.receiveWrap(msg);
  }

  async #deliver(msg: InboxMessage): Promise<void> {
    if (this.#onMessage) await this.#onMessage(msg);
    else this.emit('message', msg);
  }
}
