import { bytesToHex } from 'nostr-tools/utils';
import type { NostrEvent } from '../shared/event.js';
import { getTagValue } from '../shared/event.js';
import type { Filter } from '../shared/filter.js';
import { Kind } from '../shared/kinds.js';
import type { Timers } from './backoff.js';
import { REQUEST_TAG, RESPONSE_TAG, makeRumor, parseRumor, unwrapDirectMessage, wrapRumor, type Rumor } from './dm.js';
import type { ClientLogger } from './emitter.js';
import { ClientError } from './errors.js';
import { parsePubkey, type Identity } from './identity.js';
import type { KeyLogs } from './key-logs.js';
import type { Outbox, PublishResult } from './outbox.js';
import type { RelayLink } from './relay-link.js';
import type { AgentStore, ParkedMessage } from './store.js';
import { getSpanTag, runInSpan, startHandleSpan, startSendSpan } from './tracing.js';
import type { Tracer } from '@opentelemetry/api';
import type { RtcFactory, RtcIceServer } from './transport/rtc.js';
// Types only: the transport (and the zod schemas of its signalling) stays out of bundles that do not use it.
import type { DeliveryPath, DirectTransport, DirectTransportOptions, PeerMessage } from './transport/webrtc.js';

/**
 * A direct message's whole life, whichever path carries it: the NIP-17 rumor is made once; the path
 * is chosen (a verified direct link, else a NIP-59 gift wrap through the outbox); a message sent
 * over a link is parked in the store until the peer acknowledges it, and one the link hands back
 * unacknowledged goes through the relays; on the way in, ONE durable gate keyed by sender and rumor
 * id hands each message to the application once; responses are matched to their requests.
 */

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
  /** The sender's agent id when its key belongs to a key event log (docs/identity.md). */
  aid?: string;
}

/** Answers requests; the returned text is sent back as the response. */
export type RequestHandler = (req: DirectMessage) => string | Promise<string>;

/** What `send` reports. */
export interface SendResult {
  /** The rumor id (the message id on every path). */
  id: string;
  /** The gift wrap's id; empty when the message went direct. */
  wrapId: string;
  /** The relays' answers; undefined when the message went direct. */
  result: PublishResult | undefined;
  path: DeliveryPath;
}

/** Options of {@link Messenger.enableDirect} (see `DirectOptions` in agent.ts). */
export interface DirectSetup {
  direct: Pick<typeof import('./transport/index.js'), 'createDirectTransport' | 'createRelaySignalling'>;
  rtc: RtcFactory | (() => Promise<RtcFactory>);
  iceServers?: RtcIceServer[] | (() => RtcIceServer[] | Promise<RtcIceServer[]>);
  autoConnect?: boolean;
  accept?: (peer: string) => boolean;
  transport?: Partial<DirectTransportOptions>;
}

/** The durable record behind a {@link DeliveryGate} (the agent's store). */
export interface DeliveryRecord {
  has(key: string): boolean | Promise<boolean>;
  add(keys: readonly string[]): void | Promise<void>;
}

/** How soon a key handed over is written: awaited before `pass` resolves, within RECORD_DELAY_MS, or not at all. */
export type RecordMode = 'now' | 'soon' | 'never';

/** Keys handed over are written together, at most this long after the oldest of them. */
export const RECORD_DELAY_MS = 1;

/**
 * At most this many messages are handed over and not yet recorded at any moment: the next handler
 * waits for the write. It bounds what a crash hands over twice whatever the machine's load.
 */
export const MAX_UNRECORDED = 32;

/** The key a message is de-duplicated under: rumor ids are unique per sender. */
export function getMessageKey(from: string, id: string): string {
  return `${from}:${id}`;
}

