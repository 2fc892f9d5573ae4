import { makeReason } from '../../shared/reason.js';
import type { RejectEvent } from './types.js';

/** The moderation lists the policies read (the admin store implements it). */
export interface ModerationLists {
  isBannedPubkey(pubkey: string): boolean;
  isAllowedPubkey(pubkey: string): boolean;
  isBannedEvent(id: string): boolean;
  isKindAccepted(kind: number): boolean;
}

/** Who may publish: anyone, allow-listed pubkeys (and admins), or NIP-42 authenticated connections. */
export type WritePolicy = 'open' | 'allow-list' | 'authenticated';

/** Refuses an event id an admin has banned (NIP-86 banevent). */
export function rejectBannedEvents(lists: ModerationLists): RejectEvent {
  return function rejectBannedEvents(ev) {
    return lists.isBannedEvent(ev.id) ? makeReason('blocked', 'this event is banned from this relay') : undefined;
  };
}

/** Refuses events by a banned author, or sent by a connection authenticated as a banned pubkey. */
export function rejectBannedPubkeys(lists: ModerationLists): RejectEvent {
  return function rejectBannedPubkeys(ev, ctx) {
    if (lists.isBannedPubkey(ev.pubkey)) return makeReason('blocked', 'this pubkey is banned from this relay');
    for (const pk of ctx.authed) if (lists.isBannedPubkey(pk)) return makeReason('blocked', 'your pubkey is banned from this relay');
    return undefined;
  };
}

/** Refuses kinds an admin disallowed, and every kind not allowed once some are (NIP-86 allowkind). */
export function rejectDisallowedKinds(lists: ModerationLists): RejectEvent {
  return function rejectDisallowedKinds(ev) {
    return lists.isKindAccepted(ev.kind) ? undefined : makeReason('blocked', `kind ${ev.kind} is not accepted by this relay`);
  };
}

/**
 * The write policy as a hook (none for `open`). `allow-list` accepts an event whose author is
 * allow-listed or an admin, or one sent by a connection authenticated as such a pubkey (so an
 * allowed agent can publish gift wraps signed by throwaway keys). A replicated event has no sending
 * connection: its author must be listed. `authenticated` does not apply to replication links.
 */
export function rejectByWritePolicy(mode: WritePolicy, lists: ModerationLists, admins: ReadonlySet<string>): RejectEvent | undefined {
  if (mode === 'open') return undefined;
  if (mode === 'authenticated') {
    return function rejectUnauthenticatedWriters(_ev, ctx) {
      return ctx.authed.size === 0 && !ctx.replicated ? makeReason('auth-required', 'this relay accepts events only from authenticated clients') : undefined;
    };
  }
  const allowed = (pk: string) => admins.has(pk) || lists.isAllowedPubkey(pk);
  return function rejectUnlistedWriters(ev, ctx) {
    if (allowed(ev.pubkey)) return undefined;
    for (const pk of ctx.authed) if (allowed(pk)) return undefined;
    return ctx.authed.size === 0 && !ctx.replicated
      ? makeReason('auth-required', 'this relay accepts events only from allow-listed pubkeys')
      : makeReason('restricted', 'this relay accepts events only from allow-listed pubkeys');
  };
}
