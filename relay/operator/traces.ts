import type { NostrEvent } from '../../shared/event.js';
import { getTraceparent } from '../../shared/trace-context.js';
import type { RelayContext } from '../context.js';
import type { DashboardTraces } from '../plugins/dashboard.js';

/**
 * The dashboard's links from events to traces. A stored public event's trace is the one its
 * `traceparent` tag names (the relay's spans for it are in that trace, if it traced it); otherwise
 * the relay-rooted trace it remembers from ingest. A private event's outside tag is never read: the
 * relay does not join a DM to its sender's trace, so it shows none.
 */
export function createDashboardTraces(ctx: Pick<RelayContext, 'config' | 'store' | 'tracing' | 'privateKinds'>): DashboardTraces {
  return {
    urlTemplate: ctx.config.traceUrl,
    exporting: ctx.tracing.enabled,
    recent: () => ctx.tracing.recentTraces(),
    lookup(eventId) {
      // Synchronous (the dashboard asks on its turn): a store without synchronous reads answers from what was remembered.
      const [stored] = ctx.store.provides.syncReads?.query([{ ids: [eventId] }]) ?? [];
      const remembered = ctx.tracing.getTraceId(eventId) ?? null;
      if (!stored) {
        const r = ctx.tracing.recentTraces().find((t) => t.eventId === eventId);
        return r && { ...r };
      }
      const event = JSON.parse(stored.raw) as NostrEvent;
      if (ctx.privateKinds.has(event.kind)) return { eventId, kind: event.kind, traceId: null };
      return { eventId, kind: event.kind, traceId: getTraceparent(event.tags)?.traceId ?? remembered };
    },
  };
}