/**
 * The one de-duplication gate of direct messages, keyed by sender and rumor id: a message is handed
 * over unless its key passed before (in this run, or recorded in an earlier one), and a second copy
 * arriving while the first is in its handler waits for that handler's outcome. Records are written
 * in batches: a burst a data channel delivers in one go runs its handlers back to back where no
 * timer fires, so the batch is also written from the message path once its oldest key is
 * RECORD_DELAY_MS old — a crash repeats at most what was handled in that last moment, and never
 * more than MAX_UNRECORDED: a handler does not start while that many are handed over but not durable.
 */
export class DeliveryGate {
  readonly #memory = new Set<string>();
  readonly #max: number;
  readonly #inflight = new Map<string, Promise<unknown>>();
  readonly #record: DeliveryRecord | undefined;
  readonly #timers: Timers;
  readonly #now: () => number;
  readonly #log: ClientLogger;
  #unrecorded: string[] = [];
  #unrecordedSince = 0;
  #timer: unknown;
  #recording: Promise<void> = Promise.resolve();
  /** Handlers started whose keys are not durable yet (running, waiting for the batch, or being written). */
  #undurable = 0;
  #room: Array<() => void> = [];

  constructor(opts: { record?: DeliveryRecord; timers: Timers; now: () => number; log: ClientLogger; max?: number }) {
    this.#record = opts.record;
    this.#timers = opts.timers;
    this.#now = opts.now;
    this.#log = opts.log;
    this.#max = Math.max(1, opts.max ?? 20_000);
  }

