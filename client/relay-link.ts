import type { NostrEvent } from '../shared/event.js';
import type { Filter } from '../shared/filter.js';
import { matchFilters } from '../shared/filter.js';
import { Kind } from '../shared/kinds.js';
import type { RelayMessage } from '../shared/messages/relay.js';
import { getReasonPrefix } from '../shared/reason.js';
import { getBackoffDelay, systemTimers, type Timers } from './backoff.js';
import { Emitter, silentLogger, type ClientLogger } from './emitter.js';
import { ClientError } from './errors.js';
import { verifyEvent, type Identity } from './identity.js';
import { parseRelayMessage } from '../shared/messages/relay-parse.js';

/**
 * The WebSocket surface a link needs: the browser's `WebSocket` and Node's `ws` both fit. Handlers
 * are typed `(ev: never)` so either implementation's event types are accepted.
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: never) => void) | null;
  onmessage: ((ev: never) => void) | null;
  onclose: ((ev: never) => void) | null;
  onerror: ((ev: never) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/**
 * Why a WebSocket failed, from its error event: `ws` in Node carries the cause (`connect ECONNREFUSED …`,
 * `getaddrinfo ENOTFOUND …`, a TLS error, `Unexpected server response: 429 Too Many Requests: rate-limited: …` through
 * client/node's WebSocket); browsers hide it, so undefined there.
 */
export function getConnectionErrorCause(ev: unknown): string | undefined {
  const err = (ev as { error?: unknown } | null)?.error ?? ev;
  const message = (err as { message?: unknown } | null)?.message;
  // one line: OpenSSL's messages end in a newline
  const line = typeof message === 'string' ? message.replace(/\s+/g, ' ').trim() : '';
  return line !== '' ? line : undefined;
}

/** A WebSocket class (`WebSocket` in browsers, `ws` in Node). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Where a link is in its life. */
export type LinkState = 'idle' | 'connecting' | 'authenticating' | 'ready' | 'closed';

/** The answer of a relay to one event. */
export interface OkResult {
  relay: string;
  accepted: boolean;
  reason: string;
}

/** A standing subscription the link re-sends after every reconnect (and re-authentication). */
export interface SubscriptionSpec {
  /** Filters for the next REQ, computed afresh each time (so a cursor can move on). */
  filters(): Filter[];
  /** A verified event that matches the filters; `seq` in sequence mode. */
  onEvent(event: NostrEvent, seq: number | undefined): void;
  onEose?(cursor: number | undefined, more: boolean): void;
  /** The relay ended the subscription; the link will not re-send it until `resubscribe`. */
  onClosed?(reason: string): void;
}

/** Tunables and I/O edges of a link; every one has a default. */
export interface RelayLinkOptions {
  WebSocket: WebSocketConstructor;
  /** Answers NIP-42 challenges when given. */
  identity?: Identity;
  /** Further keys to authenticate as on each challenge (the agent's rotated-out keys during their grace period). */
  alsoAuth?: () => readonly Identity[];
  timers?: Timers;
  /** Uniform in [0, 1): backoff jitter. */
  random?: () => number;
  /** Milliseconds since the epoch. */
  now?: () => number;
  verify?: (event: NostrEvent) => boolean;
  log?: ClientLogger;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  connectTimeoutMs?: number;
  /** How long to wait after opening for an AUTH challenge before going ready unauthenticated. */
  authWaitMs?: number;
  /** A link that heard nothing for this long sends a ping (a REQ for nothing, answered by EOSE). */
  pingIntervalMs?: number;
  /** A ping unanswered for this long means the connection is dead: it is dropped and re-opened. */
  pingTimeoutMs?: number;
  /** How long an EVENT may wait for its OK. */
  okTimeoutMs?: number;
}

/** What a link tells its owner. */
export type LinkEvents = {
  ready: [authed: boolean];
  disconnected: [reason: string];
  notice: [message: string];
  auth: [pubkey: string];
};

