import type { Logger } from 'pino';
import type { Filter } from '../shared/filter.js';
import type { RelayUrlCheck, SocketAddresses } from './relay-url.js';

/** The socket surface a connection needs (ws.WebSocket satisfies it). */
export interface SocketLike {
  readonly bufferedAmount: number;
  readonly readyState: number;
  /** Sends a text frame (`binary: false`); a Buffer holds the frame's UTF-8 bytes. */
  send(data: string | Buffer, options: { binary: boolean }): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

/** A live or loading subscription of one connection. */
export interface Subscription {
  readonly conn: Connection;
  readonly subId: string;
  /** JSON-encoded subscription id, spliced into EVENT frames. */
  readonly subIdJson: string;
  readonly filters: readonly Filter[];
  /** Sequence mode (the Roost extension): EVENT frames carry the seq. */
  readonly seqMode: boolean;
  /** Events with seq at most this were answered from storage; live delivery starts after it. */
  liveFrom: number;
  /** Set when the subscription was closed or replaced (a streaming backfill stops). */
  closed: boolean;
  /**
   * While stored results are still being written to a slow socket, live frames wait here and
   * follow EOSE in order; undefined once the subscription is fully live.
   */
  held?: { frames: Array<string | Buffer>; bytes: number };
}

/** The byte stream under the WebSocket (a net.Socket), for batching writes. */
export interface Corkable {
  cork(): void;
  uncork(): void;
  /** Writes bytes as they are (several WebSocket frames already framed). */
  write?(data: Buffer): boolean;
}

const OPEN = 1;
const TEXT = Object.freeze({ binary: false });

/** Connections whose stream was corked by a send in the current turn; uncorked together after it. */
const corked: Connection[] = [];
let uncorkQueued = false;

function uncorkAll(): void {
  uncorkQueued = false;
  const list = corked.splice(0);
  for (const conn of list) conn.uncorkTurn();
}

/** Bytes of an unmasked RFC 6455 frame header for a payload of `n` bytes. */
function headerBytes(n: number): number {
  return n < 126 ? 2 : n < 65536 ? 4 : 10;
}

/**
 * The frames as unmasked RFC 6455 text frames (a server never masks), one after the other in one buffer: one
 * socket write for a turn's frames instead of a header and a payload write per frame through `ws`.
 */
export function encodeTextFrames(frames: readonly (string | Buffer)[], bytes: readonly number[], total: number): Buffer {
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (let k = 0; k < frames.length; k++) {
    const f = frames[k]!;
    const n = bytes[k]!;
    out[at] = 0x81; // FIN, text
    if (n < 126) {
      out[at + 1] = n;
      at += 2;
    } else if (n < 65536) {
      out[at + 1] = 126;
      out.writeUInt16BE(n, at + 2);
      at += 4;
    } else {
      out[at + 1] = 127;
      out.writeUInt32BE(Math.floor(n / 2 ** 32), at + 2);
      out.writeUInt32BE(n >>> 0, at + 6);
      at += 10;
    }
    at += typeof f === 'string' ? out.write(f, at, n, 'utf8') : f.copy(out, at);
  }
  return out;
}

/** One WebSocket client: its subscriptions, its NIP-42 identities, and a guarded send. */
export class Connection {
  readonly subs = new Map<string, Subscription>();
  readonly authed = new Set<string>();
  /** Bytes sent since the connection opened. */
  bytesOut = 0;
  /** Authenticated as a relay this one replicates from: events replicated from it are not sent back to it. */
  peerRelay: string | undefined;
  /** Authenticated as a replica relay allow-listed to read private kinds (`replicaReaders`). */
  readsPrivate = false;
  /** Client mistakes seen on this connection (their log is bounded per connection). */
  mistakes = 0;
  /**
   * Settles when the policy verdicts of this connection's events still being decided later (a store
   * that answers later) are in: the next event's policies wait for it, so they decide in arrival order.
   * Never set on SQLite, where every verdict is given at once.
   */
  verdictsPending: Promise<void> | undefined = undefined;
  /** Answered the last heartbeat ping (or opened since it was sent). */
  alive = true;
  #socket: SocketLike;
  #maxBuffered: number;
  #onOverflow: (conn: Connection) => void;
  #transport: Corkable | undefined;
  #onEose: ((seconds: number) => void) | undefined;
  #clock: () => number;
  #corkedThisTurn = false;
  /** Frames sent this turn, written together when it ends (only with a transport that takes raw writes). */
  #pending: Array<string | Buffer> | undefined;
  /** Their UTF-8 sizes, and the sum of those plus frame headers. */
  #pendingSizes: number[] | undefined;
  #pendingBytes = 0;
  /** REQs waiting for their EOSE: subscription id → arrival time (ms). */
  #reqStarted: Map<string, number> | undefined;
  #parentLog: Logger;
  #log: Logger | undefined;
  #challenge: string | (() => string);
  #addresses: SocketAddresses;
  #relayUrlCheck: RelayUrlCheck;