  /**
   * Runs `handle` unless `key` passed before; resolves true when it ran. A copy that arrives while the
   * first is being handled resolves false only once that handler returned (so a crash meanwhile leaves
   * it unacknowledged and it comes again).
   */
  async pass(key: string, handle: () => void | Promise<void>, record: RecordMode): Promise<boolean> {
    if (this.#memory.has(key)) {
      await this.#inflight.get(key)?.catch(() => undefined);
      return false;
    }
    this.#memory.add(key);
    if (this.#memory.size > this.#max) this.#memory.delete(this.#memory.values().next().value!);
    const durable = this.#record;
    const run = (async () => {
      if (!durable) {
        await handle();
        return true;
      }
      if (await durable.has(key)) return false;
      while (this.#undurable >= MAX_UNRECORDED) {
        if (this.#unrecorded.length > 0) void this.flush();
        await new Promise<void>((resolve) => this.#room.push(resolve));
      }
      this.#undurable++;
      try {
        await handle();
      } catch (err) {
        this.#release(1);
        throw err;
      }
      if (record === 'never') this.#release(1);
      return true;
    })();
    this.#inflight.set(key, run);
    let fresh: boolean;
    try {
      fresh = await run;
    } catch (err) {
      // Not handed over: a later copy may try again.
      this.#memory.delete(key);
      throw err;
    } finally {
      this.#inflight.delete(key);
    }
    if (!fresh) return false;
    if (durable && record !== 'never') {
      const now = this.#now();
      if (this.#unrecorded.length === 0) this.#unrecordedSince = now;
      this.#unrecorded.push(key);
      if (record === 'now' || now - this.#unrecordedSince >= RECORD_DELAY_MS) await this.flush();
      else this.#timer ??= this.#timers.setTimeout(() => void this.flush(), RECORD_DELAY_MS);
    }
    return true;
  }

  /** Writes the keys handed over so far (one write); resolves once they are durable. */
  flush(): Promise<void> {
    const durable = this.#record;
    if (!durable) return Promise.resolve();
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    // Chained: a write under way covers only the keys taken before it started.
    this.#recording = this.#recording.then(async () => {
      if (this.#unrecorded.length === 0) return;
      const keys = this.#unrecorded;
      this.#unrecorded = [];
      try {
        await durable.add(keys);
      } catch (err) {
        // Acknowledged anyway: the sender keeps nothing more, and the copy was handled once.
        this.#log.error({ keys: keys.length, err: String(err) }, 'recording handled direct messages failed');
      } finally {
        this.#release(keys.length);
      }
    });
    return this.#recording;
  }

  #release(n: number): void {
    this.#undurable -= n;
    for (const resolve of this.#room.splice(0)) resolve();
  }
}

/** What a {@link Messenger} is handed: the identity, the store, the outbox and the relay links. */
export interface MessengerDeps {
  identity: Identity;
  store: AgentStore;
  outbox: Outbox;
  links: ReadonlyMap<string, RelayLink>;
  /** Publishes a signed event through the outbox to the agent's relays (`send` over the relay path). */
  publish(event: NostrEvent, opts: { relays?: readonly string[]; timeoutMs?: number; durable?: boolean }): Promise<PublishResult>;
  /** Hands a message to the application. */
  deliver(msg: DirectMessage): Promise<void>;
  /** Peers' key event logs: the key to encrypt to, and whether a sender's key may still speak (key-logs.ts). */
  keys?: Pick<KeyLogs, 'recipient' | 'checkSender'>;
  /** This agent's own keys still read during their grace period, by public key (wraps addressed to them). */
  ownKey?: (pubkey: string) => Identity | undefined;
  /** A message refused because its sender's key no longer speaks for its identity. */
  refused?: (err: ClientError) => void;
  timers: Timers;
  now: () => number;
  log: ClientLogger;
  /** `client.dm.send` spans; the `traceparent` goes in the rumor, inside the encryption. */
  tracer: Tracer;
}

interface PendingRequest {
  resolve: (m: DirectMessage) => void;
  reject: (e: Error) => void;
  timer: unknown;
}

/** Releases of parked direct messages are written together, at most this long after an acknowledgement. */
const RELEASE_DELAY_MS = 20;

/** See the module comment. */
export class Messenger {
  readonly #d: MessengerDeps;
  readonly #gate: DeliveryGate;
  readonly #pending = new Map<string, PendingRequest>();
  #links: DirectTransport | undefined;
  #signalling: { close(): void } | undefined;
  #onRequest: RequestHandler | undefined;
  /** Ids of messages this run parked for a direct link and has not released yet. */
  readonly #parked = new Set<string>();
  /** Messages to park in the next write, and the promise of that write (one write per burst). */
  #parkBatch: ParkedMessage[] = [];
  #parkWrite: Promise<void> | undefined;
  /** Ids to release in the next write (lazily: a release lost in a crash only resends a copy the peer drops). */
  #releaseBatch: string[] = [];
  #releaseTimer: unknown;
  #closed = false;
  /** Sends waiting for a peer's key event log, and the last of them (see #recipient). */
  #resolving = 0;
  #resolveTail: Promise<void> = Promise.resolve();

  constructor(deps: MessengerDeps) {
    this.#d = deps;
    // Handled keys live in the store next to the inbox's seen ids: a copy relayed after a restart is dropped.
    this.#gate = new DeliveryGate({
      record: { has: (key) => deps.store.hasSeen(key), add: (keys) => deps.store.markSeen(keys, deps.now()) },
      timers: deps.timers,
      now: deps.now,
      log: deps.log,
    });
  }

  /** The direct link pool, once {@link enableDirect} was called. */
  get direct(): DirectTransport | undefined {
    return this.#links;
  }

  /** Sets the request handler: its answer goes back to the requester as the response. */
  onRequest(handler: RequestHandler): void {
    this.#onRequest = handler;
  }

  /**
   * Sends a direct message: over the verified link to the recipient when there is one (parked in the
   * store until the peer acknowledges it), else — or when the link hands it back — gift-wrapped
   * through the outbox; resolves when the peer or the relays acknowledged it.
   */
  async send(to: string, content: string, opts: { relays?: readonly string[]; timeoutMs?: number; tags?: string[][] } = {}): Promise<SendResult> {
    const resolved = this.#recipient(parsePubkey(to));
    const recipient = typeof resolved === 'string' ? resolved : await resolved;
    const { span, tag } = startSendSpan(this.#d.tracer, 'client.dm.send');
    return runInSpan(span, async () => {
      const result = await this.#send(recipient, content, tag ? { ...opts, tags: [...(opts.tags ?? []), tag] } : opts);
      span.setAttribute('roost.path', result.path);
      return result;
    });
  }

  async #send(recipient: string, content: string, opts: { relays?: readonly string[]; timeoutMs?: number; tags?: string[][] }): Promise<SendResult> {
    const rumor = makeRumor(this.#d.identity, recipient, content, { tags: opts.tags, createdAt: Math.floor(this.#d.now() / 1000) });
    const pool = this.#links;
    if (pool) {
      const msg: PeerMessage = { id: rumor.id, data: JSON.stringify(rumor) };
      if (pool.canSend(recipient, msg)) {
        // Durable before it goes out over the link (messages parked together share one write).
        await this.#park({ peer: recipient, ...msg });
        if (await pool.send(recipient, msg)) {
          this.#release(rumor.id);
          return { id: rumor.id, wrapId: '', result: undefined, path: 'direct' };
        }
        // The link died before the ack: the same rumor goes through the relays (the peer drops a copy it handled).
        if (this.#closed) throw new ClientError('ROOST_ERR_CLOSED', 'the agent closed; the message stays parked for the next start');
        const wrap = wrapRumor(this.#d.identity, recipient, rumor);
        const { acked } = await this.#d.outbox.enqueue(wrap, this.#targets());
        // At once: a restart would otherwise wrap it a second time.
        if (this.#release(rumor.id)) await this.#writeReleases();
        return { id: rumor.id, wrapId: wrap.id, result: await acked, path: 'relay' };
      }
      // Not direct now; with autoConnect this opens a link in the background.
      void pool.send(recipient, msg);
    }
    const wrap = wrapRumor(this.#d.identity, recipient, rumor);
    const result = await this.#d.publish(wrap, opts);
    return { id: rumor.id, wrapId: wrap.id, result, path: 'relay' };
  }

  /**
   * Sends a request and waits for the response (a direct message carrying the request's correlation
   * id). ROOST_ERR_TIMEOUT when none arrives within `timeoutMs` (default 30 s).
   */
  async request(to: string, content: string, opts: { relays?: readonly string[]; timeoutMs?: number } = {}): Promise<DirectMessage> {
    const corr = bytesToHex(globalThis.crypto.getRandomValues(new Uint8Array(16)));
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const answer = new Promise<DirectMessage>((resolve, reject) => {
      const timer = this.#d.timers.setTimeout(() => {
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
        this.#d.timers.clearTimeout(p.timer);
        this.#pending.delete(corr);
      }
      throw err;
    }
    return answer;
  }

  /** Answers a direct message (with the request's correlation id when it was a request). */
  reply(msg: DirectMessage, content: string, opts: { relays?: readonly string[]; timeoutMs?: number } = {}): Promise<SendResult> {
    const tags = [['e', msg.id, '', 'reply']];
    if (msg.requestId) tags.push([RESPONSE_TAG, msg.requestId]);
    return this.send(msg.from, content, { ...opts, tags });
  }

  /** Opens a gift wrap addressed to this agent; throws ROOST_ERR_DECRYPT. */
  open(wrap: NostrEvent, delivery: { relay: string; seq?: number }): DirectMessage {
    const to = wrap.tags.find((t) => t[0] === 'p')?.[1];
    const me = (to !== undefined && to !== this.#d.identity.pubkey ? this.#d.ownKey?.(to) : undefined) ?? this.#d.identity;
    return toDirectMessage(unwrapDirectMessage(me, wrap), wrap.id, delivery.relay, delivery.seq);
  }

  /**
   * A gift wrap the inbox read from a relay: through the gate (recorded before the inbox commits its
   * cursor when direct links are on; without them only a rumor handed over directly in an earlier run
   * is looked up, the inbox's own record of the wrap being enough).
   */
  async receiveWrap(msg: DirectMessage): Promise<void> {
    await this.#gate.pass(getMessageKey(msg.from, msg.id), () => this.#handle(msg), this.#links ? 'now' : 'never');
  }

  /**
   * Turns on direct links: signalling through the agent's relays, a link pool whose host is this
   * messenger (messages in through the gate; acknowledgements after the gate's records are durable).
   */
  enableDirect(opts: DirectSetup): DirectTransport {
    if (this.#links) return this.#links;
    const { identity, links, now, log } = this.#d;
    const signalling = opts.direct.createRelaySignalling(
      identity,
      [...links.values()].map((link) => ({
        publish: (e: NostrEvent) => link.publish(e),
        subscribe: (filter: Filter, onEvent: (e: NostrEvent) => void) => {
          const h = link.subscribe('roost-direct', { filters: () => [filter], onEvent: (e) => onEvent(e) });
          return () => h.close();
        },
      })),
      { now, log },
    );
    this.#signalling = signalling;
    this.#links = opts.direct.createDirectTransport({
      identity,
      signalling,
      rtc: opts.rtc,
      ...(opts.iceServers ? { iceServers: opts.iceServers } : {}),
      ...(opts.autoConnect !== undefined ? { autoConnect: opts.autoConnect } : {}),
      ...(opts.accept ? { accept: opts.accept } : {}),
      host: {
        receive: (peer, msg) => this.#receiveDirect(peer, msg),
        flush: () => this.#gate.flush(),
      },
      log,
      ...opts.transport,
    });
    return this.#links;
  }

  /**
   * What an earlier run parked for a direct link and never saw acknowledged goes through the relays
   * now, gift-wrapped (the outbox first, then the parked entry goes): the peer drops a copy it handled.
   */
  async publishParked(): Promise<void> {
    const parked = (await this.#d.store.parkList()).filter((p) => !this.#parked.has(p.id));
    if (parked.length === 0) return;
    const me = this.#d.identity.pubkey;
    const done: string[] = [];
    for (const p of parked) {
      const rumor = parseRumor(p.data);
      if (rumor && rumor.pubkey === me) await this.#d.outbox.enqueue(wrapRumor(this.#d.identity, p.peer, rumor), this.#targets());
      else this.#d.log.warn({ msgId: p.id.slice(0, 16) }, 'parked direct message is not our rumor; dropped');
      done.push(p.id);
    }
    await this.#d.store.parkRemove(done);
    this.#d.log.info({ count: done.length }, 'parked direct messages handed to the outbox');
  }

  /** Rejects pending requests and closes the links; then writes what the gate and the park still hold. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pending.values()) {
      this.#d.timers.clearTimeout(p.timer);
      p.reject(new ClientError('ROOST_ERR_CLOSED', 'the agent closed before the response came'));
    }
    this.#pending.clear();
    this.#links?.close();
    this.#signalling?.close();
  }

  /** Writes what is still buffered (call after the relay links closed, before the store closes). */
  async flush(): Promise<void> {
    await this.#gate.flush();
    await this.#parkWrite?.catch(() => undefined);
    await this.#writeReleases();
  }

  // --- internals ---

  /**
   * The key to encrypt to (the peer's current key). Sends keep their order: while one waits for a peer's
   * log to be read, later ones wait behind it; otherwise the answer is at hand and nothing waits.
   */
  #recipient(named: string): string | Promise<string> {
    const keys = this.#d.keys;
    if (!keys) return named;
    const current = keys.recipient(named);
    if (typeof current === 'string' && this.#resolving === 0) return current;
    this.#resolving++;
    const before = this.#resolveTail;
    const mine = before.then(() => current);
    this.#resolveTail = mine.then(
      () => undefined,
      () => undefined,
    );
    return mine.finally(() => this.#resolving--);
  }

  #targets(): string[] {
    return [...this.#d.links.keys()];
  }

  async #receiveDirect(peer: string, msg: PeerMessage): Promise<void> {
    const rumor = parseRumor(msg.data);
    // A direct link is bound to the peer's key: a rumor claiming another author, or another id, is dropped.
    if (!rumor || rumor.id !== msg.id || rumor.pubkey !== peer || rumor.kind !== Kind.PrivateDirectMessage) {
      this.#d.log.debug({ peer: peer.slice(0, 16), msgId: msg.id.slice(0, 16) }, 'direct message is not a rumor of its link; dropped');
      return;
    }
    await this.#gate.pass(getMessageKey(peer, rumor.id), () => this.#handle(toDirectMessage(rumor, '', 'direct', undefined)), 'soon');
  }

  async #handle(msg: DirectMessage): Promise<void> {
    if (this.#d.keys) {
      const check = await this.#d.keys.checkSender(msg.from, msg.createdAt);
      if (check.refused !== undefined) {
        this.#d.log.info({ msgId: msg.id.slice(0, 16), from: msg.from.slice(0, 16) }, 'direct message refused: its key no longer speaks for its identity');
        this.#d.refused?.(new ClientError('ROOST_ERR_KEY_REFUSED', `direct message ${msg.id} refused: ${check.refused}`, { eventId: msg.id }));
        return;
      }
      if (check.aid !== undefined) msg.aid = check.aid;
    }
    if (msg.inReplyTo !== undefined) {
      const pending = this.#pending.get(msg.inReplyTo);
      if (pending) {
        this.#pending.delete(msg.inReplyTo);
        this.#d.timers.clearTimeout(pending.timer);
        pending.resolve(msg);
        return;
      }
    }
    if (msg.requestId !== undefined && this.#onRequest) {
      const handler = this.#onRequest;
      const requestId = msg.requestId;
      // The handler runs in a span of the requester's trace; the response names that span in its rumor.
      const span = startHandleSpan(this.#d.tracer, 'client.request', msg.tags, { 'roost.path': msg.relay === 'direct' ? 'direct' : 'relay' });
      await runInSpan(span, async () => {
        const answer = await handler(msg);
        const tag = getSpanTag(span);
        // Durable before the cursor moves: a crash after this resends the answer, never loses it.
        const rumor = makeRumor(this.#d.identity, msg.from, answer, {
          tags: [['e', msg.id, '', 'reply'], [RESPONSE_TAG, requestId], ...(tag ? [tag] : [])],
          createdAt: Math.floor(this.#d.now() / 1000),
        });
        await this.#d.outbox.enqueue(wrapRumor(this.#d.identity, msg.from, rumor), this.#targets());
      });
      return;
    }
    await this.#d.deliver(msg);
  }

  /** Parks a message for a direct link; resolves once durable (messages parked together share one write). */
  #park(entry: ParkedMessage): Promise<void> {
    this.#parked.add(entry.id);
    this.#parkBatch.push(entry);
    this.#parkWrite ??= Promise.resolve().then(async () => {
      const batch = this.#parkBatch;
      this.#parkBatch = [];
      this.#parkWrite = undefined;
      await this.#d.store.parkAdd(batch);
    });
    return this.#parkWrite;
  }

  /** The peer acknowledged a parked message, or the outbox holds it now; false when it was not parked. */
  #release(id: string): boolean {
    if (!this.#parked.delete(id)) return false;
    this.#releaseBatch.push(id);
    this.#releaseTimer ??= this.#d.timers.setTimeout(() => void this.#writeReleases(), RELEASE_DELAY_MS);
    return true;
  }

  async #writeReleases(): Promise<void> {
    if (this.#releaseTimer !== undefined) this.#d.timers.clearTimeout(this.#releaseTimer);
    this.#releaseTimer = undefined;
    if (this.#releaseBatch.length === 0) return;
    const ids = this.#releaseBatch;
    this.#releaseBatch = [];
    try {
      await this.#d.store.parkRemove(ids);
    } catch (err) {
      this.#d.log.error({ count: ids.length, err: String(err) }, 'releasing parked direct messages failed');
    }
  }
}

/** A direct message as handed to the application, from its rumor and how it arrived. */
export function toDirectMessage(rumor: Rumor, wrapId: string, relay: string, seq: number | undefined): DirectMessage {
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
