import type { Filter } from '../../shared/filter.js';
import { makeAuthFrame, makeNegErrFrame, makeNegMsgFrame } from '../../shared/messages/relay.js';
import { bytesToHex, checkNegentropyMessage, hexToBytes, Negentropy, NegentropyError, NegentropySet } from '../../shared/nip77.js';
import { makeReason } from '../../shared/reason.js';
import { logClientMistake } from '../client-mistakes.js';
import type { RelayConfig } from '../config.js';
import type { Connection } from '../connection.js';
import { countRejection, recordError, type RelayContext } from '../context.js';
import { isPending } from '../store/types.js';
import { firstRejection } from '../policies/types.js';
import { viewerOf } from './req.js';

interface Session {
  readonly neg: Negentropy;
  readonly records: number;
  timer: NodeJS.Timeout;
}

/**
 * Every open NIP-77 session, per connection, with the records they hold counted across
 * connections: a session holds its matching (created_at, id) pairs in memory (40 bytes each) for
 * the exchange, so both the number per connection and the total are bounded, idle sessions are
 * closed, and a connection's sessions go with it.
 */
export class NegentropySessions {
  readonly #byConn = new Map<Connection, Map<string, Session>>();
  readonly #config: RelayConfig;
  #records = 0;

  constructor(config: RelayConfig) {
    this.#config = config;
  }

  /** Records held by all open sessions. */
  get records(): number {
    return this.#records;
  }