  constructor(
    readonly id: string,
    readonly ip: string,
    socket: SocketLike,
    /** The NIP-42 challenge, or how to make it (on first use: most connections never authenticate). */
    challenge: string | (() => string),
    /** The socket's local and remote addresses, for the relay URL check. */
    addresses: SocketAddresses,
    /** Whether a URL names this relay for a socket (NIP-42 relay tag; see relay-url.ts). */
    relayUrlCheck: RelayUrlCheck,
    /** The relay's logger: the connection's child logger (`{ conn: id }`) is made from it on first use. */
    parentLog: Logger,
    opts: {
      maxBufferedBytes: number;
      onOverflow: (conn: Connection) => void;
      transport?: Corkable;
      /** Told the time from a REQ to its EOSE, in seconds. */
      onEose?: (seconds: number) => void;
      /** Milliseconds, for latency only. */
      clock?: () => number;
    },
  ) {
    this.#socket = socket;
    this.#challenge = challenge;
    this.#addresses = addresses;
    this.#relayUrlCheck = relayUrlCheck;
    this.#parentLog = parentLog;
    this.#transport = opts.transport;
    this.#maxBuffered = opts.maxBufferedBytes;
    this.#onOverflow = opts.onOverflow;
    this.#onEose = opts.onEose;
    this.#clock = opts.clock ?? (() => performance.now());
  }

