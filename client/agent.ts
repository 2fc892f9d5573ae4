import { bytesToHex } from 'nostr-tools/utils';
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
import { REQUEST_TAG, RESPONSE_TAG, makeRumor, parseRumor, unwrapDirectMessage, wrapDirectMessage, wrapRumor, type Rumor } from './dm.js';
import { getSeenKey } from './transport/reliable.js';
import type { RtcFactory, RtcIceServer } from './transport/rtc.js';
// Types only: the transport (and the zod schemas of its signalling) stays out of bundles that do not use it.
import type { DeliveryPath, DirectTransport, DirectTransportOptions } from './transport/webrtc.js';
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
import { MemoryStore, type AgentStore, type ParkedMessage } from './store.js';
import { checkWakeChannels, makeWakeRegistration, type WakeChannel } from './wake.js';

/** Options of {@link Agent.enableDirect}. */
export interface DirectOptions {
  /**
   * The transport module, passed in so it is bundled only by applications that use it:
   * `import * as direct from './client/transport/index.js'` (dist/ when built), then `{ direct, rtc }`.
   */
  direct: Pick<typeof import('./transport/index.js'), 'createDirectTransport' | 'createRelaySignalling'>;
  /** The WebRTC implementation: `getBrowserRtc()` in browsers, `loadNodeRtc` (client/node/rtc.ts) in Node. */
  rtc: RtcFactory | (() => Promise<RtcFactory>);
  /** STUN/TURN servers (default: none beyond what the relays advertise in NIP-11 `ice_servers`). */
  iceServers?: RtcIceServer[] | (() => RtcIceServer[] | Promise<RtcIceServer[]>);
  /** Open a direct link in the background when sending to a peer without one. */
  autoConnect?: boolean;
  /** Whether to answer an offer from this peer (default: everyone). */
  accept?: (peer: string) => boolean;
  /** Further transport tunables (timeouts, limits). */
  transport?: Partial<DirectTransportOptions>;
}

/** A direct message (NIP-17 in a NIP-59 gift wrap) after unwrapping. */
export interface DirectMessage {
  type: 'dm';
  /** Id of the inner (rumor) event. */
  id: string;
  /** The sender, proven by the seal's signature. */
  from: string;
  content: string;
  tags: string[][];
  /** The sender's own timestamp (the wrap's is blurred). */
  createdAt: number;
  kind: number;
  /** Id of the gift wrap (what relays store); empty when it came over a direct link. */
  wrapId: string;
  /** The relay URL it came through, or `direct` for a direct WebRTC link. */
  relay: string;
  seq: number | undefined;
  /** Set when the sender awaits an answer: reply with `agent.reply(msg, ...)` or an `onRequest` handler. */
  requestId: string | undefined;
  /** The request this message answers. */
  inReplyTo: string | undefined;
}

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

/** Answers requests; the returned text is sent back as the response. */
export type RequestHandler = (req: DirectMessage) => string | Promise<string>;

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

