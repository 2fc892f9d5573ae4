import { bytesToHex } from 'nostr-tools/utils';
import { DirectError, type DirectErrorCode } from './errors.js';
import { DIRECT_CHANNEL_LABEL, encodeLinkFrame, parseLinkFrame, type LinkFrame } from './frames.js';
import { checkProof, makeProof, type ProofContext } from './proof.js';
import { SendWindow } from './reliable.js';
import type { RtcDataChannelLike, RtcFactory, RtcIceCandidateInit, RtcIceServer, RtcPeerConnectionLike } from './rtc.js';
import { getSdpFingerprint, matchSdpFingerprint, normalizeFingerprint } from './sdp.js';
import type { DirectIdentity, ReceivedSignal, SignalPayload } from './signal.js';

/** A message as the direct layer carries it: an id unique per sender (the rumor id) and opaque data. */
export interface PeerMessage {
  id: string;
  data: string;
}

/** The path a message took. */
export type DeliveryPath = 'direct' | 'relay';

/**
 * What the link pool asks of its owner (the agent's messenger): nothing else calls back. Messages
 * arriving on verified links go to `receive`; a link acknowledges them only once `receive` resolved
 * and then `flush` resolved (what was handed over is durable).
 */
export interface LinkHost {
  /** A message from `peer` on a verified link (the link vouches for the sender), in the link's order. */
  receive(peer: string, msg: PeerMessage): void | Promise<void>;
  /** Resolves once every message received so far is recorded; acknowledgements wait for it. */
  flush?(): Promise<void>;
}

/**
 * How signalling payloads reach a peer; the agent provides it over its relay links
 * (see relay-signalling.ts). `onSignal` must hand over only payloads whose sender (`from`) has
 * been proven by a signature: the identity binding rests on it.
 */
export interface DirectSignalling {
  send(peer: string, payload: SignalPayload): void | Promise<void>;
  /** Registers the handler of incoming signals; returns a function that removes it. */
  onSignal(handler: (signal: ReceivedSignal) => void): () => void;
}

/** Where a direct link is in its life. */
export type DirectLinkState = 'connecting' | 'verifying' | 'verified' | 'closed';

