/**
 * Who owns a document addressed by an agent id (`34339:<aid>:<name>`, docs/identity.md): the keys of
 * that identity's key event log, each while it speaks for it. Pure; the relay's membership policy and
 * the client's documents apply the same rules. Kept apart from crdt-events.ts so that only code that
 * opens such documents pulls the log verifier's types and rules.
 */
import type { NostrEvent } from './event.js';
import { getIdentityRecordAddress } from './crdt-events.js';
import { getKeyWindow, isKeyValidAt, type KeyLog } from './identity-log.js';

/** Version space per key: a record by a later key of the log always outranks one by an earlier key. */
const PER_KEY = 2 ** 32;

/**
 * Whether `pubkey` speaks for the owner identity at `at` (seconds, normally now): the current key, or a
 * rotated-out key until its grace period ends; a revoked key or one revealed after a fork, never.
 */
export function isOwnerKeyAt(log: KeyLog, pubkey: string, at: number): boolean {
  const w = getKeyWindow(log, pubkey);
  if (!w || w.end === 'revoked' || w.end === 'closed') return false;
  return isKeyValidAt(log, pubkey, at);
}

/**
 * The rank of an identity membership record (kind 34339) of document `address`: `index of its key in the
 * log × 2^32 + created_at`, so the newest record of the latest key is in force and a record backdated by
 * an earlier key never overrides one by its successor; undefined when it is not a record of that
 * document, or its key does not speak for the identity at its created_at (not in the chain, revoked —
 * whatever its date, as for direct messages — or dated after its grace period).
 */
export function getIdentityRecordRank(log: KeyLog, ev: Pick<NostrEvent, 'kind' | 'tags' | 'pubkey' | 'created_at'>, address: string): number | undefined {
  const doc = getIdentityRecordAddress(ev);
  if (!doc || doc.address !== address || doc.aid !== log.aid) return undefined;
  const index = log.keys.findIndex((k) => k.pubkey === ev.pubkey);
  const w = log.keys[index];
  if (!w || w.end === 'revoked' || w.end === 'closed' || !isKeyValidAt(log, ev.pubkey, ev.created_at)) return undefined;
  return index * PER_KEY + ev.created_at;
}

/** The record in force among `events` (highest {@link getIdentityRecordRank}; ties: the lower id, as NIP-01 replaceables). */
export function pickIdentityRecord<E extends Pick<NostrEvent, 'id' | 'kind' | 'tags' | 'pubkey' | 'created_at'>>(
  log: KeyLog,
  events: readonly E[],
  address: string,
): { event: E; rank: number } | undefined {
  let best: { event: E; rank: number } | undefined;
  for (const ev of events) {
    const rank = getIdentityRecordRank(log, ev, address);
    if (rank === undefined) continue;
    if (!best || rank > best.rank || (rank === best.rank && ev.id < best.event.id)) best = { event: ev, rank };
  }
  return best;
}

/** The created_at part of a record rank (what the next record by the same key must exceed). */
export function getRankTime(rank: number): number {
  return rank % PER_KEY;
}

/** The lowest rank a record by the key at `index` of the log can have. */
export function getRankFloor(index: number): number {
  return index * PER_KEY;
}
