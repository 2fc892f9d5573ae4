import type { Filter } from '../../shared/filter.js';
import { makeAuthFrame, makeClosedFrame, makeEoseFrame, makeEventFrame } from '../../shared/messages/relay.js';
import { makeHistoryResetReason } from '../../shared/history-reset.js';
import { makeReason } from '../../shared/reason.js';
import type { Connection, Subscription } from '../connection.js';
import { countRejection, recordError, type RelayContext } from '../context.js';
import { firstRejection } from '../policies/types.js';
import { isInOriginChain } from '../replication/origins.js';
import type { Viewer } from '../store/sql-filter.js';
import { isPending, type SeqPage, type StoredEvent } from '../store/types.js';

/** Backfill chunk size when streaming a sequence range. */
const SEQ_CHUNK = 500;

/** Bodies of a stored answer read at once (one statement), while the socket takes them. */
const BODY_BATCH = 32;

/** A reader that drains nothing of a paused answer for this long is cut off. */
const STALL_LIMIT_MS = 30_000;

/** The viewer for store reads: who this connection is, for private inboxes. */
export function viewerOf(ctx: RelayContext, conn: Connection): Viewer {
  // An allow-listed replica relay reads private kinds as their recipients would.
  return { pubkeys: [...conn.authed], privateKinds: conn.readsPrivate ? [] : [...ctx.privateKinds] };
}

/**
 * Checks a REQ or COUNT against the filter policies; on refusal answers CLOSED (with an AUTH
 * challenge first when authentication would help) and returns false.
 */
export function admitFilters(ctx: RelayContext, conn: Connection, subId: string, filters: readonly Filter[]): boolean {
  const reason = firstRejection(ctx.hooks.rejectFilter, filters, { authed: conn.authed, ip: conn.ip, now: ctx.now(), readsPrivate: conn.readsPrivate });
  if (reason === undefined) return true;
  countRejection(ctx.stats, reason);
  if (reason.startsWith('auth-required:')) conn.send(makeAuthFrame(conn.challenge));
  conn.send(makeClosedFrame(subId, reason));
  return false;
}

/** Extracts the common sequence range of a REQ, or a reason when filters disagree. */
function seqRange(filters: readonly Filter[]): { after: number; until: number | undefined; limit: number | undefined } | string | undefined {
  const first = filters[0]!;
  const inSeqMode = filters.some((f) => f.seq_after !== undefined || f.seq_until !== undefined);
  if (!inSeqMode) return undefined;
  for (const f of filters) {
    if (f.seq_after !== first.seq_after || f.seq_until !== first.seq_until || f.limit !== first.limit) {
      return makeReason('invalid', 'every filter of a sequence REQ must carry the same seq_after, seq_until and limit');
    }
  }
  if (first.seq_after === undefined) return makeReason('invalid', 'seq_until needs seq_after');
  return { after: first.seq_after, until: first.seq_until, limit: first.limit };
}

/**
 * REQ: answers from storage, then goes live with no gap and no duplicate. The live part starts at
 * the store's `lastSeq()` read in the same turn as the query is issued: a synchronous store (SQLite)
 * has answered by then; an asynchronous one bounds its answer by that seq and the live frames that
 * arrive meanwhile are held behind the stored answer.
 */
export function handleReq(ctx: RelayContext, conn: Connection, subId: string, filters: Filter[]): void {
  ctx.stats.reqs++;
  const existing = conn.subs.get(subId);
  if (existing) closeSubscription(ctx, existing);
  else if (conn.subs.size >= ctx.config.maxSubscriptions) {
    const reason = makeReason('blocked', `too many open subscriptions (max ${ctx.config.maxSubscriptions})`);
    countRejection(ctx.stats, reason);
    conn.send(makeClosedFrame(subId, reason));
    return;
  }
  if (!admitFilters(ctx, conn, subId, filters)) return;
  const range = seqRange(filters);
  if (typeof range === 'string') {
    countRejection(ctx.stats, range);
    conn.send(makeClosedFrame(subId, range));
    return;
  }

  const sub: Subscription = {
    conn,
    subId,
    subIdJson: JSON.stringify(subId),
    filters,
    seqMode: range !== undefined,
    liveFrom: Number.MAX_SAFE_INTEGER,
    closed: false,
  };
  conn.subs.set(subId, sub);
  if (range !== undefined && range.after > ctx.store.lastSeq()) {
    // Another relay on a shared database may have handed out this cursor before this one caught up
    // with it: catch up once before deciding.
    ctx.store.catchUp().then(
      () => {
        if (sub.closed) return;
        if (range.after > ctx.store.lastSeq()) return refuseReset(ctx, sub, range.after);
        start(ctx, sub, range, filters);
      },
      failWith(ctx, sub),
    );
    return;
  }
  start(ctx, sub, range, filters);
}