interface PendingRequest {
  resolve: (m: DirectMessage) => void;
  reject: (e: Error) => void;
  timer: unknown;
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
  #direct: DirectTransport | undefined;
  #signalling: { close(): void } | undefined;
  /** Relayed DMs awaiting the direct transport's de-duplication, by rumor id. */
  readonly #relayedDms = new Map<string, DirectMessage>();
  /** Ids of messages this run parked for a direct link and has not released yet. */
  readonly #parked = new Set<string>();
  /** Messages to park in the next write, and the promise of that write (one write per burst). */
  #parkBatch: ParkedMessage[] = [];
  #parkWrite: Promise<void> | undefined;
  /** Ids to release in the next write (lazily: a release lost in a crash only resends a copy the peer drops). */
  #releaseBatch: string[] = [];
  #releaseTimer: unknown;
  readonly #store: AgentStore;
  readonly #outbox: Outbox;
  readonly #inbox: Inbox | undefined;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #log: ClientLogger;
  readonly #fetch: FetchLike | undefined;
  readonly #heartbeatSeconds: number;
  readonly #pending = new Map<string, PendingRequest>();
  readonly #info = new Map<string, Promise<RelayInfo>>();
  readonly #docs = new Map<string, Promise<AgentDoc>>();
  #onMessage: MessageHandler | undefined;
  #onRequest: RequestHandler | undefined;
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
    this.#onRequest = handler;
    return this;
  }

  /**
   * Connects to every relay, resends what the outbox kept, and resumes the inbox from its cursors.
   * Resolves once one relay is ready. Rejects with ROOST_ERR_UNREACHABLE (`details.causes`: relay → cause)
   * when the first attempt on every relay failed (refused, DNS, TLS, an HTTP answer such as 429 with its
   * reason, or no answer within `connectTimeoutMs`); the agent keeps reconnecting in the background and
   * keeps its outbox, so publishing still queues: `close()` stops it. `waitForRelay: false` resolves without
   * waiting (an agent that works offline and catches up later); failures then show only as `disconnected`.
   */
  async start(opts: { waitForRelay?: boolean } = {}): Promise<void> {
    if (this.#state !== 'new') return;
    this.#state = 'running';
    await this.#outbox.load();
    await this.#publishParked();
    if (this.#inbox) {
      await this.#inbox.prune();
      for (const link of this.#links.values()) await this.#inbox.attach(link);
    }
    const firstAttempts = [...this.#links.values()].map((link) => this.#firstAttempt(link));
    for (const link of this.#links.values()) link.start();
    if (this.#heartbeatSeconds > 0) this.#scheduleHeartbeat();
    if (opts.waitForRelay !== false) await this.#anyReady(firstAttempts);
  }

  /** Resolves with undefined when the link's first connection goes ready, else with why it failed. */
  #firstAttempt(link: RelayLink): Promise<string | undefined> {
    return new Promise((resolve) => {
      const offReady = link.on('ready', () => settle(undefined));
      const offDown = link.on('disconnected', (reason) => settle(reason));
      const settle = (cause: string | undefined) => {
        offReady();
        offDown();
        resolve(cause);
      };
    });
  }

  /** Resolves at the first relay ready; rejects once every relay's first attempt failed. */
  #anyReady(attempts: Promise<string | undefined>[]): Promise<void> {
    const urls = [...this.#links.keys()];
    const causes: Record<string, string> = {};
    let failed = 0;
    return new Promise((resolve, reject) => {
      attempts.forEach((attempt, i) => {
        void attempt.then((cause) => {
          if (cause === undefined) return resolve();
          causes[urls[i]!] = cause;
          if (++failed < attempts.length) return;
          if (this.#state === 'closed') return reject(new ClientError('ROOST_ERR_CLOSED', 'agent closed while connecting'));
          const list = Object.entries(causes).map(([url, why]) => `${url}: ${why}`);
          reject(new ClientError('ROOST_ERR_UNREACHABLE', `no relay reachable (${list.join('; ')}); still retrying in the background`, { causes }));
        });
      });
    });
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
   * Sends an end-to-end encrypted direct message (NIP-17 rumor, NIP-59 gift wrap) through the
   * outbox; resolves when the relays acknowledged the wrap.
   */
  async send(
    to: string,
    content: string,
    opts: PublishOptions & { tags?: string[][] } = {},
  ): Promise<{ id: string; wrapId: string; result: PublishResult | undefined; path: DeliveryPath }> {
    const recipient = parsePubkey(to);
    const rumor = makeRumor(this.identity, recipient, content, { tags: opts.tags, createdAt: Math.floor(this.#now() / 1000) });
    if (this.#direct) {
      // The transport picks the path; the relay path (and a dying link's unacknowledged messages)
      // gift-wraps this same rumor, so the receiver de-duplicates by its id.
      const msg = { id: rumor.id, data: JSON.stringify(rumor) };
      // Durable before it goes out over the link; with no link it goes to the outbox (no await in between).
      if (this.#direct.isDirect(recipient)) await this.#park({ peer: recipient, ...msg });
      const path = await this.#direct.send(recipient, msg);
      if (path === 'direct') this.#release(rumor.id);
      const relayed = this.#lastRelayed.get(rumor.id);
      this.#lastRelayed.delete(rumor.id);
      return { id: rumor.id, wrapId: relayed?.wrapId ?? '', result: relayed?.result, path };
    }
    const wrap = wrapRumor(this.identity, recipient, rumor);
    const result = await this.publishSigned(wrap, opts);
    return { id: rumor.id, wrapId: wrap.id, result, path: 'relay' };
  }

  /**
   * Turns on direct WebRTC links (issue 6): signalling goes through this agent's relays as
   * encrypted ephemeral events, messages to a peer with a verified link go over it, and anything
   * a dying link did not acknowledge falls back to the relay, de-duplicated on arrival.
   */
  enableDirect(opts: DirectOptions): DirectTransport {
    if (this.#direct) return this.#direct;
    const signalling = opts.direct.createRelaySignalling(
      this.identity,
      [...this.#links.values()].map((link) => ({
        publish: (e: NostrEvent) => link.publish(e),
        subscribe: (filter: Filter, onEvent: (e: NostrEvent) => void) => {
          const h = link.subscribe('roost-direct', { filters: () => [filter], onEvent: (e) => onEvent(e) });
          return () => h.close();
        },
      })),
      { now: this.#now, log: this.#log },
    );
    this.#signalling = signalling;
    this.#direct = opts.direct.createDirectTransport({
      identity: this.identity,
      signalling,
      rtc: opts.rtc,
      ...(opts.iceServers ? { iceServers: opts.iceServers } : {}),
      ...(opts.autoConnect !== undefined ? { autoConnect: opts.autoConnect } : {}),
      ...(opts.accept ? { accept: opts.accept } : {}),
      relayPath: {
        send: async (peer, msg) => {
          // A closing agent's links hand back what they hold: it stays parked for the next start.
          if (this.#state === 'closed') throw new ClientError('ROOST_ERR_CLOSED', 'the agent is closed');
          const rumor = parseRumor(msg.data);
          if (!rumor) throw new ClientError('ROOST_ERR_BAD_INPUT', 'direct message is not a rumor');
          const wrap = wrapRumor(this.identity, peer, rumor);
          const { acked } = await this.#outbox.enqueue(wrap, this.relays);
          // At once: a restart would otherwise wrap it a second time (a copy only a peer with direct links on drops).
          if (this.#release(rumor.id)) await this.#writeReleases();
          const result = await acked;
          this.#lastRelayed.set(rumor.id, { wrapId: wrap.id, result });
        },
      },
      onMessage: (peer, msg, path) => this.#onPeerMessage(peer, msg.data, path),
      // Handled ids live in the store next to the inbox's: a copy relayed after a restart is dropped.
      handled: {
        has: (key) => this.#store.hasSeen(key),
        add: (keys) => this.#store.markSeen(keys, this.#now()),
      },
      log: this.#log,
      ...opts.transport,
    });
    return this.#direct;
  }

  /** Opens (or reuses) a verified direct link to `peer`; needs {@link enableDirect} first. */
  async connectDirect(peer: string): Promise<void> {
    if (!this.#direct) throw new ClientError('ROOST_ERR_BAD_INPUT', 'call enableDirect({ rtc }) before connectDirect');
    await this.#direct.connect(parsePubkey(peer));
  }

  /** What the relay path reported for a message `send` is waiting on (taken by `send`). */
  readonly #lastRelayed = new Map<string, { wrapId: string; result: PublishResult }>();

  async #onPeerMessage(peer: string, data: string, path: DeliveryPath): Promise<void> {
    const rumor: Rumor | undefined = parseRumor(data);
    if (!rumor) return;
    if (path === 'relay') {
      const msg = this.#relayedDms.get(rumor.id);
      this.#relayedDms.delete(rumor.id);
      if (msg) await this.#handleDm(msg);
      return;
    }
    // A direct link is bound to the peer's key: a rumor claiming another author is dropped.
    if (rumor.pubkey !== peer || rumor.kind !== Kind.PrivateDirectMessage) return;
    await this.#handleDm(toDirectMessage(rumor, '', 'direct', undefined));
  }

  /**
   * Sends a request and waits for the response (a direct message carrying the request's correlation
   * id). ROOST_ERR_TIMEOUT when none arrives within `timeoutMs` (default 30 s).
   */
  async request(to: string, content: string, opts: PublishOptions & { timeoutMs?: number } = {}): Promise<DirectMessage> {
    if (!this.#inbox) throw new ClientError('ROOST_ERR_BAD_INPUT', 'request needs the inbox (inbox: false was set)');
    const corr = bytesToHex(globalThis.crypto.getRandomValues(new Uint8Array(16)));
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const answer = new Promise<DirectMessage>((resolve, reject) => {
      const timer = this.#timers.setTimeout(() => {
        this.#pending.delete(corr);
        reject(new ClientError('ROOST_ERR_TIMEOUT', `no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(corr, { resolve, reject, timer });
    });
    answer.catch(() => {});
    try {
      await this.send(to, content, { ...opts, timeoutMs, tags: [[REQUEST_TAG, corr]] });
    } catch (err) {
      const p = this.#pending.get(corr);
      if (p) {
        this.#timers.clearTimeout(p.timer);
        this.#pending.delete(corr);
      }
      throw err;
    }
    return answer;
  }

  /** Answers a direct message (with the request's correlation id when it was a request). */
  async reply(msg: DirectMessage, content: string, opts: PublishOptions = {}): ReturnType<Agent['send']> {
    const tags = [['e', msg.id, '', 'reply']];
    if (msg.requestId) tags.push([RESPONSE_TAG, msg.requestId]);
    return this.send(msg.from, content, { ...opts, tags });
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
    return toDirectMessage(unwrapDirectMessage(this.identity, wrap), wrap.id, delivery.relay, delivery.seq);
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
    for (const p of this.#pending.values()) {
      this.#timers.clearTimeout(p.timer);
      p.reject(new ClientError('ROOST_ERR_CLOSED', 'the agent closed before the response came'));
    }
    this.#pending.clear();
    this.#direct?.close();
    this.#signalling?.close();
    for (const link of this.#links.values()) link.close();
    await this.#direct?.recordHandled();
    await this.#parkWrite?.catch(() => undefined);
    await this.#writeReleases();
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
    if (this.#direct) {
      // Through the transport, which drops a message already received over a direct link.
      this.#relayedDms.set(msg.id, msg);
      const fresh = await this.#direct.deliverRelayed(msg.from, { id: msg.id, data: JSON.stringify(rumorOf(msg)) });
      if (!fresh) this.#relayedDms.delete(msg.id);
      return;
    }
    // Handed over by a direct link in an earlier run (direct links are off in this one).
    if (await this.#store.hasSeen(getSeenKey(msg.from, msg.id))) return;
    await this.#handleDm(msg);
  }

  /** Parks a message for a direct link; resolves once durable (messages parked together share one write). */
  #park(entry: ParkedMessage): Promise<void> {
    this.#parked.add(entry.id);
    this.#parkBatch.push(entry);
    this.#parkWrite ??= Promise.resolve().then(async () => {
      const batch = this.#parkBatch;
      this.#parkBatch = [];
      this.#parkWrite = undefined;
      await this.#store.parkAdd(batch);
    });
    return this.#parkWrite;
  }

  /** The peer acknowledged a parked message, or the outbox holds it now; false when it was not parked. */
  #release(id: string): boolean {
    if (!this.#parked.delete(id)) return false;
    this.#releaseBatch.push(id);
    this.#releaseTimer ??= this.#timers.setTimeout(() => void this.#writeReleases(), RELEASE_DELAY_MS);
    return true;
  }

  async #writeReleases(): Promise<void> {
    if (this.#releaseTimer !== undefined) this.#timers.clearTimeout(this.#releaseTimer);
    this.#releaseTimer = undefined;
    if (this.#releaseBatch.length === 0) return;
    const ids = this.#releaseBatch;
    this.#releaseBatch = [];
    try {
      await this.#store.parkRemove(ids);
    } catch (err) {
      this.#log.error({ count: ids.length, err: String(err) }, 'releasing parked direct messages failed');
    }
  }

  /**
   * What an earlier run parked for a direct link and never saw acknowledged goes through the relays
   * now, gift-wrapped (the outbox first, then the parked entry goes): the peer drops a copy it handled.
   */
  async #publishParked(): Promise<void> {
    const parked = (await this.#store.parkList()).filter((p) => !this.#parked.has(p.id));
    if (parked.length === 0) return;
    const done: string[] = [];
    for (const p of parked) {
      const rumor = parseRumor(p.data);
      if (rumor && rumor.pubkey === this.pubkey) await this.#outbox.enqueue(wrapRumor(this.identity, p.peer, rumor), this.relays);
      else this.#log.warn({ msgId: p.id.slice(0, 16) }, 'parked direct message is not our rumor; dropped');
      done.push(p.id);
    }
    await this.#store.parkRemove(done);
    this.#log.info({ count: done.length }, 'parked direct messages handed to the outbox');
  }

  async #handleDm(msg: DirectMessage): Promise<void> {
    if (msg.inReplyTo !== undefined) {
      const pending = this.#pending.get(msg.inReplyTo);
      if (pending) {
        this.#pending.delete(msg.inReplyTo);
        this.#timers.clearTimeout(pending.timer);
        pending.resolve(msg);
        return;
      }
    }
    if (msg.requestId !== undefined && this.#onRequest) {
      const answer = await this.#onRequest(msg);
      // Durable before the cursor moves: a crash after this resends the answer, never loses it.
      const { wrap } = wrapDirectMessage(this.identity, msg.from, answer, {
        tags: [
          ['e', msg.id, '', 'reply'],
          [RESPONSE_TAG, msg.requestId],
        ],
        createdAt: Math.floor(this.#now() / 1000),
      });
      await this.#outbox.enqueue(wrap, this.relays);
      return;
    }
    await this.#deliver(msg);
  }

  async #deliver(msg: InboxMessage): Promise<void> {
    if (this.#onMessage) await this.#onMessage(msg);
    else this.emit('message', msg);
  }
}

/** Releases of parked direct messages are written together, at most this long after an acknowledgement. */
const RELEASE_DELAY_MS = 20;

/** A direct message as handed to the application, from its rumor and how it arrived. */
function toDirectMessage(rumor: Rumor, wrapId: string, relay: string, seq: number | undefined): DirectMessage {
  return {
    type: 'dm',
    id: rumor.id,
    from: rumor.pubkey,
    content: rumor.content,
    tags: rumor.tags,
    createdAt: rumor.created_at,
    kind: rumor.kind,
    wrapId,
    relay,
    seq,
    requestId: getTagValue(rumor, REQUEST_TAG),
    inReplyTo: getTagValue(rumor, RESPONSE_TAG),
  };
}

/** The rumor a direct message was opened from (for the transport's de-duplication by id). */
function rumorOf(msg: DirectMessage): Rumor {
  return { id: msg.id, pubkey: msg.from, created_at: msg.createdAt, kind: msg.kind, tags: msg.tags, content: msg.content };
}
