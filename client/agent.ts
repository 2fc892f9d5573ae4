import { makeRelayList } from '../shared/nip65.js';
import { Router } from './routing.js';
import type { AgentCard, HeartbeatStatus } from '../shared/agent-card.js';
import type { EventTemplate, NostrEvent } from '../shared/event.js';
import type { Filter } from '../shared/filter.js';
import { type KeyLog, verifyKeyLog } from '../shared/identity-log.js';
import { Kind } from '../shared/kinds.js';
import { Docs, Presence, Wake } from './agent-parts.js';
import { sleep, systemTimers, type Timers } from './backoff.js';
import type { AgentDoc, AgentDocOptions, IdentityDocs } from './crdt-relay.js';
import { Emitter, silentLogger, type ClientLogger } from './emitter.js';
import { DecisionClient } from './decisions.js';
import { ClientError } from './errors.js';
import { parsePubkey, verifyEvent, type Identity } from './identity.js';
import { Inbox, type Delivery } from './inbox.js';
import { KeyLogs } from './key-logs.js';
import { fetchReputation } from './reputation.js';
import type { Reputation } from '../shared/reputation.js';
import { Messenger, type DirectMessage, type DirectSetup, type RequestHandler, type SendResult } from './messaging.js';
import type { FetchLike } from './nip11.js';
import { Outbox, type PublishResult, type Settlement } from './outbox.js';
import type { AgentInfo } from './presence.js';
import { Publisher, type PublishOptions } from './publisher.js';
import { RelayLink, normalizeRelayUrl, type OkResult, type RelayLinkOptions, type WebSocketConstructor } from './relay-link.js';
import { MemoryStore, type AgentStore } from './store.js';
import { TaskClient } from './tasks.js';
// Types only: the transport (and the zod schemas of its signalling) stays out of bundles that do not use it.
import type { DirectTransport } from './transport/webrtc.js';
import type { WakeChannel } from './wake.js';
import { makeWorkHost } from './work-host.js';
import { getDefaultTracer, runInSpan, startHandleSpan } from './tracing.js';
import type { Tracer } from '@opentelemetry/api';

export type { PublishOptions } from './publisher.js';

/** How long `start()` waits for the relays to acknowledge the agent's key event log (a relay down does not hold it longer). */
const KEY_LOG_PUBLISH_WAIT_MS = 2000;

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
  /**
   * Outbox routing (NIP-65, default true): a message without `relays` goes to the relays its recipient reads
   * (its kind 10002 list or agent card, looked up on this agent's relays), opening write-only links as needed.
   */
  routing?: boolean;
  /** Read the inbox (default true). A send-only agent sets false. */
  inbox?: boolean;
  /** Heartbeat period in seconds while running (default 300; 0: no heartbeat). */
  heartbeatSeconds?: number;
  /**
   * This agent's key event log (docs/identity.md): its events (the current key must be the head's) and
   * the rotated-out keys, whose mail is read until their grace period ends. Published on start.
   */
  keyLog?: { events: readonly NostrEvent[]; retired?: readonly Identity[] };
  /**
   * Where this agent's keys are kept (Node: the key ring in its home): what `agent.rotate()` and `agent.revoke()`
   * ask for the signed key event and the key that becomes current. Without it those throw ROOST_ERR_BAD_INPUT.
   */
  keySource?: KeySource;
  /**
   * Documents addressed by their owner's agent id (`agent.doc(name, { identity })`): pass `identityDocs`
   * of client/identity-docs.ts (createNodeAgent does); kept out of bundles that do not open them.
   */
  identityDocs?: IdentityDocs;
  /**
   * Follow peers' key event logs (default true): encrypt to a peer's current key and refuse messages
   * signed by keys that no longer speak for their identity. Costs one look-up per new peer key.
   */
  followKeyLogs?: boolean;
  /** Spans for publishes, DMs and handled messages (default: the global OpenTelemetry tracer, a no-op until an SDK is registered). */
  tracer?: Tracer;
  /**
   * Relays to prefer for a direct message to `peer` (e.g. a LAN relay the peer advertised:
   * `LocalDiscovery.relaysFor`); used when the agent is connected to them and the send names none.
   */
  preferRelays?: (peer: string) => readonly string[];
}