  /** Open sessions, all connections. */
  get open(): number {
    let n = 0;
    for (const m of this.#byConn.values()) n += m.size;
    return n;
  }

  get(conn: Connection, subId: string): Session | undefined {
    return this.#byConn.get(conn)?.get(subId);
  }

  count(conn: Connection): number {
    return this.#byConn.get(conn)?.size ?? 0;
  }

  /** Room for a session of this many records across connections. */
  hasRoomFor(records: number): boolean {
    return this.#records + records <= this.#config.negentropyMaxTotalRecords;
  }

  add(conn: Connection, subId: string, neg: Negentropy, records: number): void {
    let m = this.#byConn.get(conn);
    if (!m) this.#byConn.set(conn, (m = new Map()));
    const session: Session = { neg, records, timer: this.#idleTimer(conn, subId) };
    m.set(subId, session);
    this.#records += records;
  }

  /** Restarts a session's idle clock. */
  touch(conn: Connection, subId: string): void {
    const s = this.get(conn, subId);
    if (s) s.timer.refresh();
  }

  close(conn: Connection, subId: string): void {
    const m = this.#byConn.get(conn);
    const s = m?.get(subId);
    if (!m || !s) return;
    clearTimeout(s.timer);
    m.delete(subId);
    this.#records -= s.records;
    if (m.size === 0) this.#byConn.delete(conn);
  }

  /** Closes every session of a connection (it went away). */
  closeAll(conn: Connection): void {
    for (const subId of [...(this.#byConn.get(conn)?.keys() ?? [])]) this.close(conn, subId);
  }

  #idleTimer(conn: Connection, subId: string): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.close(conn, subId);
      conn.send(makeNegErrFrame(subId, 'closed: negentropy session idle for too long'));
    }, this.#config.negentropyIdleSeconds * 1000);
    t.unref();
    return t;
  }
}

/** NIP-11: NIP-77 in `supported_nips` and its bounds in `limitation` (nothing when it is off). */
export function negentropyInfo(config: RelayConfig): () => Record<string, unknown> {
  return () =>
    config.negentropyMaxRecords === 0
      ? {}
      : {
          supported_nips: [77],
          limitation: {
            max_negentropy_records: config.negentropyMaxRecords,
            max_negentropy_sessions: config.negentropyMaxSessions,
            negentropy_frame_bytes: config.negentropyFrameBytes,
          },
        };
}

function refuse(ctx: RelayContext, conn: Connection, subId: string, reason: string): void {
  ctx.negentropy.close(conn, subId);
  countRejection(ctx.stats, reason);
  conn.send(makeNegErrFrame(subId, reason));
}

/** Answers one negentropy message (or only checks it, without `neg`); refuses a malformed one (a client mistake, not an error). */
function answer(ctx: RelayContext, conn: Connection, subId: string, neg: Negentropy | undefined, hex: string): boolean {
  try {
    if (neg === undefined) checkNegentropyMessage(hexToBytes(hex));
    else conn.send(makeNegMsgFrame(subId, bytesToHex(neg.respond(hexToBytes(hex)))));
    return true;
  } catch (err) {
    if (!(err instanceof NegentropyError)) throw err;
    logClientMistake(conn.log, conn, ctx.stats.clientMistakes, 'malformed', 'debug', { message: err.message });
    refuse(ctx, conn, subId, makeReason('invalid', `malformed negentropy message: ${err.message}`));
    return false;
  }
}

/**
 * NEG-OPEN: reconciles the events the filter matches (those this connection may read, by the same
 * rules and filter policies as REQ) against the client's first message. An id already open is
 * replaced (NIP-77).
 */
export function handleNegOpen(ctx: RelayContext, conn: Connection, subId: string, filter: Filter, message: string): void {
  inOrder(ctx, conn, () => negOpen(ctx, conn, subId, filter, message));
}

function negOpen(ctx: RelayContext, conn: Connection, subId: string, filter: Filter, message: string): void | Promise<void> {
  const cfg = ctx.config;
  ctx.negentropy.close(conn, subId);
  if (cfg.negentropyMaxRecords === 0) return refuse(ctx, conn, subId, makeReason('blocked', 'negentropy sync is off on this relay'));
  if (ctx.negentropy.count(conn) >= cfg.negentropyMaxSessions) {
    return refuse(ctx, conn, subId, makeReason('blocked', `too many negentropy sessions on this connection (max ${cfg.negentropyMaxSessions})`));
  }
  const rejection = firstRejection(ctx.hooks.rejectFilter, [filter], {
    authed: conn.authed,
    ip: conn.ip,
    now: ctx.now(),
    readsPrivate: conn.readsPrivate,
  });
  if (rejection !== undefined) {
    if (rejection.startsWith('auth-required:')) conn.send(makeAuthFrame(conn.challenge));
    return refuse(ctx, conn, subId, rejection);
  }
  // A malformed message is refused before the store is read for it.
  if (!answer(ctx, conn, subId, undefined, message)) return;
  const found = ctx.store.negentropyItems(filter, cfg.negentropyMaxRecords, { viewer: viewerOf(ctx, conn) });
  if (!isPending(found)) return openSession(ctx, conn, subId, message, found);
  return found.then(
    (items) => {
      // The connection may have ended while the store read (its sessions were freed then).
      if (conn.isOpen) openSession(ctx, conn, subId, message, items);
    },
    (err) => {
      recordError(ctx.stats, 'handler NEG-OPEN', err);
      conn.log.error({ err, type: 'NEG-OPEN' }, 'handler failed');
      refuse(ctx, conn, subId, makeReason('error', 'internal error'));
    },
  );
}

/**
 * A connection's NEG frames run in the order they came: when a NEG-OPEN waits for the store (a
 * networked one), the frames after it wait behind it, so limits, replaced ids and NEG-MSG/NEG-CLOSE
 * act exactly as with a store that answers at once (which never queues anything here).
 */
const negQueues = new WeakMap<Connection, Promise<void>>();
function inOrder(ctx: RelayContext, conn: Connection, fn: () => void | Promise<void>): void {
  const queued = negQueues.get(conn);
  const run = queued ? queued.then(fn) : fn();
  if (!run) return;
  const done = () => {
    if (negQueues.get(conn) === tail) negQueues.delete(conn);
  };
  const tail: Promise<void> = run.then(done, (err) => {
    // What dispatch does for a frame handled at once.
    recordError(ctx.stats, 'handler NEG', err);
    conn.log.error({ err, type: 'NEG' }, 'handler failed');
    done();
  });
  negQueues.set(conn, tail);
}

/** Starts a session over the items the store found (or refuses when there were too many). */
function openSession(ctx: RelayContext, conn: Connection, subId: string, message: string, items: Array<{ timestamp: number; id: string }> | undefined): void {
  const cfg = ctx.config;
  if (items === undefined) {
    return refuse(
      ctx,
      conn,
      subId,
      makeReason('blocked', `this filter matches more than ${cfg.negentropyMaxRecords} events; split it (since/until, authors, kinds)`),
    );
  }
  if (!ctx.negentropy.hasRoomFor(items.length)) {
    return refuse(ctx, conn, subId, makeReason('blocked', 'too many negentropy sessions open on this relay; try again later'));
  }
  const neg = new Negentropy(NegentropySet.from(items), 'responder', { frameSizeLimit: cfg.negentropyFrameBytes });
  if (answer(ctx, conn, subId, neg, message)) ctx.negentropy.add(conn, subId, neg, items.length);
}

/** NEG-MSG: the next round of an open session. */
export function handleNegMsg(ctx: RelayContext, conn: Connection, subId: string, message: string): void {
  inOrder(ctx, conn, () => negMsg(ctx, conn, subId, message));
}

function negMsg(ctx: RelayContext, conn: Connection, subId: string, message: string): void {
  const session = ctx.negentropy.get(conn, subId);
  if (!session) return refuse(ctx, conn, subId, 'closed: no open negentropy session with this id');
  ctx.negentropy.touch(conn, subId);
  answer(ctx, conn, subId, session.neg, message);
}

/** NEG-CLOSE: ends a session; unknown ids are ignored. */
export function handleNegClose(ctx: RelayContext, conn: Connection, subId: string): void {
  inOrder(ctx, conn, () => ctx.negentropy.close(conn, subId));
}
