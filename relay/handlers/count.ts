import type { Filter } from '../../shared/filter.js';
import { makeClosedFrame, makeCountFrame } from '../../shared/messages/relay.js';
import { makeReason } from '../../shared/reason.js';
import type { Connection } from '../connection.js';
import { recordError, type RelayContext } from '../context.js';
import { isPending } from '../store/types.js';
import { admitFilters, viewerOf } from './req.js';

/** NIP-45 COUNT: the same policies and private-inbox rule as REQ, so a count leaks nothing a REQ would not. */
export function handleCount(ctx: RelayContext, conn: Connection, subId: string, filters: Filter[]): void {
  ctx.stats.counts++;
  if (filters.some((f) => f.seq_after !== undefined || f.seq_until !== undefined)) {
    conn.send(makeClosedFrame(subId, makeReason('invalid', 'COUNT does not take sequence ranges')));
    return;
  }
  if (!admitFilters(ctx, conn, subId, filters)) return;
  const n = ctx.store.count(filters, { viewer: viewerOf(ctx, conn) });
  if (!isPending(n)) {
    conn.send(makeCountFrame(subId, n));
    return;
  }
  n.then(
    (v) => conn.send(makeCountFrame(subId, v)),
    (err) => {
      recordError(ctx.stats, 'handler COUNT', err);
      conn.log.error({ err, type: 'COUNT' }, 'handler failed');
      conn.send(makeClosedFrame(subId, makeReason('error', 'internal error')));
    },
  );
}