/** Sequence numbers only grow: a cursor past the newest one was issued by another database. */
function refuseReset(ctx: RelayContext, sub: Subscription, after: number): void {
  // Replaced, or restored from an older backup: resuming from the cursor would skip events silently.
  const reason = makeHistoryResetReason(after, ctx.store.lastSeq());
  closeSubscription(ctx, sub);
  countRejection(ctx.stats, reason);
  sub.conn.send(makeClosedFrame(sub.subId, reason));
}

function start(ctx: RelayContext, sub: Subscription, range: SeqRange | undefined, filters: Filter[]): void {
  try {
    answer(ctx, sub, range, filters);
  } catch (err) {
    // A REQ that could not be answered holds no slot; dispatch logs it and answers CLOSED.
    closeSubscription(ctx, sub);
    throw err;
  }
}

/** Ends a subscription whose asynchronous read failed, as dispatch does for a synchronous one. */
function failWith(ctx: RelayContext, sub: Subscription): (err: unknown) => void {
  return (err) => {
    recordError(ctx.stats, 'handler REQ', err);
    sub.conn.log.error({ err, type: 'REQ' }, 'handler failed');
    const open = !sub.closed;
    closeSubscription(ctx, sub);
    if (open) sub.conn.send(makeClosedFrame(sub.subId, makeReason('error', 'internal error')));
  };
}

type SeqRange = { after: number; until: number | undefined; limit: number | undefined };

/** Starts the stored answer of an admitted subscription (and its live part). */
function answer(ctx: RelayContext, sub: Subscription, range: SeqRange | undefined, filters: Filter[]): void {
  const { conn, subId } = sub;
  const viewer = viewerOf(ctx, conn);
  const store = ctx.store;
  const from = store.lastSeq();

  if (range === undefined) {
    const limits = filters.map((f) => Math.min(f.limit ?? ctx.config.defaultLimit, ctx.config.maxLimit));
    // Only the answer's seqs are held (8 bytes an event): bodies are read as the socket drains, so a
    // reader that stops reading pins no stored events, whatever it asked for. A store without
    // synchronous reads answers with bodies (one round trip instead of one per event).
    // To a socket with nothing queued, a small answer (or a large one's first events) comes with its bodies in one
    // statement per filter; the rest of a large one as seqs, its bodies read as the socket drains.
    const rows =
      store.querySmall !== undefined && conn.bufferedAmount === 0
        ? headAndSeqs(
            store.querySmall(filters, BODY_BATCH, { viewer, limits, maxSeq: from }),
            () => store.querySeqs(filters, { viewer, limits, maxSeq: from }) as number[],
          )
        : store.provides.syncReads
          ? store.querySeqs(filters, { viewer, limits, maxSeq: from })
          : store.query(filters, { viewer, limits, maxSeq: from });
    if (!isPending(rows)) {
      goLive(ctx, sub, from);
      sendStored(ctx, sub, rows, makeEoseFrame(subId));
      return;
    }
    sub.held = { frames: [], bytes: 0 };
    goLive(ctx, sub, from);
    rows.then((r) => sendStored(ctx, sub, r, makeEoseFrame(subId)), failWith(ctx, sub));
    return;
  }

  if (range.limit !== undefined || range.until !== undefined) {
    // Page mode: one bounded page; live only when it reached the end of an open range.
    const limit = Math.min(range.limit ?? ctx.config.maxLimit, ctx.config.maxLimit);
    // Without synchronous reads the page is bounded by `from`, and live frames after it are held
    // meanwhile (dropped if the page does not reach the end).
    const preLive = !store.provides.syncReads && range.until === undefined;
    if (preLive) {
      sub.held = { frames: [], bytes: 0 };
      goLive(ctx, sub, from);
    }
    const page = store.querySeq(filters, range.after, preLive ? from : range.until, limit, { viewer });
    const sendPage = (p: SeqPage) => {
      const live = !p.more && range.until === undefined;
      if (live && !preLive) goLive(ctx, sub, p.cursor);
      if (!live && preLive) leaveLive(ctx, sub);
      sendStored(ctx, sub, p.events, makeEoseFrame(subId, { cursor: p.cursor, more: p.more }), () => {
        // A page that does not go live is complete: it holds no subscription slot (a CLOSE is harmless).
        if (!live) closeSubscription(ctx, sub);
      });
    };
    if (isPending(page)) page.then(sendPage, failWith(ctx, sub));
    else sendPage(page);
    return;
  }

  streamBackfill(ctx, sub, range.after, viewer);
}