/** One step of the agent's key event log taken by its key store: the signed event and the key it makes current. */
export interface KeyStep {
  event: NostrEvent;
  current: Identity;
}

/**
 * Where an agent's keys are kept: it signs (and records) a rotation or a revocation of the current key, and
 * `adopt` switches the running agent to it (client/key-step.ts: `adoptKeyStep`; passed in, as the direct
 * transport is, so browser bundles that cannot rotate do not carry it).
 */
export interface KeySource {
  rotate(): KeyStep | Promise<KeyStep>;
  revoke(reason?: string): KeyStep | Promise<KeyStep>;
  adopt(step: KeyStep, host: KeyStepHost): Promise<KeyLog>;
}

/** What {@link KeySource.adopt} may touch of the agent (its parts, handed over for the one step). */
export interface KeyStepHost {
  agent: Agent;
  /** The agent's key events so far. */
  events: readonly NostrEvent[];
  /** Keeps a rotated-out key to read (and authenticate) until `until` (seconds). */
  retire(identity: Identity, until: number): void;
  setLog(events: readonly NostrEvent[], log: KeyLog): void;
  links: RelayLink[];
  wake: Pick<Wake, 'reregister'>;
  presence: Pick<Presence, 'republishCard'>;
  log: ClientLogger;
}

/** Creates an agent (not connected yet: call `start()`). */
export function createAgent(opts: AgentOptions): Agent {
  return new Agent(opts);
}

/**
 * A thin agent over one or more relays: durable acknowledged publishing, an exactly-once inbox
 * resumed from per-relay cursors, end-to-end encrypted direct messages with request/response,
 * presence and discovery, and push-wake registration. A facade: the work is done by a Publisher,
 * a Messenger, Presence, Wake and Docs, each handed the links, store and publisher it needs.
 */
export class Agent extends Emitter<AgentEvents> {
  /** The agent's keypair; after `rotate()` / `revoke()` the same object holds the new key. */
  readonly identity: Identity;
  /** Signed task lifecycles: request, offer, accept, status, result, onRequest (docs/tasks.md). */
  readonly tasks: TaskClient;
  /** Proposals, ballots and tallies (docs/decisions.md). */
  readonly decisions: DecisionClient;
  readonly #links = new Map<string, RelayLink>();
  /** Write-only links to recipients' relays (outbox routing), opened on first use. */
  readonly #remote = new Map<string, RelayLink>();
  /** Own and remote links: where the outbox delivers. */
  readonly #delivery = new Map<string, RelayLink>();
  readonly #router: Router | undefined;
  readonly #store: AgentStore;
  readonly #outbox: Outbox;
  readonly #inbox: Inbox | undefined;
  readonly #publisher: Publisher;
  readonly #messenger: Messenger;
  readonly #presence: Presence;
  readonly #wake: Wake;
  readonly #docs: Docs;
  readonly #random: () => number;
  readonly #timers: Timers;
  readonly #now: () => number;
  readonly #tracer: Tracer;
  readonly #preferRelays: ((peer: string) => readonly string[]) | undefined;
  readonly #log: ClientLogger;
  #keyEvents: readonly NostrEvent[];
  readonly #keySource: KeySource | undefined;
  /** Rotations in place run one at a time. */
  #rotating: Promise<unknown> = Promise.resolve();
  #keyLogPublished: Promise<void>;
  #onKeyLogPublished: () => void = () => undefined;
  readonly #ownKeys = new Map<string, { identity: Identity; until: number }>();
  /** Agent id of this agent's key event log; undefined for a bare key. */
  readonly aid: string | undefined;
  #keyLog: KeyLog | undefined;
  /** Peers' key event logs, as this agent follows them. */
  readonly keyLogs: KeyLogs;
  #onMessage: MessageHandler | undefined;
  #state: 'new' | 'running' | 'closed' = 'new';