  /** This connection's NIP-42 challenge (made when first asked for, then fixed). */
  get challenge(): string {
    if (typeof this.#challenge === 'function') this.#challenge = this.#challenge();
    return this.#challenge;
  }

  /** True when a URL names this relay for this connection (NIP-42 relay tag; see relay-url.ts). */
  isRelayUrl(url: string): boolean {
    return this.#relayUrlCheck(url, this.#addresses);
  }

  /** Notes that a REQ arrived, so the time to its EOSE (or CLOSED) can be measured where it is sent. */
  noteReq(subId: string): void {
    if (!this.#onEose) return;
    // Bounded: a subscription closed before its EOSE leaves an entry behind. Keyed by the JSON-encoded id, as
    // it appears in the EOSE and CLOSED frames.
    const started = (this.#reqStarted ??= new Map());
    if (started.size >= 256) started.delete(started.keys().next().value!);
    started.set(JSON.stringify(subId), this.#clock());
  }

  #settleReq(frame: string): void {
    // `["EOSE",` or `["CLOSED",`, then the subscription id's JSON, then `,` or `]`.
    const at = frame.startsWith('["EOSE",') ? 8 : frame.startsWith('["CLOSED",') ? 10 : 0;
    if (at === 0) return;
    for (const [key, start] of this.#reqStarted!) {
      const end = at + key.length;
      if (!frame.startsWith(key, at) || (frame[end] !== ',' && frame[end] !== ']')) continue;
      this.#reqStarted!.delete(key);
      if (at === 8) this.#onEose?.((this.#clock() - start) / 1000);
      return;
    }
  }

  /** This connection's logger (a child with `{ conn: id }`; most connections never log, so it is made on first use). */
  get log(): Logger {
    return (this.#log ??= this.#parentLog.child({ conn: this.id }));
  }

  /** True while the socket can take frames. */
  get isOpen(): boolean {
    return this.#socket.readyState === OPEN;
  }

  /** Bytes queued in the socket and not yet written to the network. */
  get bufferedAmount(): number {
    return this.#socket.bufferedAmount + this.#pendingBytes;
  }

  /**
   * Sends one text frame (a string, or its UTF-8 bytes when one encoding serves many sockets). A
   * client that stops reading is cut off once its unsent bytes pass the cap, so it cannot grow the
   * relay's memory.
   */
  send(frame: string | Buffer): boolean {
    if (this.#socket.readyState !== OPEN) return false;
    if (this.bufferedAmount > this.#maxBuffered) {
      this.cutOff('outbound buffer full');
      return false;
    }
    this.bytesOut += frame.length;
    // Every frame sent to this socket in one turn of the event loop (a stored answer and its EOSE, a group
    // commit's fan-out, a burst of OKs) leaves in one write instead of one system call per frame.
    const transport = this.#transport;
    if (transport !== undefined) {
      if (!this.#corkedThisTurn) {
        this.#corkedThisTurn = true;
        corked.push(this);
        if (!uncorkQueued) {
          uncorkQueued = true;
          queueMicrotask(uncorkAll);
        }
        if (transport.write === undefined) transport.cork();
      }
      if (transport.write !== undefined) {
        // Framed here at the end of the turn, all in one buffer (counted in bufferedAmount meanwhile).
        const n = typeof frame === 'string' ? Buffer.byteLength(frame) : frame.length;
        (this.#pending ??= []).push(frame);
        (this.#pendingSizes ??= []).push(n);
        this.#pendingBytes += n + headerBytes(n);
      } else this.#socket.send(frame, TEXT);
    } else this.#socket.send(frame, TEXT);
    if (this.#reqStarted !== undefined && this.#reqStarted.size > 0 && typeof frame === 'string') this.#settleReq(frame);
    return true;
  }

  /** True when the socket has more unsent bytes than the given share of the cap: time to pause a stream. */
  isCongested(share = 0.5): boolean {
    return this.bufferedAmount > this.#maxBuffered * share;
  }

  /** Cuts the connection off as a slow client (its unsent data would exceed the cap). */
  cutOff(why: string): void {
    this.log.warn({ buffered: this.bufferedAmount, why }, 'slow client cut off at the outbound cap');
    this.#onOverflow(this);
    this.#dropPending();
    this.#socket.terminate();
  }

  /** Ends the current turn's cork (called once per turn, after the turn's sends): writes the turn's frames. */
  uncorkTurn(): void {
    if (!this.#corkedThisTurn) return;
    this.#corkedThisTurn = false;
    const transport = this.#transport;
    if (transport?.write === undefined) {
      transport?.uncork();
      return;
    }
    this.#flush(transport as Required<Corkable>);
  }

  #flush(transport: Required<Corkable>): void {
    const frames = this.#pending;
    const sizes = this.#pendingSizes;
    if (frames === undefined || sizes === undefined) return;
    const total = this.#pendingBytes;
    this.#dropPending();
    // Closing or closed since (a close frame may be out already): nothing more may follow it.
    if (this.#socket.readyState !== OPEN) return;
    if (frames.length === 1) this.#socket.send(frames[0]!, TEXT);
    else transport.write(encodeTextFrames(frames, sizes, total));
  }

  #dropPending(): void {
    this.#pending = undefined;
    this.#pendingSizes = undefined;
    this.#pendingBytes = 0;
  }

  /** Closes the socket, after the frames sent before. */
  close(code = 1000, reason = ''): void {
    if (this.#transport?.write !== undefined) this.#flush(this.#transport as Required<Corkable>);
    this.#socket.close(code, reason);
  }
}