/** Timers, injected (the client's `Timers` fits). */
export interface DirectTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** A pino-compatible logger (the client's `ClientLogger` fits). Ids only, never content. */
export interface DirectLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silent: DirectLogger = { debug() {}, info() {}, warn() {}, error() {} };
const systemTimers: DirectTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Options of {@link DirectTransport}; everything but the first five has a default. */
export interface DirectTransportOptions {
  identity: DirectIdentity;
  signalling: DirectSignalling;
  /** The WebRTC implementation, or a loader called on first use (Node: `loadNodeRtc` from client/node/rtc.ts). */
  rtc: RtcFactory | (() => Promise<RtcFactory>);
  /** Takes the messages links receive (de-duplication, durability and the relay fallback are its business). */
  host: LinkHost;
  /** STUN/TURN servers (e.g. from the relay's NIP-11 `ice_servers`); a function is asked at each new link. */
  iceServers?: RtcIceServer[] | (() => RtcIceServer[] | Promise<RtcIceServer[]>);
  /** Whether to answer an offer from this peer (default: everyone). */
  accept?: (peer: string) => boolean;
  /** Try to open a direct link in the background when sending to a peer without one (default false). */
  autoConnect?: boolean;
  /** Link state changes (verified, closed with a reason). */
  onLinkChange?: (peer: string, state: DirectLinkState, reason?: string) => void;
  timers?: DirectTimers;
  /** Milliseconds since the epoch. */
  now?: () => number;
  randomBytes?: (n: number) => Uint8Array;
  log?: DirectLogger;
  /** From first signal to verified link (default 15 s). */
  connectTimeoutMs?: number;
  /** A verified link pings this often (default 2 s)... */
  pingIntervalMs?: number;
  /** ...and is declared dead after hearing nothing for this long (default 8 s). */
  deadAfterMs?: number;
  /** Acknowledgements are coalesced over this window (default 2 ms). */
  ackDelayMs?: number;
  /** Larger messages take the relay path (default 64 KiB). */
  maxDirectBytes?: number;
  /** Most simultaneous links (default 64); offers beyond it are refused. */
  maxLinks?: number;
  /** autoConnect waits this long after a link to the peer closed or failed before trying again (default 30 s). */
  retryAfterMs?: number;
}

interface Outgoing {
  msg: PeerMessage;
  /** true: the peer acknowledged it; false: the link died first (the message is the sender's again). */
  settle(acked: boolean): void;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

type Settings = Required<Omit<DirectTransportOptions, 'iceServers' | 'onLinkChange' | 'rtc' | 'host'>> & {
  iceServers: NonNullable<DirectTransportOptions['iceServers']>;
  onLinkChange: NonNullable<DirectTransportOptions['onLinkChange']>;
};

const HEX64 = /^[0-9a-f]{64}$/;
/** Frames are queued locally above this many buffered bytes, and flushed below the low mark. */
const HIGH_WATER = 1 << 20;
const LOW_WATER = 256 << 10;
const MAX_EARLY_CANDIDATES = 256;
/**
 * Attempts per connect() when setup fails for a local reason: libdatachannel now and then refuses
 * a well-formed description, or gives up on ICE/DTLS, when both peers share one busy machine
 * ("remote candidate without ICE transport", "peer connection closed"); a fresh peer connection,
 * made after a short pause, succeeds. Either side retries: the one that was answering as well.
 */
const SETUP_ATTEMPTS = 4;
/** Pause before setup attempt n+1: n times this. */
const SETUP_RETRY_MS = 150;

/**
 * What a link may ask of its pool: settings, WebRTC, signalling, and where its events go. Made by
 * the pool as closures, so the pool has no methods only links may call.
 */
interface LinkContext {
  readonly o: Settings;
  readonly pubkey: string;
  prepare(): Promise<{ rtc: RtcFactory; iceServers: RtcIceServer[] }>;
  signal(peer: string, payload: SignalPayload): Promise<void>;
  randomHex(bytes: number): string;
  receive(peer: string, msg: PeerMessage): Promise<void>;
  flush(): Promise<void>;
  onVerified(link: DirectLink): void;
  onClosed(link: DirectLink, reason: string, code: DirectErrorCode, unacked: Outgoing[]): void;
}

/**
 * A pool of direct links to other agents over WebRTC data channels, signalled through the relay.
 * `send` puts a message on a verified link and resolves true once the peer acknowledged it, or
 * false when there is no verified link for it or the link died first: the message is then the
 * caller's again (the agent's messenger sends it through the relay). Incoming messages go to the
 * host, in order; each is acknowledged once the host handled and recorded it.
 */
export class DirectTransport {
  readonly pubkey: string;
  readonly #o: Settings;
  readonly #rtcSource: DirectTransportOptions['rtc'];
  #rtc: Promise<RtcFactory> | undefined;
  readonly #links = new Map<string, DirectLink>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly #lastClosed = new Map<string, number>();
  readonly #early = new Map<string, RtcIceCandidateInit[]>();
  readonly #offSignal: () => void;
  readonly #host: LinkHost;
  readonly #ctx: LinkContext;
  #closed = false;

  constructor(opts: DirectTransportOptions) {
    this.#o = {
      iceServers: [],
      accept: () => true,
      autoConnect: false,
      onLinkChange: () => {},
      timers: systemTimers,
      now: Date.now,
      randomBytes: (n) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
      log: silent,
      connectTimeoutMs: 15_000,
      pingIntervalMs: 2000,
      deadAfterMs: 8000,
      ackDelayMs: 2,
      maxDirectBytes: 65_536,
      maxLinks: 64,
      retryAfterMs: 30_000,
      ...stripUndefined(opts),
    } as Settings;
    this.pubkey = opts.identity.pubkey;
    this.#rtcSource = opts.rtc;
    this.#host = opts.host;
    const log = this.#o.log;
    this.#ctx = {
      o: this.#o,
      pubkey: this.pubkey,
      prepare: () => this.#prepare(),
      signal: async (peer, payload) => this.#o.signalling.send(peer, payload),
      randomHex: (bytes) => this.#randomHex(bytes),
      receive: async (peer, msg) => {
        try {
          await this.#host.receive(peer, msg);
        } catch (err) {
          log.warn({ peer: peer.slice(0, 16), msgId: msg.id.slice(0, 16), err: String(err) }, 'direct message handler failed');
        }
      },
      flush: () => this.#host.flush?.() ?? Promise.resolve(),
      onVerified: (link) => this.#onVerified(link),
      onClosed: (link, reason, code, unacked) => this.#onClosed(link, reason, code, unacked),
    };
    this.#offSignal = opts.signalling.onSignal((s) => this.#onSignal(s));
  }

  /** State of the link to `peer`, if there is one. */
  state(peer: string): DirectLinkState | undefined {
    return this.#links.get(peer)?.state;
  }

  /** True when messages to `peer` go direct now. */
  isDirect(peer: string): boolean {
    return this.#links.get(peer)?.state === 'verified';
  }

  /** Peers with a verified direct link. */
  get directPeers(): string[] {
    return [...this.#links.values()].filter((l) => l.state === 'verified').map((l) => l.peer);
  }

  /**
   * Opens a direct link to `peer` (or joins the attempt under way) and resolves once both sides
   * have verified each other. Rejects with ROOST_ERR_DIRECT_* or ROOST_ERR_TIMEOUT; messages keep
   * flowing through the relay whatever happens.
   */
  connect(peer: string): Promise<void> {
    if (this.#closed) return Promise.reject(new DirectError('ROOST_ERR_CLOSED', 'the direct transport is closed', { peer }));
    if (!HEX64.test(peer) || peer === this.pubkey) return Promise.reject(new DirectError('ROOST_ERR_DIRECT_SIGNAL', 'not a peer public key', { peer }));
    const existing = this.#links.get(peer);
    if (existing?.state === 'verified') return Promise.resolve();
    const wait = new Promise<void>((resolve, reject) => {
      let set = this.#waiters.get(peer);
      if (!set) this.#waiters.set(peer, (set = new Set()));
      set.add({ resolve, reject });
    });
    if (!existing) {
      if (this.#links.size >= this.#o.maxLinks) {
        this.#settleWaiters(peer, new DirectError('ROOST_ERR_DIRECT_REFUSED', 'too many direct links', { peer }));
        return wait;
      }
      const link = this.#newLink(peer, this.#randomHex(16), true, 1);
      void link.startAsInitiator();
    }
    return wait;
  }

  /** True when `msg` would go over the verified link to `peer` now (the link is up and the message not too large). */
  canSend(peer: string, msg: PeerMessage): boolean {
    return !this.#closed && this.#links.get(peer)?.state === 'verified' && fitsDirect(msg.data, this.#o.maxDirectBytes);
  }

  /**
   * Puts a message on the verified link to `peer`: resolves true once the peer acknowledged it, false
   * at once when it cannot go direct (see {@link canSend}; with `autoConnect` a link is opened in the
   * background), or when the link dies before the ack. After false the message is the caller's again.
   */
  send(peer: string, msg: PeerMessage): Promise<boolean> {
    const link = this.#links.get(peer);
    if (this.canSend(peer, msg)) return link!.send(msg);
    if (!link && !this.#closed && this.#o.autoConnect) this.#autoConnect(peer);
    return Promise.resolve(false);
  }

  /** Closes the link to `peer`; its unacknowledged messages are handed back (their `send` resolves false). */
  disconnect(peer: string, reason = 'closed locally'): void {
    this.#links.get(peer)?.close(reason, 'ROOST_ERR_CLOSED', true);
  }

  /** Closes every link (unacknowledged messages are handed back) and stops listening to signals. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#offSignal();
    for (const link of [...this.#links.values()]) link.close('transport closed', 'ROOST_ERR_CLOSED', true);
  }

  // --- what links ask for (through #ctx) ---

  /** The WebRTC factory and ICE servers for a new link. */
  async #prepare(): Promise<{ rtc: RtcFactory; iceServers: RtcIceServer[] }> {
    if (!this.#rtc) {
      const src = this.#rtcSource;
      this.#rtc = typeof src === 'function' ? src() : Promise.resolve(src);
      this.#rtc.catch(() => (this.#rtc = undefined));
    }
    let rtc: RtcFactory;
    try {
      rtc = await this.#rtc;
    } catch (err) {
      throw new DirectError('ROOST_ERR_DIRECT_UNAVAILABLE', `no WebRTC implementation: ${(err as Error).message}`, {}, { cause: err });
    }
    const ice = this.#o.iceServers;
    const iceServers = typeof ice === 'function' ? await ice() : ice;
    return { rtc, iceServers: [...iceServers] };
  }

  #onVerified(link: DirectLink): void {
    if (this.#links.get(link.peer) !== link) return;
    this.#o.log.info({ peer: link.peer.slice(0, 16), session: link.session }, 'direct link verified');
    this.#o.onLinkChange(link.peer, 'verified');
    const set = this.#waiters.get(link.peer);
    this.#waiters.delete(link.peer);
    for (const w of set ?? []) w.resolve();
  }

  /** A link is gone: its unacknowledged messages are handed back, in order. */
  #onClosed(link: DirectLink, reason: string, code: DirectErrorCode, unacked: Outgoing[]): void {
    const current = this.#links.get(link.peer) === link;
    if (current) this.#links.delete(link.peer);
    this.#lastClosed.set(link.peer, this.#o.now());
    this.#o.log.info({ peer: link.peer.slice(0, 16), session: link.session, reason, unacked: unacked.length }, 'direct link closed');
    for (const item of unacked) item.settle(false);
    if (current && this.#shouldRetry(link, code)) {
      this.#o.log.info({ peer: link.peer.slice(0, 16), attempt: link.attempt + 1 }, 'retrying direct link setup');
      const next = this.#newLink(link.peer, this.#randomHex(16), true, link.attempt + 1);
      this.#o.timers.setTimeout(() => {
        if (next.state !== 'closed' && this.#links.get(next.peer) === next) void next.startAsInitiator();
      }, SETUP_RETRY_MS * link.attempt);
      return;
    }
    if (current) {
      this.#settleWaiters(
        link.peer,
        new DirectError(code, `direct link to ${link.peer.slice(0, 12)} closed: ${reason}`, { peer: link.peer, session: link.session }),
      );
      this.#o.onLinkChange(link.peer, 'closed', reason);
    }
  }

  // --- signalling ---

  #onSignal(s: ReceivedSignal): void {
    if (this.#closed) return;
    const { from, payload } = s;
    const link = this.#links.get(from);
    try {
      switch (payload.type) {
        case 'offer':
          this.#onOffer(from, payload);
          return;
        case 'answer':
          if (link?.session === payload.session) link.onAnswer(payload.sdp, payload.fingerprint);
          return;
        case 'candidate': {
          const c: RtcIceCandidateInit = { candidate: payload.candidate, sdpMid: payload.sdpMid, sdpMLineIndex: payload.sdpMLineIndex };
          if (link?.session === payload.session) link.onRemoteCandidate(c);
          else this.#holdEarly(`${from}:${payload.session}`, c);
          return;
        }
        case 'bye':
          if (link?.session === payload.session) link.onBye(payload.reason, payload.code);
          return;
      }
    } catch (err) {
      this.#o.log.error({ peer: from.slice(0, 16), err: String(err), stack: (err as Error).stack }, 'signal handling failed');
    }
  }

  #onOffer(from: string, offer: Extract<SignalPayload, { type: 'offer' }>): void {
    const existing = this.#links.get(from);
    if (existing?.session === offer.session) return;
    const bye = (reason: string) =>
      void this.#ctx.signal(from, { v: 1, type: 'bye', session: offer.session, reason, code: 'ROOST_ERR_DIRECT_REFUSED' }).catch(() => undefined);
    if (!this.#o.accept(from)) {
      bye('refused');
      return;
    }
    if (existing?.initiator && existing.state !== 'verified' && this.pubkey < from) {
      // Both sides offered at once: the lower public key keeps its offer; the peer answers it.
      return;
    }
    if (!existing && this.#links.size >= this.#o.maxLinks) {
      bye('busy');
      return;
    }
    // A glare we yield, or the peer's retry, counts as the next attempt of ours (retries stay bounded).
    const link = this.#newLink(from, offer.session, false, existing && existing.state !== 'verified' ? existing.attempt : 1);
    // A new offer from a peer with a link means the peer lost it (a restart, a glare we yield).
    existing?.close('replaced by a new offer', 'ROOST_ERR_DIRECT_FAILED', false);
    const early = this.#early.get(`${from}:${offer.session}`) ?? [];
    this.#early.delete(`${from}:${offer.session}`);
    void link.startAsResponder(offer.sdp, offer.fingerprint, early);
  }

  #holdEarly(key: string, c: RtcIceCandidateInit): void {
    let list = this.#early.get(key);
    if (!list) {
      if (this.#early.size >= 16) this.#early.delete(this.#early.keys().next().value!);
      this.#early.set(key, (list = []));
    }
    if (list.length < MAX_EARLY_CANDIDATES) list.push(c);
  }

  #newLink(peer: string, session: string, initiator: boolean, attempt = 1): DirectLink {
    const link = new DirectLink(this.#ctx, peer, session, initiator, attempt);
    this.#links.set(peer, link);
    return link;
  }

  #shouldRetry(link: DirectLink, code: DirectErrorCode): boolean {
    return !this.#closed && link.setupFailed && code === 'ROOST_ERR_DIRECT_FAILED' && link.attempt < SETUP_ATTEMPTS && this.#waiters.has(link.peer);
  }

  #settleWaiters(peer: string, err: Error): void {
    const set = this.#waiters.get(peer);
    this.#waiters.delete(peer);
    for (const w of set ?? []) w.reject(err);
  }

  #autoConnect(peer: string): void {
    const last = this.#lastClosed.get(peer);
    if (last !== undefined && this.#o.now() - last < this.#o.retryAfterMs) return;
    this.connect(peer).catch((err: unknown) => this.#o.log.debug({ peer: peer.slice(0, 16), err: String(err) }, 'automatic direct link failed'));
  }

  #randomHex(bytes: number): string {
    return bytesToHex(this.#o.randomBytes(bytes));
  }
}