/** A whole small answer as read, or a large one's head (bodies read) followed by the seqs of the rest. */
function headAndSeqs(head: { events: StoredEvent[]; whole: boolean }, seqs: () => number[]): (StoredEvent | number)[] {
  if (head.whole) return head.events;
  const all = seqs();
  const n = head.events.length;
  // Read in the same turn, so the head is the answer's start; if it were not, the seqs alone are the answer.
  for (let k = 0; k < n; k++) if (all[k] !== head.events[k]!.seq) return all;
  const rows: (StoredEvent | number)[] = head.events;
  for (let k = n; k < all.length; k++) rows.push(all[k]!);
  return rows;
}

/**
 * Writes a stored answer (events, or seqs whose bodies are read as it goes), pausing while the socket is congested so a large answer to a reader on
 * a slow link is paced rather than cut off. Live frames for the subscription are held meanwhile
 * and follow EOSE in order. `done` runs once EOSE has been written.
 */
function sendStored(ctx: RelayContext, sub: Subscription, answer: readonly (StoredEvent | number)[], eose: string, done?: () => void): void {
  const conn = sub.conn;
  let rows = answer;
  const getRaws = ctx.store.getRaws;
  // Only a small answer to a socket with nothing queued: a large one is read body by body as the socket
  // drains, so a reader that stops reading makes the relay read no more than it can send.
  const batched = getRaws !== undefined && rows.length <= BODY_BATCH && conn.bufferedAmount === 0;
  let i = 0;
  let stalledSince = 0;
  const step = () => {
    if (sub.closed || !conn.isOpen) return;
    let paused = false;
    while (i < rows.length) {
      if (conn.isCongested()) {
        paused = true;
        break;
      }
      stalledSince = 0;
      const row = rows[i]!;
      if (typeof row === 'number' && batched) {
        // A small answer's bodies in one read; those not sent before the socket congests are dropped and read
        // again when it drains, so nothing is held past this step (at most BODY_BATCH events, briefly).
        const n = rows.length - i;
        const seqs = rows.slice(i, i + n) as number[];
        const raws = getRaws!.call(ctx.store, seqs);
        for (let k = 0; k < n; k++) {
          if (k > 0 && conn.isCongested()) break;
          i++;
          const raw = raws[k];
          // Gone since the query (deleted or expired): nothing to send.
          if (raw !== undefined) deliver(ctx, sub, { seq: seqs[k]!, raw });
        }
        continue;
      }
      i++;
      if (typeof row !== 'number') deliver(ctx, sub, row);
      else {
        // Gone since the query (deleted or expired): nothing to send.
        const raw = ctx.store.getRaw(row);
        if (typeof raw !== 'string' && raw !== undefined) {
          sub.held ??= { frames: [], bytes: 0 };
          raw.then(
            (r) => {
              if (r !== undefined && !sub.closed) deliver(ctx, sub, { seq: row, raw: r });
              step();
            },
            failWith(ctx, sub),
          );
          return;
        }
        if (raw !== undefined) deliver(ctx, sub, { seq: row, raw });
      }
    }
    if (paused) {
      // Bodies read whole with a small answer are not held while the socket drains: the rest is read again by seq.
      if (ctx.store.provides.syncReads && i < rows.length && typeof rows[i] !== 'number') {
        rows = rows.map((r) => (typeof r === 'number' ? r : r.seq));
      }
      sub.held ??= { frames: [], bytes: 0 };
      stalledSince ||= Date.now();
      if (Date.now() - stalledSince > STALL_LIMIT_MS) return conn.cutOff('stopped reading a stored answer');
      setTimeout(step, 5);
      return;
    }
    conn.send(eose);
    const held = sub.held;
    sub.held = undefined;
    if (held) for (const f of held.frames) conn.send(f);
    done?.();
  };
  step();
}