interface PendingOk {
  event: NostrEvent;
  /** Refused with auth-required while unauthenticated: re-sent once, after AUTH succeeds. */
  awaitingAuth: boolean;
  /** That refusal, answered if AUTH fails. */
  refusal?: string;
  promise: Promise<OkResult>;
  resolve: (r: OkResult) => void;
  reject: (e: Error) => void;
  timer: unknown;
}

interface ActiveSub {
  spec: SubscriptionSpec;
  /** Filters of the REQ in force, for re-checking events. */
  filters: Filter[];
  /** True while the relay has it open. */
  open: boolean;
  /** Closed with auth-required: re-sent once authentication succeeds. */
  awaitingAuth: boolean;
}

const OPEN = 1;
const PING_FILTER: Filter = { ids: ['0'.repeat(64)], limit: 1 };
/** Subscription id of the REQ that asks a relay challenging on demand for its challenge. */
const AUTH_PROBE_ID = 'auth:probe';

/** Normalises a relay URL for use as a key: lowercase scheme and host, no trailing slash. */
export function normalizeRelayUrl(url: string): string {
  try {
    const u = new URL(url.trim());
    const path = u.pathname.replace(/\/+$/, '');
    return `${u.protocol}//${u.host.toLowerCase()}${path}${u.search}`;
  } catch {
    throw new ClientError('ROOST_ERR_BAD_INPUT', `not a relay URL: ${JSON.stringify(url.slice(0, 100))}`);
  }
}

/**
 * One relay connection that keeps itself alive: reconnects with exponential backoff and full
 * jitter, answers NIP-42 AUTH, detects dead connections with application-level pings (browsers
 * cannot send WebSocket pings), re-sends standing subscriptions after every reconnect, verifies
 * and re-checks every event against its subscription's filters.
 */
export class RelayLink extends Emitter<LinkEvents> {
  readonly url: string;
  #opts: Required<Omit<RelayLinkOptions, 'identity'>> & { identity: Identity | undefined };
  #state: LinkState = 'idle';
  #socket: WebSocketLike | undefined;
  #attempt = 0;
  #authed = false;
  #authEventId: string | undefined;
  /** The challenge answered on this connection (a relay may repeat it with each refusal). */
  #answered: string | undefined;
  #lastFrameAt = 0;
  #pingSeq = 0;
  #pingOut: string | undefined;
  /** Timers of the current connection, cleared when it goes. */
  #timers = new Set<unknown>();
  /** Timers of callers (whenReady, query), cleared only by close(). */
  #callerTimers = new Set<unknown>();
  #reconnectTimer: unknown;
  #pending = new Map<string, PendingOk>();
  #subs = new Map<string, ActiveSub>();
  #readyWaiters = new Set<() => void>();

