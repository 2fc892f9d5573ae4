/**
 * Who may write a document. The membership record is data the transport layer signs: the owner publishes it
 * (for Nostr: an addressable event, see wire.ts), and a newer version replaces an older one. The core only
 * holds the current record and answers `isMember`.
 */

/** The owner and the writers of one document; `version` grows with every change (Nostr: created_at). */
export interface MembershipRecord {
  readonly owner: string;
  readonly members: readonly string[];
  readonly version: number;
}

/** A frozen record with members deduplicated and sorted (the owner is always a member, listed or not). */
export function makeMembership(owner: string, members: Iterable<string> = [], version = 0): MembershipRecord {
  const set = new Set(members);
  set.delete(owner);
  return Object.freeze({ owner, members: Object.freeze([...set].sort()), version });
}

/** True when `pubkey` may write under `record`. */
export function isMemberOf(record: MembershipRecord, pubkey: string): boolean {
  return pubkey === record.owner || record.members.includes(pubkey);
}

/**
 * The record to keep after `next`, signed by `author`, arrives: `next` when the owner signed it for the same
 * owner with a higher version, otherwise `undefined` (keep `current`).
 */
export function acceptMembership(current: MembershipRecord, next: MembershipRecord, author: string): MembershipRecord | undefined {
  if (author !== current.owner || next.owner !== current.owner) return undefined;
  if (!(next.version > current.version)) return undefined;
  return makeMembership(next.owner, next.members, next.version);
}
