import type { NostrEvent } from '../../shared/event.js';
import { checkKeyEventStep, getKeyEvent, IDENTITY_KINDS, IdentityKind, type KeyEvent } from '../../shared/identity-log.js';
import { makeReason } from '../../shared/reason.js';
import type { OnEventSaved } from '../context.js';
import type { SyncEventReads } from '../store/types.js';
import type { RejectEvent } from './types.js';

/** What the key event policy reads from the store. */
export interface KeyEventLookup {
  /** A stored event by id. */
  get(id: string): NostrEvent | undefined;
  /** Ids of stored rotations and revocations that follow this id (non-empty when it already has a successor). */
  successors(prev: string): string[];
  /** Ids of stored key events authored by this key (the one that revealed it, if any). */
  revealedBy(pubkey: string): string[];
  /** Whether the id is stored (a resubmission passes, so it gets its `duplicate:` answer). */
  isStored(id: string): boolean;
}

/** How long a key event that passed the policy holds its place while it is verified and committed. */
const CLAIM_SECONDS = 60;

/** The key event policy: the refusal hook, and the release hook for events that end unstored or stored. */
export interface KeyEventPolicy {
  readonly reject: RejectEvent;
  /** Frees what a passing event claimed; run on onEventUnproven and onEventSaved. */
  readonly release: (event: NostrEvent) => void;
}

/**
 * Refuses key events (kinds 4346–4348, docs/identity.md) that would not extend a valid log: malformed;
 * a key that already revealed itself in a key event (keys are used once, in one log); a rotation or
 * revocation whose previous event is not here, already has a successor (a fork), or breaks the chain
 * rules of shared/identity-log.ts (not the committed next key, wrong seq, backdated, no valid
 * `prior-sig`). Two events racing through verification and commit are kept apart by a claim on
 * their `prev` and key, released when the first ends.
 */
export function createKeyEventPolicy(lookup: KeyEventLookup): KeyEventPolicy {
  // prev id / key -> the claiming event id and when it claimed (seconds); a claim left by a failed write expires
  const claims = new Map<string, { id: string; at: number }>();
  const claimed = (key: string, id: string, now: number) => {
    const c = claims.get(key);
    if (!c || c.id === id) return undefined;
    if (now - c.at > CLAIM_SECONDS) {
      claims.delete(key);
      return undefined;
    }
    return c.id;
  };

  const reject: RejectEvent = function rejectInvalidKeyEvents(ev, ctx) {
    if (!IDENTITY_KINDS.includes(ev.kind)) return undefined;
    if (lookup.isStored(ev.id)) return undefined;
    const why = check(ev, ctx.now);
    return why === undefined ? undefined : makeReason('invalid', why);
  };

  function check(ev: NostrEvent, now: number): string | undefined {
    const k = getKeyEvent(ev);
    if (!k) return `malformed key event (kind ${ev.kind})`;
    const used = lookup.revealedBy(k.pubkey)[0] ?? claimed(`key:${k.pubkey}`, k.id, now);
    if (used !== undefined) return `key ${k.pubkey} was already revealed by key event ${used}`;
    if (ev.kind !== IdentityKind.Inception) {
      const prev = k.prev as string;
      const prevEv = lookup.get(prev);
      const prevKey = prevEv && getKeyEvent(prevEv);
      if (!prevKey) return `key event ${prev} is not on this relay`;
      // the fork test comes before the signature check: only the holder of the committed key reaches the Schnorr verify
      const taken = lookup.successors(prev)[0] ?? claimed(`prev:${prev}`, k.id, now);
      if (taken !== undefined) return `key event ${prev} already has a successor (${taken})`;
      const why = checkKeyEventStep(prevKey as KeyEvent, k);
      if (why !== undefined) return why;
      claims.set(`prev:${prev}`, { id: k.id, at: now });
    }
    claims.set(`key:${k.pubkey}`, { id: k.id, at: now });
    return undefined;
  }

  function release(ev: NostrEvent): void {
    if (!IDENTITY_KINDS.includes(ev.kind)) return;
    const k = getKeyEvent(ev);
    if (!k) return;
    for (const key of [`key:${k.pubkey}`, `prev:${k.prev}`]) if (claims.get(key)?.id === ev.id) claims.delete(key);
  }

  return { reject, release };
}

/**
 * An `onEventSaved` hook: once a rotation or revocation is stored, `follow(previous key, new key,
 * created_at)` (push registrations follow the identity). The chain was checked before storing.
 */
export function onKeyEventSaved(lookup: Pick<KeyEventLookup, 'get'>, follow: (from: string, to: string, createdAt: number) => void): OnEventSaved {
  return function followKeyEvent(ev) {
    if (ev.kind !== IdentityKind.Rotation && ev.kind !== IdentityKind.Revocation) return;
    const k = getKeyEvent(ev);
    const prev = k?.prev === undefined ? undefined : lookup.get(k.prev);
    if (prev) follow(prev.pubkey, ev.pubkey, ev.created_at);
  };
}

/**
 * The earlier keys of `pubkey`'s identity, from the chain stored here (which this policy keeps valid and
 * fork-free), newest first; empty for a key that revealed no key event. Windows are the clients' to check.
 */
export function getPriorKeys(lookup: Pick<KeyEventLookup, 'get' | 'revealedBy'>, pubkey: string): string[] {
  const [revealing] = lookup.revealedBy(pubkey);
  const out: string[] = [];
  let ev = revealing === undefined ? undefined : lookup.get(revealing);
  for (let k = ev && getKeyEvent(ev); k?.prev !== undefined && out.length < 1000; k = ev && getKeyEvent(ev)) {
    ev = lookup.get(k.prev);
    if (ev) out.push(ev.pubkey);
  }
  return out;
}

/** A {@link KeyEventLookup} over a store's id, author and tag queries. */
export function makeKeyEventLookup(store: SyncEventReads): KeyEventLookup {
  const parse = (raw: string) => JSON.parse(raw) as NostrEvent;
  return {
    get(id) {
      const row = store.query([{ ids: [id], limit: 1 }])[0];
      return row ? parse(row.raw) : undefined;
    },
    successors(prev) {
      // `#e prev` finds the one event naming prev as its prev and, when prev is an inception, the newest of the
      // whole log (every event names the agent id as root). The stored log is one chain (this policy admits no
      // fork), so any event of it means the inception has a successor, however long the log has grown.
      const found = store
        .query([{ kinds: [IdentityKind.Rotation, IdentityKind.Revocation], '#e': [prev], limit: 50 }])
        .map((r) => getKeyEvent(parse(r.raw)))
        .filter((k) => k !== undefined);
      const direct = found.filter((k) => k.prev === prev);
      return (direct.length > 0 ? direct : found.filter((k) => k.aid === prev)).map((k) => k.id);
    },
    revealedBy(pubkey) {
      return store.query([{ kinds: [...IDENTITY_KINDS], authors: [pubkey], limit: 1 }]).map((r) => parse(r.raw).id);
    },
    isStored: (id) => store.isKnown(id) === 'stored',
  };
}

/**
 * What a key event holds while it is verified and stored, across instances (relay/policies/later-reads.ts):
 * the key it reveals and, for a rotation or revocation, its previous event (which may have one successor).
 */
export function getKeyEventClaims(ev: NostrEvent): string[] {
  if (!IDENTITY_KINDS.includes(ev.kind)) return [];
  const k = getKeyEvent(ev);
  if (!k) return [];
  return k.prev === undefined ? [`key:${k.pubkey}`] : [`key:${k.pubkey}`, `prev:${k.prev}`];
}
