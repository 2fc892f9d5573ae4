import { npubEncode } from 'nostr-tools/nip19';
import type { NostrEvent } from '../../shared/event.js';
import { isRegularKind } from '../../shared/kinds.js';
import { makeReason } from '../../shared/reason.js';
import type { MailboxQuota } from '../mailbox/quota.js';
import type { RejectEvent } from './types.js';

const HEX64 = /^[0-9a-f]{64}$/;

/** The smallest quota whose strangers' part is shared out (fresh keys, per-sender shares). */
export const MIN_SHARED_QUOTA = 10;

/** The stranger's share of a mailbox: the most undelivered events one non-contact sender may hold in it. */
export function getStrangerShare(limit: number): number {
  return Math.max(1, Math.floor(limit / 10));
}

/**
 * Refuses a regular event addressed (`p` tag) to a recipient whose undelivered mailbox is full, so
 * the sender learns it instead of anything being dropped later. Replaceable, addressable and
 * ephemeral kinds are state, not mail, and pass. An event already stored passes too, so a
 * resubmission still gets its `duplicate:` answer. An admitted event counts against its
 * recipients' mailboxes at once, so a burst cannot overshoot while it is being verified and stored.
 *
 * Strangers share the first `limit` places; the recipient's contacts (`isContact`: the p tags of its
 * kind-3 list) and the recipient itself may go on to twice the limit, so no number of fresh keys can
 * lock a contact out. Among strangers, once a mailbox is half full: fresh keys (`isEstablished` false:
 * no event stored here a day before) are refused, so a crowd made on the spot fills at most half the
 * strangers' part; and each established sender may hold at most its share (`getStrangerShare`, a tenth
 * of the limit; `senderHolds` counts its undelivered events), so the other half goes to at least five
 * established strangers. `onRefused` is told the recipient of each refusal (so its agent can be told).
 */
export function rejectFullMailbox(
  quota: MailboxQuota,
  isStored: (id: string) => boolean,
  isContact: (recipient: string, sender: string) => boolean = () => false,
  onRefused: (recipient: string) => void = () => {},
  senderHolds: (recipient: string, sender: string) => number = () => 0,
  isEstablished: (sender: string) => boolean = () => true,
  onNearLimit?: (event: NostrEvent, recipient: string, ceiling: number) => void,
): RejectEvent {
  const share = getStrangerShare(quota.limit);
  const half = Math.max(1, Math.ceil(quota.limit / 2));
  // A quota under MIN_SHARED_QUOTA has no room to share (a tenth is under one event): first come, first served.
  const shared = quota.limit >= MIN_SHARED_QUOTA;
  return function rejectFullMailbox(ev, ctx) {
    if (!isRegularKind(ev.kind)) return undefined;
    // Replicated mail is history the upstream already admitted: counted, never refused (the quota paces senders).
    if (ctx.replicated) {
      quota.raise(ev);
      return undefined;
    }
    for (const t of ev.tags) {
      if (t[0] !== 'p' || t[1] === undefined || !HEX64.test(t[1])) continue;
      if (!quota.isFull(t[1], half)) continue;
      const stranger = t[1] !== ev.pubkey && !isContact(t[1], ev.pubkey);
      if (stranger && shared && !quota.isFull(t[1])) {
        let why: string | undefined;
        if (!isEstablished(ev.pubkey)) why = 'is half full and takes no more mail from keys new to this relay';
        else if (senderHolds(t[1], ev.pubkey) >= share) why = `holds this sender's share (${share} undelivered events)`;
        if (why === undefined) {
          onNearLimit?.(ev, t[1], quota.limit);
          continue;
        }
        if (isStored(ev.id)) return undefined;
        onRefused(t[1]);
        return makeReason('rate-limited', `mailbox of ${npubEncode(t[1])} ${why}`);
      }
      if (!quota.isFull(t[1])) {
        onNearLimit?.(ev, t[1], stranger ? quota.limit : 2 * quota.limit);
        continue;
      }
      if (!stranger && !quota.isFull(t[1], 2 * quota.limit)) {
        onNearLimit?.(ev, t[1], 2 * quota.limit);
        continue;
      }
      if (isStored(ev.id)) return undefined;
      onRefused(t[1]);
      return makeReason('rate-limited', `mailbox of ${npubEncode(t[1])} is full (${quota.limit} undelivered events)`);
    }
    quota.raise(ev);
    return undefined;
  };
}
