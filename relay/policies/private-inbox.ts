import type { NostrEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import { makeReason } from '../../shared/reason.js';
import type { RejectFilter } from './types.js';

/**
 * Private inboxes: events of these kinds are readable only by a connection authenticated as their
 * author or as a `p`-tagged recipient. Store queries apply the same rule in SQL (sql-filter.ts).
 */
export function canRead(ev: NostrEvent, authed: ReadonlySet<string>, privateKinds: ReadonlySet<number>): boolean {
  if (!privateKinds.has(ev.kind)) return true;
  if (authed.size === 0) return false;
  if (authed.has(ev.pubkey)) return true;
  for (const t of ev.tags) if (t[0] === 'p' && t[1] !== undefined && authed.has(t[1])) return true;
  return false;
}

/**
 * A REQ or COUNT that asks for private kinds by name needs authentication, and an authenticated
 * reader must name itself as author or `#p` recipient; other filters simply never see private events.
 */
export function rejectPrivateInboxReads(privateKinds: ReadonlySet<number>): RejectFilter {
  return function rejectPrivateInboxReads(filters, ctx) {
    if (ctx.readsPrivate) return undefined;
    for (const f of filters) {
      if (!f.kinds?.some((k) => privateKinds.has(k))) continue;
      if (ctx.authed.size === 0) return makeReason('auth-required', 'private messages are served only to their author or recipient');
      if (!namesReader(f, ctx.authed)) return makeReason('restricted', 'you may read only your own private messages');
    }
    return undefined;
  };
}

function namesReader(f: Filter, authed: ReadonlySet<string>): boolean {
  if (f.authors?.length && f.authors.every((a) => authed.has(a))) return true;
  const p = f['#p'];
  return !!p?.length && p.every((v) => authed.has(v));
}
