import { npubEncode } from 'nostr-tools/nip19';
import { DOC_WRITE_KINDS, DocKind, getDocAddresses, getIdentityRecordAddress } from '../../shared/crdt-events.js';
import { isOwnerKeyAt } from '../../shared/doc-owner.js';
import type { KeyLog } from '../../shared/identity-log.js';
import { makeReason } from '../../shared/reason.js';
import { isDocMember, type StoredMembership } from '../crdt/membership.js';
import type { RejectEvent } from './types.js';

/** Which documents the relay guards: those whose record asks for it, or all of them. */
export type DocMembershipMode = 'tagged' | 'all';

/**
 * Refuses a shared-document event (delta, snapshot part, awareness) whose author is not a member of
 * every document its `a` tags name, per the document's stored membership record. In `tagged` mode
 * only records carrying `["enforce", "members"]` are enforced; in `all` mode every document is, and
 * a document with no stored record takes no writes. The author is checked again by the signature
 * verification that follows the policies, so a forged pubkey gains nothing. An event already stored
 * passes, so a resubmission still gets its `duplicate:` answer (a removed member's outbox settles).
 */
export function rejectNonMemberDocWrites(
  lookup: (address: string) => StoredMembership | undefined,
  mode: DocMembershipMode,
  isStored: (id: string) => boolean = () => false,
  priorKeys: (pubkey: string) => readonly string[] = () => [],
  keyLog: (aid: string) => KeyLog | undefined = () => undefined,
): RejectEvent {
  const kinds = new Set(DOC_WRITE_KINDS);
  return function rejectNonMemberDocWrites(ev, ctx) {
    const reason = ev.kind === DocKind.IdentityMembership ? checkRecord(ev, ctx.now) : check(ev, ctx.now);
    return reason !== undefined && isStored(ev.id) ? undefined : reason;
  };

  /**
   * A membership record of a document addressed by agent id: it must name its document (`a` and `d`), and,
   * when the identity's log is stored here, be signed by a key that speaks for it now (a revoked key, or a
   * rotated-out key past its grace period, is refused). With no log here it is stored unchecked: readers
   * and this relay's enforcement only honour a record whose key the log backs.
   */
  function checkRecord(ev: Parameters<RejectEvent>[0], now: number): string | undefined {
    const doc = getIdentityRecordAddress(ev);
    if (!doc) return makeReason('invalid', 'an identity membership record needs an a tag naming its 34339 document and the same d tag');
    const log = keyLog(doc.aid);
    if (log && !isOwnerKeyAt(log, ev.pubkey, Math.max(now, ev.created_at))) {
      return makeReason('restricted', `${safeNpub(ev.pubkey)} does not speak for identity ${doc.aid} (not its key, revoked, or past its grace period)`);
    }
    return undefined;
  }

  function check(ev: Parameters<RejectEvent>[0], now: number): string | undefined {
    if (!kinds.has(ev.kind)) return undefined;
    const addresses = getDocAddresses(ev);
    if (addresses.length === 0) return mode === 'all' ? makeReason('invalid', 'a shared-document event must name its document in an a tag') : undefined;
    for (const address of addresses) {
      const record = lookup(address);
      if (!record) {
        if (mode === 'all') return makeReason('restricted', `document ${address} has no membership record on this relay`);
        continue;
      }
      // A member's successor key (its key event log, stored here) writes for it; an identity owner's keys
      // are checked by their windows in isDocMember (an earlier owner key lends nothing to a revoked one).
      if (
        (mode === 'all' || record.enforced) &&
        !isDocMember(record, ev.pubkey, now) &&
        !priorKeys(ev.pubkey).some((k) => k === record.owner || record.members.has(k))
      ) {
        return makeReason('restricted', `${safeNpub(ev.pubkey)} is not a member of document ${address}`);
      }
    }
    return undefined;
  }
}

function safeNpub(pubkey: string): string {
  try {
    return npubEncode(pubkey);
  } catch {
    return 'the author';
  }
}