/** Creates a {@link DirectTransport} (it listens to signals at once). */
export function createDirectTransport(opts: DirectTransportOptions): DirectTransport {
  return new DirectTransport(opts);
}

/**
 * Splits the ICE candidates out of an SDP: the SDP without its `a=candidate` and
 * `a=end-of-candidates` lines, and the candidates as signalling payloads (with their section's mid).
 */
export function takeSdpCandidates(sdp: string, session: string): { sdp: string; candidates: SignalPayload[] } {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(eol);
  const mids: Array<string | null> = [];
  for (const line of lines) {
    if (line.startsWith('m=')) mids.push(null);
    else if (line.startsWith('a=mid:') && mids.length > 0) mids[mids.length - 1] = line.slice(6);
  }
  const candidates: SignalPayload[] = [];
  const kept: string[] = [];
  let section = -1;
  for (const line of lines) {
    if (line.startsWith('m=')) section++;
    if (line.startsWith('a=candidate:')) {
      candidates.push({
        v: 1,
        type: 'candidate',
        session,
        candidate: line.slice(2),
        sdpMid: mids[section] ?? null,
        sdpMLineIndex: section < 0 ? null : section,
      });
    } else if (line !== 'a=end-of-candidates') kept.push(line);
  }
  return { sdp: kept.join(eol), candidates };
}