  constructor(opts: AgentOptions) {
    super();
    if (opts.relays.length === 0) throw new ClientError('ROOST_ERR_NO_RELAY', 'an agent needs at least one relay');
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new ClientError('ROOST_ERR_BAD_INPUT', 'no WebSocket implementation: pass one (Node 20: the ws package, or use client/node)');
    this.identity = opts.identity;
    this.#keySource = opts.keySource;
    const store = (this.#store = opts.store ?? new MemoryStore());
    const timers: Timers = (this.#timers = opts.timers ?? systemTimers);
    const random = (this.#random = opts.random ?? Math.random);
    const now = (this.#now = opts.now ?? Date.now);
    const log = (this.#log = opts.log ?? silentLogger);
    const tracer = (this.#tracer = opts.tracer ?? getDefaultTracer());
    this.#preferRelays = opts.preferRelays;
    const fetch = opts.fetch ?? (globalThis.fetch ? (globalThis.fetch.bind(globalThis) as unknown as FetchLike) : undefined);
    const identity = opts.identity;
    const links = this.#links;
    this.#keyEvents = opts.keyLog?.events ?? [];
    this.#keyLogPublished = new Promise((resolve) => (this.#onKeyLogPublished = resolve));
    if (opts.keyLog) {
      const first = this.#keyEvents[0];
      const own = first ? verifyKeyLog(first.id, this.#keyEvents) : 'the key event log is empty';
      if (typeof own === 'string' || own.current !== identity.pubkey) {
        throw new ClientError(
          'ROOST_ERR_KEY_FILE',
          `the key event log does not name ${identity.pubkey} as the current key: ${typeof own === 'string' ? own : own.status}`,
        );
      }
      this.#keyLog = own;
      this.aid = own.aid;
      for (const r of opts.keyLog.retired ?? []) {
        const until = own.keys.find((k) => k.pubkey === r.pubkey)?.until;
        if (until !== undefined) this.#ownKeys.set(r.pubkey, { identity: r, until });
      }
    }
    this.keyLogs = new KeyLogs({
      fetch: (filters, timeoutMs) => this.#fetchOnce(filters, timeoutMs),
      subscribe: (filters, onEvent) => this.subscribe(filters, onEvent),
      connected: () => this.connectedRelays.length > 0,
      now,
      log,
    });
    const follow = opts.followKeyLogs !== false;
    for (const url of opts.relays) {
      const link = new RelayLink(url, {
        ...opts.link,
        WebSocket: WS,
        identity,
        timers,
        random,
        now,
        verify: opts.verify ?? verifyEvent,
        alsoAuth: () => this.readKeys.flatMap((k) => this.#ownKeys.get(k)?.identity ?? []),
        log,
      });
      if (this.#links.has(link.url)) continue;
      this.#links.set(link.url, link);
      link.on('ready', (authed) => {
        this.emit('ready', link.url, authed);
        void this.#onLinkReady(link);
      });
      link.on('disconnected', (reason) => {
        this.#wake.onDisconnected(link.url);
        this.emit('disconnected', link.url, reason);
      });
    }
    for (const [url, link] of links) this.#delivery.set(url, link);
    const openLink = (url: string): RelayLink => {
      const known = this.#delivery.get(url);
      if (known) return known;
      const link = new RelayLink(url, { ...opts.link, WebSocket: WS, identity, timers, random, now, verify: opts.verify ?? verifyEvent, log });
      this.#remote.set(link.url, link);
      this.#delivery.set(link.url, link);
      this.#outbox.watch(link.url, link);
      if (this.#state !== 'closed') link.start();
      return link;
    };
    const outbox = (this.#outbox = new Outbox(store, this.#delivery, { timers, random, log, openLink, ...opts.outbox }));
    if (opts.routing !== false) this.#router = new Router({ links, openLink, now, log });
    outbox.on('refused', (s) => this.emit('refused', s));
    outbox.on('accepted', (s) => this.emit('accepted', s));
    const publisher = (this.#publisher = new Publisher({ identity, store, outbox, links, timers, now, tracer, remoteLinks: this.#remote }));
    this.#messenger = new Messenger({
      identity,
      store,
      outbox,
      links,
      publish: (event, o) => publisher.publishSigned(event, o),
      deliver: (msg) => this.#deliver(msg),
      ...(follow ? { keys: this.keyLogs } : {}),
      ownKey: (pubkey) => this.#ownKeys.get(pubkey)?.identity,
      refused: (err) => this.emit('error', err),
      timers,
      now,
      log,
      tracer,
    });
    const wake = (this.#wake = new Wake({ identity, links, fetch, now, log }));
    this.#presence = new Presence({
      identity,
      links,
      publisher,
      fetch,
      timers,
      now,
      heartbeatSeconds: opts.heartbeatSeconds ?? 300,
      wakeable: () => wake.wakeable,
      keyLogs: this.keyLogs,
      keyVersion: () => (this.keyLog ? { aid: this.keyLog.aid, keySeq: this.keyLog.head.seq } : undefined),
    });
    this.#docs = new Docs({
      identity,
      links,
      store,
      outbox,
      timers,
      now,
      random,
      log,
      keyLogs: this.keyLogs,
      ...(this.aid === undefined ? {} : { aid: this.aid }),
      ...(opts.identityDocs ? { identityDocs: opts.identityDocs } : {}),
    });
    if (opts.inbox !== false) {
      this.#inbox = new Inbox(
        store,
        () => this.readKeys,
        (ev, d) => this.#handleInbox(ev, d),
        { timers, random, now, log },
      );
      this.#inbox.on('caughtUp', (relay, cursor) => this.emit('caughtUp', relay, cursor));
      this.#inbox.on('handlerFailed', (_ev, err) => this.emit('error', err instanceof Error ? err : new Error(String(err))));
    }
    // Its own log too: its documents and electorates know its earlier keys, and its rotations are watched.
    if (this.keyLog) this.keyLogs.add(this.keyLog.aid, this.#keyEvents);
    const work = makeWorkHost(this, now, tracer);
    this.tasks = new TaskClient(work);
    this.decisions = new DecisionClient(work);
  }

  /** The agent's current public key (hex); it changes with `rotate()` / `revoke()`. */
  get pubkey(): string {
    return this.identity.pubkey;
  }

  /** This agent's verified key event log; undefined for a bare key. */
  get keyLog(): KeyLog | undefined {
    return this.#keyLog;
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
    await this.#messenger.publishParked();
    if (this.#inbox) {
      await this.#inbox.prune();
      for (const link of this.#links.values()) await this.#inbox.attach(link);
    }
    const firstAttempts = [...this.#links.values()].map((link) => this.#firstAttempt(link));
    for (const link of this.#links.values()) link.start();
    this.#presence.start();
    if (opts.waitForRelay === false) return;
    await this.#anyReady(firstAttempts);
    // Peers look a key up when they first meet it: a new log head should be on a relay before the agent speaks.
    if (this.#keyEvents.length > 0 && !(await this.#store.hasSeen(this.#keyLogMark()))) {
      await Promise.race([this.#keyLogPublished, sleep(this.#timers, KEY_LOG_PUBLISH_WAIT_MS)]);
    }
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
  publish(template: EventTemplate | (Partial<EventTemplate> & { kind: number }), opts: PublishOptions = {}): Promise<PublishResult> {
    return this.#publisher.publish(template, opts);
  }

  /** Publishes an already signed event (same rules as {@link publish}). */
  publishSigned(event: NostrEvent, opts: PublishOptions = {}): Promise<PublishResult> {
    return this.#publisher.publishSigned(event, opts);
  }

  /** Fire and forget (ephemeral events): sent to the relays connected now; returns how many. */
  publishEphemeral(template: Partial<EventTemplate> & { kind: number }): { event: NostrEvent; sentTo: number } {
    return this.#publisher.publishEphemeral(template);
  }

  /**
   * Sends an end-to-end encrypted direct message (NIP-17 rumor): over a verified direct link when
   * there is one (`path: 'direct'`, resolved on the peer's acknowledgement), else in a NIP-59 gift
   * wrap through the outbox, resolved when the relays acknowledged it (`wrapId`, `result`).
   */
  async send(to: string, content: string, opts: PublishOptions & { tags?: string[][] } = {}): Promise<SendResult> {
    return this.#messenger.send(to, content, this.#preferred(to, opts) ?? (await this.#routed(to, opts)));
  }

  /** A LAN relay the recipient advertised (`preferRelays`), when connected to it and the send names no relays. */
  #preferred<T extends PublishOptions>(to: string, opts: T): T | undefined {
    if (opts.relays !== undefined || !this.#preferRelays) return undefined;
    const connected = new Set(this.connectedRelays);
    const preferred = this.#preferRelays(parsePubkey(to))
      .map(normalizeRelayUrl)
      .filter((r) => connected.has(r));
    return preferred.length > 0 ? { ...opts, relays: preferred } : undefined;
  }

  /** Outbox routing: without `relays`, a message goes to the relays its recipient reads, when they are known. */
  async #routed<T extends PublishOptions>(to: string, opts: T): Promise<T> {
    if (opts.relays || !this.#router) return opts;
    const relays = await this.#router.route(to);
    return relays ? { ...opts, relays } : opts;
  }

  /** Publishes the relays this agent reads as its NIP-65 relay list (kind 10002); `publishCard` does it too. */
  async publishRelayList(opts: PublishOptions = {}): Promise<PublishResult> {
    return this.#publisher.publish(makeRelayList(this.relays, Math.floor(this.#now() / 1000)), opts);
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
    return this.#messenger.request(to, content, await this.#routed(to, opts));
  }

  /** Answers a direct message (with the request's correlation id when it was a request). */
  async reply(msg: DirectMessage, content: string, opts: PublishOptions = {}): Promise<SendResult> {
    return this.#messenger.reply(msg, content, await this.#routed(msg.from, opts));
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

  /**
   * Rotates this agent's key in place, without a restart (docs/identity.md): the key source signs the rotation
   * (the current key co-signs, the pre-committed next key becomes current), then on every connected relay the
   * link authenticates (NIP-42) as the new key and the inbox asks for the new key's mail as well as the old
   * key's (read until its grace period ends), and only then is the rotation published, so nothing can be sent
   * to the new key before the agent reads it; wake channels are registered again and the card of this session
   * is republished by the new key. Resolves with the new log. ROOST_ERR_BAD_INPUT without a key source.
   */
  rotate(): Promise<KeyLog> {
    return this.#takeKeyStep((s) => s.rotate());
  }

  /**
   * Revokes the current key in place (compromise): as {@link rotate}, but the old key gets no grace period —
   * its mail is no longer read, and peers refuse it at once.
   */
  revoke(opts: { reason?: string } = {}): Promise<KeyLog> {
    return this.#takeKeyStep((s) => s.revoke(opts.reason));
  }

  #takeKeyStep(take: (source: KeySource) => KeyStep | Promise<KeyStep>): Promise<KeyLog> {
    const run = this.#rotating.then(async () => {
      const source = this.#keySource;
      if (!source || !this.#keyLog) throw new ClientError('ROOST_ERR_BAD_INPUT', 'this agent has no key source');
      if (this.#state === 'closed') throw new ClientError('ROOST_ERR_CLOSED', 'the agent is closed');
      const step = await take(source);
      // The old key stays readable until its window ends (the grace period; none after a revocation).
      return source.adopt(step, {
        agent: this,
        events: this.#keyEvents,
        retire: (identity, until) => this.#ownKeys.set(identity.pubkey, { identity, until }),
        setLog: (events, log) => {
          this.#keyEvents = events;
          this.#keyLog = log;
        },
        links: [...this.#links.values()],
        wake: this.#wake,
        presence: this.#presence,
        log: this.#log,
      });
    });
    this.#rotating = run.catch(() => undefined);
    return run;
  }

  /**
   * Reads an agent's key event log from the connected relays and verifies it here (docs/identity.md),
   * by agent id or by any key the log revealed. Resolves with the log, or with why there is none.
   */
  async fetchKeyLog(who: { aid: string } | { pubkey: string }, opts: { timeoutMs?: number } = {}): Promise<KeyLog | string> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    if ('aid' in who) return this.keyLogs.fetchLog(who.aid, timeoutMs);
    const aid = await this.keyLogs.findAid(who.pubkey, timeoutMs);
    if (aid === undefined) return `no key event by ${who.pubkey} on the connected relays`;
    return this.keyLogs.fetchLog(aid, timeoutMs);
  }

  /**
   * The keys whose mail this agent reads: the current one, and its rotated-out keys until their grace period
   * ends (for a live `#p` subscription of one's own, as `roost agent tail` makes).
   */
  get readKeys(): string[] {
    const nowSec = Math.floor(this.#now() / 1000);
    const keys = [this.pubkey];
    for (const [pubkey, k] of this.#ownKeys) if (nowSec < k.until) keys.push(pubkey);
    return keys;
  }

  /** Stored events matching `filters` from every connected relay, until each has sent EOSE or the timeout. */
  #fetchOnce(filters: Filter[], timeoutMs: number): Promise<NostrEvent[]> {
    return new Promise((resolve) => {
      const got: NostrEvent[] = [];
      const waiting = new Set(this.connectedRelays);
      let sub: { close(): void } | undefined;
      let finished = false;
      const done = () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        sub?.close();
        resolve(got);
      };
      const timer = setTimeout(done, timeoutMs);
      sub = this.subscribe(filters, (ev) => got.push(ev), {
        onEose: (relay) => {
          waiting.delete(relay);
          if (waiting.size === 0) done();
        },
      });
      if (waiting.size === 0) done();
    });
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
    return this.#docs.open(name, opts);
  }

  /** Publishes (replaces) this agent's card; `relays` defaults to the agent's relays. */
  async publishCard(card: Omit<AgentCard, 'relays'> & { relays?: string[] }, opts: PublishOptions = {}): Promise<PublishResult> {
    const [result] = await Promise.all([this.#presence.publishCard(card, opts), this.publishRelayList(opts)]);
    return result;
  }

  /** Publishes a heartbeat now (not durable: a stale one is worth nothing). */
  heartbeat(status: HeartbeatStatus = 'online', timeoutMs = 5000): Promise<PublishResult> {
    return this.#presence.heartbeat(status, timeoutMs);
  }

  /**
   * Finds agents offering every capability asked for, across the agent's relays, with presence:
   * online (a relay sees it connected, or a fresh heartbeat), asleep (wakeable by push) or offline.
   */
  async discover(query: { capabilities?: readonly string[]; minReputation?: number; timeoutMs?: number } = {}): Promise<AgentInfo[]> {
    const found = await this.#presence.discover(query);
    if (query.minReputation === undefined) return found;
    const reps = await this.reputation(
      found.map((f) => f.pubkey),
      query.timeoutMs === undefined ? {} : { timeoutMs: query.timeoutMs },
    );
    const min = query.minReputation;
    return found.flatMap((f) => {
      const r = reps.get(f.pubkey);
      return r && r.score >= min ? [{ ...f, reputation: r.score }] : [];
    });
  }

  /**
   * The reputation of each key's identity (shared/reputation.ts: completed and failed tasks from their
   * signed chains, attestations weighted by the attesters' task standing and capped), computed here
   * from what the connected relays hold; follows identities across rotations.
   */
  reputation(pubkeys: readonly string[], opts: { timeoutMs?: number } = {}): Promise<Map<string, Reputation>> {
    return fetchReputation({ fetch: (f, t) => this.#fetchOnce(f, t), keyLogs: this.keyLogs }, pubkeys.map(parsePubkey), opts.timeoutMs ?? 5000);
  }

  /**
   * Registers the devices that wake this agent (APNs/FCM) with every relay, now and again on every
   * connect. Resolves with each connected relay's answer. An empty list removes them.
   */
  registerWake(channels: readonly WakeChannel[]): Promise<OkResult[]> {
    return this.#wake.register(channels);
  }

  /** Removes every wake channel from the relays (re-sent on connect during this session). */
  removeWake(): Promise<OkResult[]> {
    return this.registerWake([]);
  }

  /**
   * Stops: publishes a last heartbeat (asleep when wakeable, else offline), waits for the handler in
   * progress, keeps unacknowledged events in the outbox, closes the connections and the store.
   */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    await this.#presence.stop(true);
    this.keyLogs.close();
    await this.#docs.close();
    await this.#inbox?.close();
    this.#outbox.close();
    await this.#messenger.close();
    for (const link of this.#links.values()) link.close();
    for (const link of this.#remote.values()) link.close();
    await this.#messenger.flush();
    await this.#store.close();
  }

  // --- internals ---

  async #onLinkReady(link: RelayLink): Promise<void> {
    if (this.#state !== 'running') return;
    this.#presence.onReady(link);
    if (this.#keyEvents.length > 0) void this.#publishKeyLog(link);
    const err = await this.#wake.onReady(link);
    if (err) this.emit('error', err);
  }

  /**
   * The whole key event log to a relay on every connect (not through the outbox: it is re-sent anyway),
   * so a relay that missed a rotation, or was added since, learns it; `start()` waits for the first.
   */
  async #publishKeyLog(link: RelayLink): Promise<void> {
    let all = true;
    for (const ev of this.#keyEvents) {
      const r = await link.publish(ev).catch((err: Error) => ({ accepted: false, reason: String(err.message) }));
      if (!r.accepted && !r.reason.startsWith('duplicate:')) {
        all = false;
        this.#log.warn({ relay: link.url, eventId: ev.id, reason: r.reason }, 'relay refused a key event of this agent');
        this.emit(
          'error',
          new ClientError('ROOST_ERR_REFUSED', `${link.url} refused key event ${ev.id}: ${r.reason}`, { reason: r.reason, relay: link.url, eventId: ev.id }),
        );
      }
    }
    if (all) await this.#store.markSeen([this.#keyLogMark()], this.#now()).catch(() => undefined);
    this.#onKeyLogPublished();
  }

  /** Recorded (with the seen ids) once a relay holds the log up to its head: later starts do not wait for it. */
  #keyLogMark(): string {
    return `roost-kel:${this.keyLog?.head.id}`;
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
    const span =
      msg.type === 'dm'
        ? startHandleSpan(this.#tracer, 'client.handle', msg.tags, { 'roost.message': 'dm', 'roost.path': msg.relay === 'direct' ? 'direct' : 'relay' })
        : startHandleSpan(this.#tracer, 'client.handle', msg.event.tags, { 'roost.message': 'event', 'nostr.event.id': msg.event.id });
    await runInSpan(span, async () => {
      if (msg.type === 'dm' && (await this.tasks.handleDirectMessage(msg))) return;
      if (this.#onMessage) await this.#onMessage(msg);
      else this.emit('message', msg);
    });
  }
}
