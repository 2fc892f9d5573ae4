import { DocKind, getMembershipMembers, isEnforcedMembership, parseDocAddress } from '../../shared/crdt-events.js';
import type { NostrEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import type { StoredEvent } from '../store/types.js';

/** A document's stored membership record, as the relay reads it. */
export interface StoredMembership {
  owner: string;
  /** Listed members (the owner is a member whether listed or not). */
  members: ReadonlySet<string>;
  /** The record carries `["enforce", "members"]`. */
  enforced: boolean;
}

/** True when `pubkey` may write the document under `record`. */
export function isDocMember(record: StoredMembership, pubkey: string): boolean {
  return pubkey === record.owner || record.members.has(pubkey);
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
    const [row] = this.#query([{ kinds: [DocKind.Membership], authors: [doc.owner], '#d': [doc.name], limit: 1 }]);
    const record = row ? readMembership(row.raw) : undefined;
    if (this.#max === 0) return record;
    if (this.#cache.size >= this.#max) this.#cache.clear();
    this.#cache.set(address, record ?? null);
    return record;
  }

  /** Drops the cached record of one document. */
  forget(address: string): void {
    this.#cache.delete(address);
  }

  /** Drops every cached record. */
  clear(): void {
    this.#cache.clear();
  }
}