/**
 * One peer connection and its data channel: signalling, the identity binding (fingerprints and
 * challenge–response), then numbered messages with cumulative acks and a heartbeat.
 */
class DirectLink {
  state: DirectLinkState = 'connecting';
  /** The link failed before it was verified, for a reason other than identity or refusal (worth a fresh attempt). */
  setupFailed = false;
  readonly #t: LinkContext;
  readonly #o: Settings;
  #pc: RtcPeerConnectionLike | undefined;
  #dc: RtcDataChannelLike | undefined;
  #localFp: string | undefined;
  #remoteFp: string | undefined;
  readonly #nonce: string;
  #proofSent = false;
  #peerProven = false;
  #haveRemote = false;
  #remoteCandidates: RtcIceCandidateInit[] = [];
  /** Local candidates not sent yet: until our description is out (responder) or the answer is applied (initiator). */
  #heldCandidates: SignalPayload[] | undefined = [];
  readonly #window = new SendWindow<Outgoing>();
  #arrived = 0;
  #handled = 0;
  #ackSent = 0;
  #ackTimer: unknown;
  #ackDueAt = 0;
  #acking = false;
  #chain: Promise<void> = Promise.resolve();
  #lastHeard = 0;
  #pingTimer: unknown;
  readonly #connectTimer: unknown;
  readonly #outQueue: string[] = [];

