import { npubEncode } from 'nostr-tools/nip19';
import { isRegularKind } from '../../shared/kinds.js';
import { makeReason } from '../../shared/reason.js';
import type { MailboxQuota } from '../mailbox/quota.js';
import type { RejectEvent } from './types.js';

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Refuses a regular event addressed (`p` tag) to a recipient whose undelivered mailbox is full, so
 * the sender learns it instead of anything being dropped later. Replaceable, addressable and
 * ephemeral kinds are state, not mail, and pass. An event already stored passes too, so a
 * resubmission still gets its `duplicate:` answer. An admitted event counts against its
 * recipients' mailboxes at once, so a burst cannot overshoot while it is being verified and stored.
 *
 * Strangers share the first `limit` places; the recipient's contacts (`isContact`: the p tags of its
 * kind-3 list) and the recipient itself may go on to twice the limit, so no number of fresh keys can
 * lock a contact out. `onRefused` is told the recipient of each refusal (so its agent can be told).
 */
export function rejectFullMailbox(
  quota: MailboxQuota,
  isStored: (id: string) => boolean,
  isContact: (recipient: string, sender: string) => boolean = () => false,
  onRefused: (recipient: string) => void = () => {},
): RejectEvent {
  return function rejectFullMailbox(ev) {
    if (!isRegularKind(ev.kind)) return undefined;
    for (const t of ev.tags) {
      if (t[0] !== 'p' || t[1] === undefined || !HEX64.test(t[1])) continue;
      if (!quota.isFull(t[1])) continue;
      if ((t[1] === ev.pubkey || isContact(t[1], ev.pubkey)) && !quota.isFull(t[1], 2 * quota.limit)) continue;
      if (isStored(ev.id)) return undefined;
      onRefused(t[1]);
      return makeReason('rate-limited', `mailbox of ${npubEncode(t[1])} is full (${quota.limit} undelivered events)`);
    }
    quota.raise(ev);
    return undefined;
  };
}