/**
 * Tail mode: streams the whole backlog in keyset pages, yielding between them and pausing while
 * the client drains (mid-page too, so large events never pile up past the cap), then goes live in
 * the same turn as the query that found nothing more, so no event falls between backfill and live.
 * With an asynchronous store each page is bounded by the `lastSeq()` read when it was asked for, and
 * live frames from there are held while it is read; they are dropped again if it was not the last.
 */
function streamBackfill(ctx: RelayContext, sub: Subscription, after: number, viewer: Viewer): void {
  const conn = sub.conn;
  let cursor = after;
  let stalledSince = 0;
  const take = (page: SeqPage, from: number | undefined) => {
    if (sub.closed || !conn.isOpen) return;
    let sent = 0;
    for (const r of page.events) {
      if (conn.isCongested() || !deliver(ctx, sub, r)) break;
      cursor = r.seq;
      sent++;
    }
    if (sent < page.events.length) {
      if (from !== undefined) leaveLive(ctx, sub);
      // Paused mid-page (or the socket went away): resume after the last event sent.
      if (conn.isOpen) setTimeout(step, 5);
      return;
    }
    cursor = page.cursor;
    if (page.more) {
      if (from !== undefined) leaveLive(ctx, sub);
      setImmediate(step);
      return;
    }
    if (from === undefined) goLive(ctx, sub, cursor);
    conn.send(makeEoseFrame(sub.subId, { cursor, more: false }));
    const held = sub.held;
    sub.held = undefined;
    if (held) for (const f of held.frames) conn.send(f);
  };
  const step = () => {
    if (sub.closed || !conn.isOpen) return;
    // Let a slow reader drain before reading more from disk.
    if (conn.isCongested()) {
      stalledSince ||= Date.now();
      if (Date.now() - stalledSince > STALL_LIMIT_MS) return conn.cutOff('stopped reading a backfill');
      setTimeout(step, 5);
      return;
    }
    stalledSince = 0;
    if (ctx.store.provides.syncReads) {
      const page = ctx.store.querySeq(sub.filters, cursor, undefined, SEQ_CHUNK, { viewer });
      if (!isPending(page)) return take(page, undefined);
      page.then((p) => take(p, undefined), failWith(ctx, sub));
      return;
    }
    const from = Math.max(cursor, ctx.store.lastSeq());
    sub.held = { frames: [], bytes: 0 };
    goLive(ctx, sub, from);
    Promise.resolve(ctx.store.querySeq(sub.filters, cursor, from, SEQ_CHUNK, { viewer })).then((p) => take(p, from), failWith(ctx, sub));
  };
  step();
}

/** Takes a subscription out of live delivery again, dropping the frames held for it. */
function leaveLive(ctx: RelayContext, sub: Subscription): void {
  ctx.index.remove(sub);
  sub.liveFrom = Number.MAX_SAFE_INTEGER;
  sub.held = undefined;
}

/** Sends one stored event (with its seq in sequence mode) and tells the delivery hooks. */
function deliver(ctx: RelayContext, sub: Subscription, r: StoredEvent): boolean {
  // Never back to a relay it was replicated through (relays replicating each other would echo); sequence-mode
  // readers (replicas) get the chain, so it grows along a ring and the event stops before closing it.
  const chain =
    ctx.replicationOrigins.size > 0 && (sub.seqMode || sub.conn.peerRelay !== undefined) ? ctx.store.provides.replication?.originOf(r.seq) : undefined;
  if (isInOriginChain(chain, sub.conn.peerRelay)) return true;
  if (!sub.conn.send(makeEventFrame(sub.subIdJson, r.raw, sub.seqMode ? r.seq : undefined, chain))) return false;
  for (const hook of ctx.hooks.onDelivered) hook(sub.conn, r.seq, r.raw);
  return true;
}

function goLive(ctx: RelayContext, sub: Subscription, from: number): void {
  if (sub.closed) return;
  sub.liveFrom = from;
  ctx.index.add(sub);
}

/** Removes a subscription from its connection and the live index. */
export function closeSubscription(ctx: RelayContext, sub: Subscription): void {
  sub.closed = true;
  ctx.index.remove(sub);
  if (sub.conn.subs.get(sub.subId) === sub) sub.conn.subs.delete(sub.subId);
}

/** CLOSE: ends a subscription; unknown ids are ignored (NIP-01). */
export function handleClose(ctx: RelayContext, conn: Connection, subId: string): void {
  const sub = conn.subs.get(subId);
  if (sub) closeSubscription(ctx, sub);
}
