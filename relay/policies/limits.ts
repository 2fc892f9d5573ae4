import { getExpiration, isProtectedEvent } from '../../shared/event.js';
import { getTagFilters } from '../../shared/filter.js';
import { Kind } from '../../shared/kinds.js';
import { makeReason } from '../../shared/reason.js';
import type { RejectEvent, RejectFilter } from './types.js';

/** Refuses events with more than `max` tags. */
export function rejectTooManyTags(max: number): RejectEvent {
  return function rejectTooManyTags(ev) {
    return ev.tags.length > max ? makeReason('invalid', `too many tags (${ev.tags.length} > ${max})`) : undefined;
  };
}

/** Refuses content longer than `max` characters (Unicode code points, as NIP-11 counts). */
export function rejectLongContent(max: number): RejectEvent {
  return function rejectLongContent(ev) {
    // Cheap bound first: a string of n UTF-16 units has at most n code points.
    if (ev.content.length <= max) return undefined;
    let n = 0;
    for (const _ of ev.content) if (++n > max) return makeReason('invalid', `content longer than ${max} characters`);
    return undefined;
  };
}

/** Refuses created_at more than `past` seconds ago (0: no bound; not for replicated history) or `future` seconds ahead. */
export function rejectCreatedAtOutOfRange(past: number, future: number): RejectEvent {
  return function rejectCreatedAtOutOfRange(ev, ctx) {
    if (ev.created_at > ctx.now + future) return makeReason('invalid', `created_at is more than ${future}s in the future`);
    if (past > 0 && !ctx.replicated && ev.created_at < ctx.now - past) return makeReason('invalid', `created_at is more than ${past}s in the past`);
    return undefined;
  };
}

/** NIP-40: refuses events that have already expired. */
export function rejectExpired(): RejectEvent {
  return function rejectExpired(ev, ctx) {
    const exp = getExpiration(ev);
    return exp !== undefined && exp <= ctx.now ? makeReason('invalid', 'event has expired') : undefined;
  };
}

/** NIP-70: a protected event is accepted only from a connection authenticated as its author (so never by replication). */
export function rejectProtectedUnlessAuthor(): RejectEvent {
  return function rejectProtectedUnlessAuthor(ev, ctx) {
    if (!isProtectedEvent(ev)) return undefined;
    if (ctx.replicated) return makeReason('restricted', 'a protected event (NIP-70) is accepted only from its author');
    if (ctx.authed.size === 0) return makeReason('auth-required', 'this event may only be published by its author');
    if (!ctx.authed.has(ev.pubkey)) return makeReason('restricted', 'this event may only be published by its author');
    return undefined;
  };
}

/** NIP-42 events are answers to a challenge, never stored or broadcast. */
export function rejectAuthEventsAsEvents(): RejectEvent {
  return function rejectAuthEventsAsEvents(ev) {
    return ev.kind === Kind.ClientAuth ? makeReason('invalid', 'kind 22242 is sent with AUTH, not EVENT') : undefined;
  };
}

/** Requires NIP-42 authentication before publishing (replication links are the operator's own). */
export function rejectUnauthenticatedEvents(): RejectEvent {
  return function rejectUnauthenticatedEvents(_ev, ctx) {
    return ctx.authed.size === 0 && !ctx.replicated ? makeReason('auth-required', 'this relay requires authentication') : undefined;
  };
}

/** Requires NIP-42 authentication before reading. */
export function rejectUnauthenticatedFilters(): RejectFilter {
  return function rejectUnauthenticatedFilters(_filters, ctx) {
    return ctx.authed.size === 0 ? makeReason('auth-required', 'this relay requires authentication') : undefined;
  };
}

/** Refuses a REQ or COUNT with more than `max` filters. */
export function rejectTooManyFilters(max: number): RejectFilter {
  return function rejectTooManyFilters(filters) {
    return filters.length > max ? makeReason('invalid', `too many filters (${filters.length} > ${max})`) : undefined;
  };
}

/** Refuses a filter field with more than `max` values (a filter bomb). */
export function rejectTooManyFilterValues(max: number): RejectFilter {
  return function rejectTooManyFilterValues(filters) {
    for (const f of filters) {
      const sizes = [f.ids?.length ?? 0, f.authors?.length ?? 0, f.kinds?.length ?? 0];
      for (const [, values] of getTagFilters(f)) sizes.push(values.length);
      if (sizes.some((n) => n > max)) return makeReason('invalid', `a filter field has more than ${max} values`);
    }
    return undefined;
  };
}