  constructor(url: string, opts: RelayLinkOptions) {
    super();
    this.url = normalizeRelayUrl(url);
    this.#opts = {
      timers: systemTimers,
      random: Math.random,
      now: Date.now,
      verify: verifyEvent,
      log: silentLogger,
      reconnectBaseMs: 500,
      reconnectMaxMs: 30_000,
      connectTimeoutMs: 10_000,
      authWaitMs: 1500,
      pingIntervalMs: 30_000,
      pingTimeoutMs: 10_000,
      okTimeoutMs: 15_000,
      alsoAuth: () => [],
      ...opts,
      identity: opts.identity,
    };
  }

  /** Current state. */
  get state(): LinkState {
    return this.#state;
  }

  /** True when this connection has authenticated (NIP-42). */
  get authed(): boolean {
    return this.#authed;
  }

  /** True when events and subscriptions can be sent now. */
  get isReady(): boolean {
    return this.#state === 'ready';
  }

  /** Opens the connection (and keeps re-opening it until `close`). */
  start(): void {
    if (this.#state !== 'idle') return;
    this.#connect();
  }

  /** Closes for good: no reconnect; pending OKs fail with ROOST_ERR_CLOSED. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    if (this.#reconnectTimer !== undefined) this.#opts.timers.clearTimeout(this.#reconnectTimer);
    this.#teardown('closed by the client', 'ROOST_ERR_CLOSED');
    this.emit('disconnected', 'closed by the client');
    for (const w of [...this.#readyWaiters]) w();
    this.#readyWaiters.clear();
    for (const t of this.#callerTimers) this.#opts.timers.clearTimeout(t);
    this.#callerTimers.clear();
  }

  /** Resolves true once ready, false after `timeoutMs` or when closed. */
  whenReady(timeoutMs: number): Promise<boolean> {
    if (this.isReady) return Promise.resolve(true);
    if (this.#state === 'closed') return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = () => {
        this.#readyWaiters.delete(done);
        this.#clearCaller(timer);
        resolve(this.isReady);
      };
      const timer = this.#afterCaller(timeoutMs, done);
      this.#readyWaiters.add(done);
    });
  }

  /**
   * Sends an event and resolves with the relay's OK. Fails with ROOST_ERR_DISCONNECTED when the
   * link is not ready or drops first, ROOST_ERR_TIMEOUT when no OK comes in time.
   */
  publish(event: NostrEvent): Promise<OkResult> {
    const existing = this.#pending.get(event.id);
    if (existing) return existing.promise;
    if (!this.isReady) return Promise.reject(new ClientError('ROOST_ERR_DISCONNECTED', `not connected to ${this.url}`, { relay: this.url, eventId: event.id }));
    let resolve!: (r: OkResult) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<OkResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const timer = this.#after(this.#opts.okTimeoutMs, () => {
      this.#pending.delete(event.id);
      reject(new ClientError('ROOST_ERR_TIMEOUT', `no OK from ${this.url} within ${this.#opts.okTimeoutMs} ms`, { relay: this.url, eventId: event.id }));
    });
    this.#pending.set(event.id, { event, awaitingAuth: false, promise, resolve, reject, timer });
    this.#send(['EVENT', event]);
    return promise;
  }

  /** Sends an event without waiting for anything (ephemeral events); false when not ready. */
  fire(event: NostrEvent): boolean {
    if (!this.isReady) return false;
    return this.#send(['EVENT', event]);
  }

  /** Adds a standing subscription (sent now if ready, and after every reconnect). */
  subscribe(subId: string, spec: SubscriptionSpec): { close(): void } {
    const prev = this.#subs.get(subId);
    if (prev?.open) this.#send(['CLOSE', subId]);
    const sub: ActiveSub = { spec, filters: [], open: false, awaitingAuth: false };
    this.#subs.set(subId, sub);
    if (this.isReady) this.#req(subId, sub);
    return {
      close: () => {
        if (this.#subs.get(subId) !== sub) return;
        this.#subs.delete(subId);
        if (sub.open && this.isReady) this.#send(['CLOSE', subId]);
      },
    };
  }

  /** Re-sends a standing subscription with fresh filters (after the relay closed it). */
  resubscribe(subId: string): void {
    const sub = this.#subs.get(subId);
    if (sub && this.isReady) this.#req(subId, sub);
  }

  /** One-shot query: the stored events matching the filters, up to EOSE. */
  async query(filters: Filter[], timeoutMs = 10_000): Promise<NostrEvent[]> {
    if (!(await this.whenReady(timeoutMs))) throw new ClientError('ROOST_ERR_DISCONNECTED', `not connected to ${this.url}`, { relay: this.url });
    const subId = `q:${(this.#opts.random() * 2 ** 48).toString(36)}`;
    const events: NostrEvent[] = [];
    return new Promise<NostrEvent[]>((resolve, reject) => {
      let handle: { close(): void } | undefined;
      const finish = (err?: Error) => {
        this.#clearCaller(timer);
        offDown();
        handle?.close();
        if (err) reject(err);
        else resolve(events);
      };
      const timer = this.#afterCaller(timeoutMs, () => finish(new ClientError('ROOST_ERR_TIMEOUT', `no EOSE from ${this.url}`, { relay: this.url })));
      const offDown = this.on('disconnected', () => finish(new ClientError('ROOST_ERR_DISCONNECTED', `lost ${this.url}`, { relay: this.url })));
      handle = this.subscribe(subId, {
        filters: () => filters,
        onEvent: (ev) => events.push(ev),
        onEose: () => finish(),
        onClosed: (reason) => finish(new ClientError('ROOST_ERR_REFUSED', `${this.url} refused the query: ${reason}`, { reason, relay: this.url })),
      });
    });
  }

  // --- connection life ---

  #connect(): void {
    this.#state = 'connecting';
    this.#authed = false;
    let socket: WebSocketLike;
    try {
      socket = new this.#opts.WebSocket(this.url);
    } catch (err) {
      this.#opts.log.warn({ relay: this.url, err: String(err) }, 'cannot open socket');
      this.emit('disconnected', `cannot open a WebSocket: ${getConnectionErrorCause(err) ?? String(err)}`);
      this.#scheduleReconnect();
      return;
    }
    this.#socket = socket;
    const connectTimer = this.#after(this.#opts.connectTimeoutMs, () => this.#drop('connect timeout'));
    socket.onopen = () => {
      if (this.#socket !== socket) return;
      this.#clear(connectTimer);
      this.#state = 'authenticating';
      this.#lastFrameAt = this.#opts.now();
      this.#after(this.#opts.identity ? this.#opts.authWaitMs : 0, () => {
        if (this.#state === 'authenticating') this.#goReady();
      });
      this.#probeAuth();
      this.#schedulePing();
    };
    socket.onmessage = (ev: { data: unknown }) => {
      if (this.#socket !== socket) return;
      this.#lastFrameAt = this.#opts.now();
      this.#pingOut = undefined;
      const text = typeof ev.data === 'string' ? ev.data : String(ev.data);
      const msg = parseRelayMessage(text);
      if (!msg) {
        this.#opts.log.debug({ relay: this.url }, 'malformed frame ignored');
        return;
      }
      try {
        this.#handle(msg);
      } catch (err) {
        this.#opts.log.error({ relay: this.url, err: String(err), stack: (err as Error).stack }, 'frame handler failed');
      }
    };
    let cause: string | undefined;
    socket.onclose = (ev: { code?: number; reason?: string }) => {
      if (this.#socket !== socket) return;
      this.#clear(connectTimer);
      this.#lost(cause ?? `closed (${ev?.code ?? 'no code'})`);
    };
    socket.onerror = (ev: unknown) => {
      // a close event follows; reconnecting is decided there, with this cause as the reason
      cause = getConnectionErrorCause(ev);
    };
  }

  /**
   * A relay may challenge only when a request needs it (Roost's default, `auth_challenge: demand`).
   * An identity asks for the challenge at once with a REQ for its own private messages that matches
   * nothing: a relay that guards them answers AUTH and `CLOSED auth-required:`, and the link
   * authenticates before it is ready; a relay that does not answers EOSE, and the link is ready
   * without waiting for a challenge that will not come.
   */
  #probeAuth(): void {
    const identity = this.#opts.identity;
    if (!identity) return;
    this.#send(['REQ', AUTH_PROBE_ID, { ids: ['0'.repeat(64)], kinds: [Kind.EncryptedDirectMessage, Kind.GiftWrap], '#p': [identity.pubkey], limit: 1 }]);
  }

  #goReady(): void {
    this.#state = 'ready';
    this.#attempt = 0;
    for (const [subId, sub] of this.#subs) this.#req(subId, sub);
    this.emit('ready', this.#authed);
    for (const w of [...this.#readyWaiters]) w();
  }

  /** Drops a connection that is dead or stuck, without waiting for a closing handshake. */
  #drop(reason: string): void {
    const socket = this.#socket;
    if (!socket) return;
    this.#opts.log.info({ relay: this.url, reason }, 'dropping connection');
    this.#lost(reason);
  }

  #lost(reason: string): void {
    if (this.#state === 'closed') return;
    this.#teardown(reason, 'ROOST_ERR_DISCONNECTED');
    this.emit('disconnected', reason);
    this.#scheduleReconnect();
  }

  #teardown(reason: string, code: 'ROOST_ERR_DISCONNECTED' | 'ROOST_ERR_CLOSED'): void {
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      // Closing a socket that is still connecting makes `ws` emit an error; with no listener it would be thrown.
      socket.onerror = () => {};
      try {
        const s = socket as WebSocketLike & { terminate?: () => void };
        if (s.terminate && code === 'ROOST_ERR_DISCONNECTED') s.terminate();
        else if (socket.readyState <= OPEN) socket.close(1000);
      } catch {
        // already gone
      }
    }
    for (const t of this.#timers) this.#opts.timers.clearTimeout(t);
    this.#timers.clear();
    if (this.#state !== 'closed') this.#state = 'connecting';
    this.#authed = false;
    this.#authEventId = undefined;
    this.#answered = undefined;
    this.#pingOut = undefined;
    for (const sub of this.#subs.values()) sub.open = false;
    for (const [id, p] of this.#pending) {
      this.#opts.timers.clearTimeout(p.timer);
      p.reject(new ClientError(code, `${this.url}: ${reason} before OK`, { relay: this.url, eventId: id }));
    }
    this.#pending.clear();
  }

  #scheduleReconnect(): void {
    if (this.#state === 'closed') return;
    const delay = getBackoffDelay(this.#attempt++, this.#opts.reconnectBaseMs, this.#opts.reconnectMaxMs, this.#opts.random);
    this.#opts.log.debug({ relay: this.url, delay, attempt: this.#attempt }, 'reconnecting');
    this.#reconnectTimer = this.#opts.timers.setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#state !== 'closed') this.#connect();
    }, delay);
  }

  #schedulePing(): void {
    const every = this.#opts.pingIntervalMs;
    const tick = () => {
      if (!this.#socket) return;
      const idle = this.#opts.now() - this.#lastFrameAt;
      if (this.#pingOut === undefined && idle >= every) {
        const id = `ping:${++this.#pingSeq}`;
        this.#pingOut = id;
        this.#send(['REQ', id, PING_FILTER]);
        this.#after(this.#opts.pingTimeoutMs, () => {
          if (this.#pingOut === id) this.#drop('ping timeout');
        });
      }
      this.#after(Math.max(50, every - Math.min(idle, every)), tick);
    };
    this.#after(every, tick);
  }

  // --- frames ---

  #handle(msg: RelayMessage): void {
    switch (msg.type) {
      case 'EVENT': {
        const sub = this.#subs.get(msg.subId);
        if (!sub) return;
        if (!matchFilters(sub.filters, msg.event) || !this.#opts.verify(msg.event)) {
          this.#opts.log.warn({ relay: this.url, eventId: msg.event.id }, 'event failed its signature or filter check; dropped');
          return;
        }
        sub.spec.onEvent(msg.event, msg.seq);
        return;
      }
      case 'EOSE': {
        if (msg.subId.startsWith('ping:')) {
          this.#send(['CLOSE', msg.subId]);
          return;
        }
        if (msg.subId === AUTH_PROBE_ID) {
          this.#send(['CLOSE', msg.subId]);
          // Answered without a challenge before it: nothing to wait for.
          if (this.#state === 'authenticating' && this.#answered === undefined) this.#goReady();
          return;
        }
        this.#subs.get(msg.subId)?.spec.onEose?.(msg.cursor, msg.more ?? false);
        return;
      }
      case 'CLOSED': {
        const sub = this.#subs.get(msg.subId);
        if (!sub) return;
        sub.open = false;
        if (getReasonPrefix(msg.reason) === 'auth-required' && this.#opts.identity && !this.#authed) {
          sub.awaitingAuth = true;
          return;
        }
        sub.spec.onClosed?.(msg.reason);
        return;
      }
      case 'OK': {
        if (msg.eventId === this.#authEventId) {
          this.#authEventId = undefined;
          this.#onAuthResult(msg.accepted, msg.reason);
          return;
        }
        const p = this.#pending.get(msg.eventId);
        if (!p) return;
        if (!msg.accepted && getReasonPrefix(msg.reason) === 'auth-required' && this.#answered !== undefined && !this.#authed && !p.awaitingAuth) {
          // The relay challenges with (just before) this refusal; the event is re-sent once AUTH succeeds.
          p.awaitingAuth = true;
          p.refusal = msg.reason;
          return;
        }
        this.#pending.delete(msg.eventId);
        this.#opts.timers.clearTimeout(p.timer);
        this.#timers.delete(p.timer);
        p.resolve({ relay: this.url, accepted: msg.accepted, reason: msg.reason });
        return;
      }
      case 'AUTH':
        this.#answerChallenge(msg.challenge);
        return;
      case 'NOTICE':
        this.#opts.log.info({ relay: this.url, notice: msg.message.slice(0, 200) }, 'relay notice');
        this.emit('notice', msg.message);
        return;
      case 'COUNT':
        return;
    }
  }

  /**
   * Answers the connection's challenge again (NIP-42), as the link's identity and its further keys: the identity's
   * key was rotated in place. The new key's acceptance is reported by the `auth` event; keys authenticated before
   * stay authenticated on this connection. Nothing happens when the relay never challenged this connection.
   */
  reauthenticate(): void {
    const challenge = this.#answered;
    this.#answered = undefined;
    if (challenge !== undefined) this.#answerChallenge(challenge);
  }

  #authTemplate(challenge: string) {
    return {
      kind: Kind.ClientAuth,
      created_at: Math.floor(this.#opts.now() / 1000),
      tags: [
        ['relay', this.url],
        ['challenge', challenge],
      ],
      content: '',
    };
  }

  #answerChallenge(challenge: string): void {
    const identity = this.#opts.identity;
    if (!identity || challenge === this.#answered) return;
    this.#answered = challenge;
    const template = this.#authTemplate(challenge);
    // Sent first: the relay has them before the main AUTH's OK makes the link ready (answers are not awaited).
    for (const extra of this.#opts.alsoAuth()) this.#send(['AUTH', extra.sign(template)]);
    const auth = identity.sign(template);
    this.#authEventId = auth.id;
    this.#send(['AUTH', auth]);
  }

  #onAuthResult(accepted: boolean, reason: string): void {
    if (!accepted) {
      this.#opts.log.warn({ relay: this.url, reason }, 'authentication refused');
      if (this.#state === 'authenticating') this.#goReady();
      for (const sub of this.#subs.values()) {
        if (!sub.awaitingAuth) continue;
        sub.awaitingAuth = false;
        sub.spec.onClosed?.(reason || 'auth-required: authentication refused');
      }
      for (const [id, p] of this.#pending) {
        if (!p.awaitingAuth) continue;
        this.#pending.delete(id);
        this.#clear(p.timer);
        p.resolve({ relay: this.url, accepted: false, reason: p.refusal ?? 'auth-required: authentication refused' });
      }
      return;
    }
    this.#authed = true;
    this.emit('auth', this.#opts.identity!.pubkey);
    if (this.#state === 'authenticating') {
      this.#goReady();
      return;
    }
    for (const [subId, sub] of this.#subs) {
      if (sub.awaitingAuth) this.#req(subId, sub);
    }
    for (const p of this.#pending.values()) if (p.awaitingAuth) this.#send(['EVENT', p.event]);
  }

  #req(subId: string, sub: ActiveSub): void {
    sub.filters = sub.spec.filters();
    sub.open = true;
    sub.awaitingAuth = false;
    this.#send(['REQ', subId, ...sub.filters]);
  }

  #send(frame: unknown[]): boolean {
    const s = this.#socket;
    if (!s || s.readyState !== OPEN) return false;
    try {
      s.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  #after(ms: number, fn: () => void): unknown {
    const t = this.#opts.timers.setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
    return t;
  }

  #clear(t: unknown): void {
    this.#opts.timers.clearTimeout(t);
    this.#timers.delete(t);
  }

  #afterCaller(ms: number, fn: () => void): unknown {
    const t = this.#opts.timers.setTimeout(() => {
      this.#callerTimers.delete(t);
      fn();
    }, ms);
    this.#callerTimers.add(t);
    return t;
  }

  #clearCaller(t: unknown): void {
    this.#opts.timers.clearTimeout(t);
    this.#callerTimers.delete(t);
  }
}
