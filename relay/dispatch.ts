import { parseClientMessage } from '../shared/messages/client.js';
import { makeClosedFrame, makeNegErrFrame, makeNoticeFrame, makeOkFrame } from '../shared/messages/relay.js';
import { makeReason } from '../shared/reason.js';
import { logClientMistake } from './client-mistakes.js';
import type { Connection } from './connection.js';
import { countRejection, observeLatency, recordError, type RelayContext } from './context.js';
import { handleAuth } from './handlers/auth.js';
import { handleCount } from './handlers/count.js';
import { handleEvent } from './handlers/event.js';
import { handleNegClose, handleNegMsg, handleNegOpen } from './handlers/negentropy.js';
import { handleClose, handleReq } from './handlers/req.js';

/**
 * Routes one inbound frame: validated once here, at the edge; handlers take typed values.
 * Bad input gets an OK/CLOSED/NOTICE with a NIP-01 reason; unexpected failures are logged with
 * their stack and answered `error: internal error`; the connection stays usable either way.
 * Returns the frame's work still under way (EVENT, AUTH), settled once it is answered, so the
 * connection's inbound gate can bound how much of it one connection has at once.
 */
export function dispatch(ctx: RelayContext, conn: Connection, text: string): Promise<void> | undefined {
  const parsed = parseClientMessage(text);
  if (!parsed.ok) {
    const e = parsed.error;
    countRejection(ctx.stats, e.reason);
    logClientMistake(conn.log, conn, ctx.stats.clientMistakes, 'malformed', 'debug', { message: e.reason });
    if (e.reply === 'OK') conn.send(makeOkFrame(e.eventId, false, e.reason));
    else if (e.reply === 'CLOSED' || e.reply === 'COUNT_CLOSED') conn.send(makeClosedFrame(e.subId, e.reason));
    else if (e.reply === 'NEG-ERR') {
      ctx.negentropy.close(conn, e.subId);
      conn.send(makeNegErrFrame(e.subId, e.reason));
    } else conn.send(makeNoticeFrame(e.reason));
    return undefined;
  }
  const m = parsed.message;
  const fail = (err: unknown) => {
    recordError(ctx.stats, `handler ${m.type}`, err);
    conn.log.error({ err, type: m.type }, 'handler failed');
    const reason = makeReason('error', 'internal error');
    if (m.type === 'EVENT' || m.type === 'AUTH') conn.send(makeOkFrame(m.event.id, false, reason));
    else if (m.type === 'REQ' || m.type === 'COUNT') conn.send(makeClosedFrame(m.subId, reason));
    else if (m.type === 'NEG-OPEN' || m.type === 'NEG-MSG') {
      ctx.negentropy.close(conn, m.subId);
      conn.send(makeNegErrFrame(m.subId, reason));
    } else conn.send(makeNoticeFrame(reason));
  };
  try {
    switch (m.type) {
      case 'EVENT': {
        const start = performance.now();
        return handleEvent(ctx, conn, m.event).then(() => observeLatency(ctx.stats, 'ok', (performance.now() - start) / 1000), fail);
      }
      case 'REQ':
        conn.noteReq(m.subId);
        handleReq(ctx, conn, m.subId, m.filters);
        return undefined;
      case 'CLOSE':
        handleClose(ctx, conn, m.subId);
        return undefined;
      case 'AUTH':
        return handleAuth(ctx, conn, m.event).catch(fail);
      case 'COUNT':
        handleCount(ctx, conn, m.subId, m.filters);
        return undefined;
      case 'NEG-OPEN':
        handleNegOpen(ctx, conn, m.subId, m.filter, m.message);
        return undefined;
      case 'NEG-MSG':
        handleNegMsg(ctx, conn, m.subId, m.message);
        return undefined;
      case 'NEG-CLOSE':
        handleNegClose(ctx, conn, m.subId);
        return undefined;
    }
  } catch (err) {
    fail(err);
  }
  return undefined;
}
