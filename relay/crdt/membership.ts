import { DocKind, getMembershipMembers, isEnforcedMembership, parseDocAddress } from '../../shared/crdt-events.js';
import { isOwnerKeyAt, pickIdentityRecord } from '../../shared/doc-owner.js';
import type { NostrEvent } from '../../shared/event.js';
import { IdentityKind, type KeyLog, verifyKeyLog } from '../../shared/identity-log.js';
import type { Filter } from '../../shared/filter.js';
import type { StoredEvent } from '../store/types.js';

/** A document's stored membership record, as the relay reads it. */
export interface StoredMembership {
  /** The owner's key; for a document addressed by agent id (`34339:`), the agent id. */
  owner: string;
  /** Identity-addressed documents: whether a key speaks for the owner identity at `at` (seconds), per the log stored here. */
  ownerKeyAt?: (pubkey: string, at: number) => boolean;
  /** Listed members (the owner is a member whether listed or not). */
  members: ReadonlySet<string>;
  /** The record carries `["enforce", "members"]`. */
  enforced: boolean;
}

/** True when `pubkey` may write the document under `record` at `at` (seconds; the owner identity's keys are checked at that time). */
export function isDocMember(record: StoredMembership, pubkey: string, at = Math.floor(Date.now() / 1000)): boolean {
  return pubkey === record.owner || record.members.has(pubkey) || (record.ownerKeyAt?.(pubkey, at) ?? false);
}

/** Reads a stored membership event (already verified when it was stored). */
export function readMembership(raw: string): StoredMembership | undefined {
  let ev: NostrEvent;
  try {
    ev = JSON.parse(raw) as NostrEvent;
  } catch {
    return undefined;
  }
  if (ev.kind !== DocKind.Membership) return undefined;
  return { owner: ev.pubkey, members: new Set(getMembershipMembers(ev)), enforced: isEnforcedMembership(ev) };
}

/**
 * The stored membership record of each document, read from the event store on first use and cached
 * (bounded). The owner of the cache calls `forget` when a record is stored and `clear` when events
 * may have been deleted, so a cached answer never outlives the record it came from.
 */
export class MembershipBook {
  readonly #query: (filters: readonly Filter[]) => StoredEvent[];
  readonly #max: number;
  readonly #cache = new Map<string, StoredMembership | null>();
  readonly #logs = new Map<string, KeyLog | null>();

  /** `max` records are cached; 0 caches none (every `get` reads the store). */
  constructor(query: (filters: readonly Filter[]) => StoredEvent[], max = 10_000) {
    this.#query = query;
    this.#max = max;
  }

  /** The record of the document at `address`; undefined when none is stored (or the address is not a document's). */
  get(address: string): StoredMembership | undefined {
    const hit = this.#cache.get(address);
    if (hit !== undefined) return hit ?? undefined;
    const doc = parseDocAddress(address);
    if (!doc) return undefined;
    let record: StoredMembership | undefined;
    if (doc.identity) {
      const log = this.keyLog(doc.owner);
      const rows = log ? this.#query([{ kinds: [DocKind.IdentityMembership], '#a': [address] }]) : [];
      const best =
        log &&
        pickIdentityRecord(
          log,
          rows.map((r) => JSON.parse(r.raw) as NostrEvent),
          address,
        );
      if (log && best) {
        const ownerKeyAt = (pubkey: string, at: number) => isOwnerKeyAt(log, pubkey, at);
        record = { owner: doc.owner, ownerKeyAt, members: new Set(getMembershipMembers(best.event)), enforced: isEnforcedMembership(best.event) };
      }
    } else {
      const [row] = this.#query([{ kinds: [DocKind.Membership], authors: [doc.owner], '#d': [doc.name], limit: 1 }]);
      record = row ? readMembership(row.raw) : undefined;
    }
    if (this.#max === 0) return record;
    if (this.#cache.size >= this.#max) this.#cache.clear();
    this.#cache.set(address, record ?? null);
    return record;
  }

  /** The key event log of `aid` stored here (verified when stored; kept valid by the key event policy), cached with the records. */
  keyLog(aid: string): KeyLog | undefined {
    const hit = this.#logs.get(aid);
    if (hit !== undefined) return hit ?? undefined;
    const rows = this.#query([{ ids: [aid] }, { kinds: [IdentityKind.Rotation, IdentityKind.Revocation], '#e': [aid] }]);
    const log = verifyKeyLog(
      aid,
      rows.map((r) => JSON.parse(r.raw) as NostrEvent),
      { trustSignatures: true },
    );
    if (this.#max === 0) return typeof log === 'string' ? undefined : log;
    if (this.#logs.size >= this.#max) this.#logs.clear();
    this.#logs.set(aid, typeof log === 'string' ? null : log);
    return typeof log === 'string' ? undefined : log;
  }

  /** Drops the cached record of one document. */
  forget(address: string): void {
    this.#cache.delete(address);
  }

  /** Drops every cached record (and key event log). */
  clear(): void {
    this.#cache.clear();
    this.#logs.clear();
  }
}