  constructor(
    ctx: LinkContext,
    readonly peer: string,
    readonly session: string,
    readonly initiator: boolean,
    readonly attempt: number,
  ) {
    this.#t = ctx;
    this.#o = ctx.o;
    this.#nonce = ctx.randomHex(32);
    this.#connectTimer = this.#o.timers.setTimeout(() => {
      if (this.state !== 'verified') this.close(`not verified within ${this.#o.connectTimeoutMs} ms`, 'ROOST_ERR_TIMEOUT', true);
    }, this.#o.connectTimeoutMs);
  }

  async startAsInitiator(): Promise<void> {
    await this.#step(async () => {
      const pc = await this.#createPc();
      if (!pc) return;
      this.#wireChannel(pc.createDataChannel(DIRECT_CHANNEL_LABEL, { ordered: true }));
      await pc.setLocalDescription(await pc.createOffer());
      const own = this.#ownSdp(pc);
      if (own === undefined || this.state === 'closed') return;
      // Our addresses go out only once the answer is applied: a responder that could reach us sooner
      // would start DTLS before we know its fingerprint, and libdatachannel then drops the connection.
      const { sdp, candidates } = takeSdpCandidates(own, this.session);
      this.#heldCandidates?.unshift(...candidates);
      await this.#t.signal(this.peer, { v: 1, type: 'offer', session: this.session, sdp, fingerprint: this.#localFp! });
    });
  }

  async startAsResponder(sdp: string, fingerprint: string, early: RtcIceCandidateInit[]): Promise<void> {
    await this.#step(async () => {
      if (!this.#acceptRemote(sdp, fingerprint)) return;
      this.#remoteCandidates.push(...early);
      const pc = await this.#createPc();
      if (!pc) return;
      pc.ondatachannel = (ev: { channel: RtcDataChannelLike }) => {
        if (this.#dc || ev.channel.label !== DIRECT_CHANNEL_LABEL) {
          ev.channel.close();
          return;
        }
        this.#wireChannel(ev.channel);
      };
      await pc.setRemoteDescription({ type: 'offer', sdp });
      await this.#remoteReady();
      await pc.setLocalDescription(await pc.createAnswer());
      const own = this.#ownSdp(pc);
      if (own === undefined || this.state === 'closed') return;
      await this.#t.signal(this.peer, { v: 1, type: 'answer', session: this.session, sdp: own, fingerprint: this.#localFp! });
      await this.#flushHeldCandidates();
    });
  }

  onAnswer(sdp: string, fingerprint: string): void {
    if (!this.initiator || this.#haveRemote || this.state === 'closed' || !this.#pc) return;
    const pc = this.#pc;
    void this.#step(async () => {
      if (!this.#acceptRemote(sdp, fingerprint)) return;
      await pc.setRemoteDescription({ type: 'answer', sdp });
      await this.#remoteReady();
    });
  }

  onRemoteCandidate(c: RtcIceCandidateInit): void {
    if (this.state === 'closed') return;
    if (!this.#haveRemote || !this.#pc) {
      if (this.#remoteCandidates.length < MAX_EARLY_CANDIDATES) this.#remoteCandidates.push(c);
      return;
    }
    this.#pc.addIceCandidate(c).catch((err: unknown) => this.#o.log.debug({ session: this.session, err: String(err) }, 'remote candidate refused'));
  }

  /** The peer gave up on this session; a failure of its RTC library during setup is worth a retry. */
  onBye(reason: string, code: string | undefined): void {
    if (this.state === 'closed') return;
    this.close(`peer: ${reason}`, code === 'ROOST_ERR_DIRECT_FAILED' ? 'ROOST_ERR_DIRECT_FAILED' : 'ROOST_ERR_DIRECT_REFUSED', false);
  }

  send(msg: PeerMessage): Promise<boolean> {
    return new Promise<boolean>((settle) => {
      const seq = this.#window.push({ msg, settle });
      this.#sendFrame({ t: 'msg', seq, id: msg.id, data: msg.data });
    });
  }

  /** Closes the link; `tellPeer` sends a `bye` through signalling (best effort). */
  close(reason: string, code: DirectErrorCode, tellPeer: boolean): void {
    if (this.state === 'closed') return;
    // A link that dies before it was verified (no message has used it yet) is worth a fresh attempt.
    this.setupFailed = (this.state === 'connecting' || this.state === 'verifying') && code === 'ROOST_ERR_DIRECT_FAILED';
    this.state = 'closed';
    this.#o.timers.clearTimeout(this.#connectTimer);
    if (this.#pingTimer !== undefined) this.#o.timers.clearTimeout(this.#pingTimer);
    if (this.#ackTimer !== undefined) this.#o.timers.clearTimeout(this.#ackTimer);
    const dc = this.#dc;
    const pc = this.#pc;
    if (dc) dc.onopen = dc.onclose = dc.onerror = dc.onmessage = dc.onbufferedamountlow = null;
    if (pc) pc.onicecandidate = pc.ondatachannel = pc.onconnectionstatechange = null;
    try {
      dc?.close();
    } catch {
      // already gone
    }
    try {
      pc?.close();
    } catch {
      // already gone
    }
    this.#outQueue.length = 0;
    if (tellPeer) void this.#t.signal(this.peer, { v: 1, type: 'bye', session: this.session, reason: reason.slice(0, 200), code }).catch(() => undefined);
    this.#t.onClosed(this, reason, code, this.#window.drain());
  }

  // --- setup ---

  /** Runs one async setup step; any failure closes the link. */
  async #step(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (this.state === 'closed') return;
      const code = err instanceof DirectError ? err.code : 'ROOST_ERR_DIRECT_FAILED';
      this.close(`setup failed: ${(err as Error).message}`, code, true);
    }
  }

  async #createPc(): Promise<RtcPeerConnectionLike | undefined> {
    const { rtc, iceServers } = await this.#t.prepare();
    if (this.state === 'closed') return undefined;
    const pc = rtc.createPeerConnection({ iceServers });
    this.#pc = pc;
    pc.onicecandidate = (ev: { candidate: RtcIceCandidateInit | null }) => {
      const c = ev.candidate;
      if (!c?.candidate) return;
      const payload: SignalPayload = {
        v: 1,
        type: 'candidate',
        session: this.session,
        candidate: c.candidate,
        sdpMid: c.sdpMid ?? null,
        sdpMLineIndex: c.sdpMLineIndex ?? null,
      };
      if (this.#heldCandidates) this.#heldCandidates.push(payload);
      else void this.#t.signal(this.peer, payload).catch(() => undefined);
    };
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === 'failed' || s === 'closed') this.close(`peer connection ${s}`, 'ROOST_ERR_DIRECT_FAILED', true);
    };
    return pc;
  }

  /** Binds the peer's SDP to its signed signalling: the fingerprint in the SDP must be the one it signed. */
  #acceptRemote(sdp: string, fingerprint: string): boolean {
    const fp = normalizeFingerprint(fingerprint);
    if (!fp || !matchSdpFingerprint(sdp, fp)) {
      this.close('the SDP fingerprint differs from the signed one', 'ROOST_ERR_DIRECT_IDENTITY', true);
      return false;
    }
    this.#remoteFp = fp;
    return true;
  }

  #ownSdp(pc: RtcPeerConnectionLike): string | undefined {
    const sdp = pc.localDescription?.sdp;
    const fp = sdp ? getSdpFingerprint(sdp) : undefined;
    if (!sdp || !fp) {
      this.close('our own SDP has no single fingerprint', 'ROOST_ERR_DIRECT_FAILED', true);
      return undefined;
    }
    this.#localFp = fp;
    return sdp;
  }

  async #remoteReady(): Promise<void> {
    this.#haveRemote = true;
    const pending = this.#remoteCandidates;
    this.#remoteCandidates = [];
    for (const c of pending) this.onRemoteCandidate(c);
    if (this.initiator) await this.#flushHeldCandidates();
  }

  async #flushHeldCandidates(): Promise<void> {
    const held = this.#heldCandidates ?? [];
    this.#heldCandidates = undefined;
    for (const p of held) await this.#t.signal(this.peer, p);
  }

  // --- data channel ---

  #wireChannel(dc: RtcDataChannelLike): void {
    this.#dc = dc;
    dc.onopen = () => this.#onOpen();
    dc.onclose = () => this.close('data channel closed', 'ROOST_ERR_DIRECT_FAILED', false);
    dc.onerror = () => this.close('data channel error', 'ROOST_ERR_DIRECT_FAILED', true);
    dc.onmessage = (ev: { data: unknown }) => this.#onFrame(ev.data);
    dc.onbufferedamountlow = () => this.#drainQueue();
    dc.bufferedAmountLowThreshold = LOW_WATER;
    if (dc.readyState === 'open') queueMicrotask(() => this.#onOpen());
  }

  #onOpen(): void {
    if (this.state !== 'connecting') return;
    this.state = 'verifying';
    this.#lastHeard = this.#o.now();
    this.#sendFrame({ t: 'hello', nonce: this.#nonce });
  }

  #onFrame(data: unknown): void {
    if (this.state === 'closed') return;
    const frame = parseLinkFrame(data);
    if (!frame) {
      this.close('malformed frame', 'ROOST_ERR_DIRECT_FAILED', true);
      return;
    }
    this.#lastHeard = this.#o.now();
    switch (frame.t) {
      case 'hello':
        return this.#onHello(frame.nonce);
      case 'proof':
        return this.#onProof(frame.event);
      case 'ready':
        if (!this.#peerProven || this.state !== 'verifying') return this.close('ready before proof', 'ROOST_ERR_DIRECT_IDENTITY', true);
        return this.#becomeVerified();
      case 'msg':
        return this.#onMsg(frame.seq, { id: frame.id, data: frame.data });
      case 'ack': {
        const done = this.#window.ack(frame.seq);
        if (!done) return this.close('acknowledgement of a message never sent', 'ROOST_ERR_DIRECT_FAILED', true);
        for (const item of done) item.settle(true);
        return;
      }
      case 'ping':
        this.#sendFrame({ t: 'pong' });
        return;
      case 'pong':
        return;
    }
  }

  #proofContext(): ProofContext | undefined {
    if (!this.#localFp || !this.#remoteFp) return undefined;
    return { session: this.session, localFingerprint: this.#localFp, remoteFingerprint: this.#remoteFp };
  }

  #onHello(challenge: string): void {
    const ctx = this.#proofContext();
    if (this.#proofSent || !ctx) return this.close('unexpected hello', 'ROOST_ERR_DIRECT_IDENTITY', true);
    this.#proofSent = true;
    const proof = makeProof(this.#o.identity, this.peer, challenge, ctx, Math.floor(this.#o.now() / 1000));
    this.#sendFrame({ t: 'proof', event: proof as unknown as Record<string, unknown> });
  }

  #onProof(event: unknown): void {
    const ctx = this.#proofContext();
    if (this.state !== 'verifying' || this.#peerProven || !ctx) return this.close('unexpected proof', 'ROOST_ERR_DIRECT_IDENTITY', true);
    // The certificate DTLS checked is the one in the remote description: it must still be the signed one.
    const remoteSdp = this.#pc?.remoteDescription?.sdp;
    if (!remoteSdp || getSdpFingerprint(remoteSdp) !== ctx.remoteFingerprint) {
      return this.close('remote description fingerprint changed', 'ROOST_ERR_DIRECT_IDENTITY', true);
    }
    const why = checkProof(event, { me: this.#t.pubkey, peer: this.peer, challenge: this.#nonce, ctx, nowSeconds: Math.floor(this.#o.now() / 1000) });
    if (why) return this.close(`peer failed the challenge: ${why}`, 'ROOST_ERR_DIRECT_IDENTITY', true);
    this.#peerProven = true;
    this.#sendFrame({ t: 'ready' });
  }

  /** Both proofs checked, each side by the other: messages may flow. */
  #becomeVerified(): void {
    this.state = 'verified';
    this.#o.timers.clearTimeout(this.#connectTimer);
    this.#schedulePing();
    this.#t.onVerified(this);
  }

  #onMsg(seq: number, msg: PeerMessage): void {
    if (this.state !== 'verified') return this.close('message before verification', 'ROOST_ERR_DIRECT_IDENTITY', true);
    if (seq !== this.#arrived + 1) return this.close(`message ${seq} out of order`, 'ROOST_ERR_DIRECT_FAILED', true);
    this.#arrived = seq;
    this.#chain = this.#chain
      .then(() => this.#t.receive(this.peer, msg))
      .then(() => {
        this.#handled = seq;
        this.#scheduleAck();
      });
  }

  #scheduleAck(): void {
    if (this.state !== 'verified' || this.#acking) return;
    if (this.#ackTimer === undefined) {
      this.#ackDueAt = this.#o.now() + this.#o.ackDelayMs;
      this.#ackTimer = this.#o.timers.setTimeout(() => this.#sendAck(), this.#o.ackDelayMs);
    } else if (this.#o.now() >= this.#ackDueAt) {
      // Within a burst delivered in one go no timer fires: the ack goes once it is due.
      this.#o.timers.clearTimeout(this.#ackTimer);
      this.#sendAck();
    }
  }

  #sendAck(): void {
    this.#acking = true;
    const upTo = this.#handled;
    // Acknowledged only once recorded: an ack lost in a crash must not leave a copy the peer relays unrecognised.
    void this.#t.flush().then(() => {
      this.#ackTimer = undefined;
      this.#acking = false;
      if (this.state !== 'verified' || upTo <= this.#ackSent) return;
      this.#ackSent = upTo;
      this.#sendFrame({ t: 'ack', seq: upTo });
      if (this.#handled > upTo) this.#scheduleAck();
    });
  }

  #schedulePing(): void {
    this.#pingTimer = this.#o.timers.setTimeout(() => {
      this.#pingTimer = undefined;
      if (this.state !== 'verified') return;
      if (this.#o.now() - this.#lastHeard > this.#o.deadAfterMs) {
        this.close(`peer silent for ${this.#o.deadAfterMs} ms`, 'ROOST_ERR_DIRECT_FAILED', true);
        return;
      }
      this.#sendFrame({ t: 'ping' });
      this.#schedulePing();
    }, this.#o.pingIntervalMs);
  }

  #sendFrame(frame: LinkFrame): void {
    const dc = this.#dc;
    if (!dc || this.state === 'closed') return;
    const text = encodeLinkFrame(frame);
    if (this.#outQueue.length > 0 || dc.bufferedAmount > HIGH_WATER) {
      this.#outQueue.push(text);
      return;
    }
    this.#write(dc, text);
  }

  #drainQueue(): void {
    const dc = this.#dc;
    while (dc && this.state !== 'closed' && this.#outQueue.length > 0 && dc.bufferedAmount <= HIGH_WATER) {
      this.#write(dc, this.#outQueue.shift()!);
    }
  }

  #write(dc: RtcDataChannelLike, text: string): void {
    try {
      dc.send(text);
    } catch (err) {
      this.close(`send failed: ${(err as Error).message}`, 'ROOST_ERR_DIRECT_FAILED', true);
    }
  }
}

function fitsDirect(data: string, max: number): boolean {
  if (data.length * 3 <= max) return true;
  if (data.length > max) return false;
  return new TextEncoder().encode(data).length <= max;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
