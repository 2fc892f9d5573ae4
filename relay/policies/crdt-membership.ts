import { npubEncode } from 'nostr-tools/nip19';
import { DOC_WRITE_KINDS, getDocAddresses } from '../../shared/crdt-events.js';
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
): RejectEvent {
  const kinds = new Set(DOC_WRITE_KINDS);
  return function rejectNonMemberDocWrites(ev) {
    const reason = check(ev);
    return reason !== undefined && isStored(ev.id) ? undefined : reason;
  };

  function check(ev: Parameters<RejectEvent>[0]): string | undefined {
    if (!kinds.has(ev.kind)) return undefined;
    const addresses = getDocAddresses(ev);
    if (addresses.length === 0) return mode === 'all' ? makeReason('invalid', 'a shared-document event must name its document in an a tag') : undefined;
    for (const address of addresses) {
      const record = lookup(address);
      if (!record) {
        if (mode === 'all') return makeReason('restricted', `document ${address} has no membership record on this relay`);
        continue;
      }
      // A member's successor key (its key event log, stored here) writes for it.
      if ((mode === 'all' || record.enforced) && !isDocMember(record, ev.pubkey) && !priorKeys(ev.pubkey).some((k) => isDocMember(record, k))) {
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
