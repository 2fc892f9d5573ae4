/**
 * How a shared document travels in Nostr events. Pure: builds unsigned templates and reads verified events;
 * no Yjs, no signing, no sockets, so the relay could import it (e.g. for a compaction policy).
 *
 * - update (regular, kind 4337): one delta. content = base64 of the Yjs v1 update; tags
 *   `["a", <doc address>]`, `["clock", <client>, <from>, <to>]` (the structs the delta created).
 * - snapshot (addressable, kind 34338): the full state, split into parts when long. content = base64 part;
 *   tags `["d", "<address>#<i>"]`, `["a", <address>]`, `["part", <i>, <n>, <snapshot id>]`, and on every part
 *   `["sv", "<client>:<clock>,..."]`, the state vector the snapshot covers.
 * - membership (addressable, kind 34337, signed by the owner): `["d", <name>]`, one `["p", <member>]` each.
 *   The document address is the NIP-01 address of this record: `34337:<owner pubkey>:<name>`.
 * - awareness (ephemeral, kind 24337): `["a", <address>]`, content JSON `{"clock":n,"state":{...}|null}`.
 */
import {
  DocKind,
  ENFORCE_TAG,
  formatStateVector,
  getClockRange,
  getSnapshotPart,
  getMembershipMembers,
  isEnforcedMembership,
  makeDocAddress,
  parseDocAddress,
  parseStateVector,
  parseUint,
  type ClockRange,
} from '../../shared/crdt-events.js';
import { getDTag, getTagValue, type EventTemplate, type NostrEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import { decodeBase64, encodeBase64 } from './base64.js';
import { isJson, type Json } from './json.js';
import { makeMembership, type MembershipRecord } from './membership.js';

export {
  DOC_WRITE_KINDS,
  DocKind,
  ENFORCE_TAG,
  formatStateVector,
  getClockRange,
  getDocAddresses,
  getSnapshotPart,
  getMembershipMembers,
  isEnforcedMembership,
  isRangeCovered,
  makeDocAddress,
  parseDocAddress,
  parseStateVector,
} from '../../shared/crdt-events.js';

/** Longest base64 content of one snapshot part; below the relay's default maxContentLength (65536). */
export const DEFAULT_SNAPSHOT_PART_CHARS = 60_000;

type Incoming = Pick<NostrEvent, 'kind' | 'tags' | 'content' | 'pubkey' | 'created_at'>;

const HEX64 = /^[0-9a-f]{64}$/;

/** Template of a delta event for the document at `address`. */
export function makeUpdateEvent(address: string, update: Uint8Array, clock: ClockRange | undefined, createdAt: number): EventTemplate {
  const tags = [['a', address]];
  if (clock) tags.push(['clock', String(clock.client), String(clock.from), String(clock.to)]);
  return { kind: DocKind.Update, created_at: createdAt, tags, content: encodeBase64(update) };
}

/** A delta read from a (verified) event. */
export interface UpdateEnvelope {
  address: string;
  author: string;
  update: Uint8Array;
  clock?: ClockRange;
}

/** Reads a delta event; undefined when it is not a well-formed one. */
export function parseUpdateEvent(ev: Incoming): UpdateEnvelope | undefined {
  if (ev.kind !== DocKind.Update) return undefined;
  const address = getTagValue(ev, 'a');
  if (address === undefined || !parseDocAddress(address)) return undefined;
  const update = decodeBase64(ev.content);
  if (!update || update.length === 0) return undefined;
  const env: UpdateEnvelope = { address, author: ev.pubkey, update };
  const clock = getClockRange(ev);
  if (clock === null) return undefined;
  if (clock) env.clock = clock;
  return env;
}

function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/**
 * Tag of a snapshot part saying up to which sequence number of a relay the snapshot's author had read the
 * document: `["seq", <relay url>, <n>]`, one per relay. A newcomer that trusts the snapshot resumes that
 * relay from `n` instead of reading every delta the snapshot already holds.
 */
export const SEQ_TAG = 'seq';

/**
 * Templates of the parts of a snapshot (one part unless the base64 is longer than `partChars`); `cursors`
 * (relay URL → sequence number read up to) become {@link SEQ_TAG} tags on every part.
 */
export function makeSnapshotEvents(
  address: string,
  snapshot: { update: Uint8Array; stateVector: ReadonlyMap<number, number> },
  createdAt: number,
  partChars = DEFAULT_SNAPSHOT_PART_CHARS,
  cursors: ReadonlyMap<string, number> = new Map(),
): EventTemplate[] {
  const size = Math.max(4, partChars - (partChars % 4));
  const b64 = encodeBase64(snapshot.update);
  const n = Math.max(1, Math.ceil(b64.length / size));
  const id = `${createdAt}-${b64.length}-${fnv1a(b64)}`;
  const sv = formatStateVector(snapshot.stateVector);
  const out: EventTemplate[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      kind: DocKind.Snapshot,
      created_at: createdAt,
      tags: [
        ['d', `${address}#${i}`],
        ['a', address],
        ['part', String(i), String(n), id],
        ['sv', sv],
        ...[...cursors].map(([relay, seq]) => [SEQ_TAG, relay, String(seq)]),
      ],
      content: b64.slice(i * size, (i + 1) * size),
    });
  }
  return out;
}

/** A snapshot put back together from its parts. */
export interface SnapshotEnvelope {
  address: string;
  author: string;
  createdAt: number;
  update: Uint8Array;
  stateVector: Map<number, number>;
  /** Relay URL → sequence number its author had read the document up to ({@link SEQ_TAG}); may be empty. */
  cursors: Map<string, number>;
}

function getSeqCursors(ev: Pick<NostrEvent, 'tags'>): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of ev.tags) {
    const seq = parseUint(t[2]);
    if (t[0] === SEQ_TAG && t[1] !== undefined && seq !== undefined) out.set(t[1], seq);
  }
  return out;
}

/**
 * The newest complete snapshot of `address` among `events` (parts of several authors and generations may
 * be mixed; incomplete or inconsistent groups are skipped). Undefined when there is none.
 */
export function assembleSnapshot(address: string, events: Iterable<Incoming>): SnapshotEnvelope | undefined {
  const groups = new Map<string, { ev: Incoming; parts: Map<number, string>; n: number; sv: string }>();
  for (const ev of events) {
    if (ev.kind !== DocKind.Snapshot || getTagValue(ev, 'a') !== address) continue;
    const part = getSnapshotPart(ev);
    const sv = getTagValue(ev, 'sv');
    if (!part || sv === undefined) continue;
    const { index: i, count: n, id } = part;
    if (getDTag(ev) !== `${address}#${i}`) continue;
    const key = `${ev.pubkey}\u0000${id}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ev, parts: new Map(), n, sv }));
    if (g.n !== n || g.sv !== sv) continue;
    g.parts.set(i, ev.content);
  }
  const complete = [...groups.values()].filter((g) => g.parts.size === g.n).sort((a, b) => b.ev.created_at - a.ev.created_at);
  for (const g of complete) {
    const update = decodeBase64(Array.from({ length: g.n }, (_, i) => g.parts.get(i)!).join(''));
    const stateVector = parseStateVector(g.sv);
    if (update && stateVector) return { address, author: g.ev.pubkey, createdAt: g.ev.created_at, update, stateVector, cursors: getSeqCursors(g.ev) };
  }
  return undefined;
}

/**
 * Template of the owner's membership record of document `name` (its address is makeDocAddress(owner, name)).
 * `enforce` adds `["enforce", "members"]`: Roost relays then refuse the document's events from non-members.
 */
export function makeMembershipEvent(name: string, members: Iterable<string>, createdAt: number, opts: { enforce?: boolean } = {}): EventTemplate {
  const tags = [['d', name]];
  for (const m of new Set(members)) tags.push(['p', m]);
  if (opts.enforce) tags.push([ENFORCE_TAG, 'members']);
  return { kind: DocKind.Membership, created_at: createdAt, tags, content: '' };
}

/**
 * Reads a membership event into a record whose version is its created_at, and whether it asks relays to
 * enforce it; undefined when it is not a membership event of a valid owner.
 */
export function parseMembershipEvent(ev: Incoming): { address: string; record: MembershipRecord; enforced: boolean } | undefined {
  if (ev.kind !== DocKind.Membership || !HEX64.test(ev.pubkey)) return undefined;
  // The relay's rule (shared/crdt-events.ts): a malformed `p` tag is ignored, not the whole record.
  const members = getMembershipMembers(ev);
  return {
    address: makeDocAddress(ev.pubkey, getDTag(ev)),
    record: makeMembership(ev.pubkey, members, ev.created_at),
    enforced: isEnforcedMembership(ev),
  };
}

/** One replica's presence as carried on the wire (see awareness.ts). */
export interface AwarenessMessage {
  clock: number;
  state: { [key: string]: Json } | null;
}

/**
 * Checks a parsed awareness message by hand (no zod here: the client bundle stays free of it). Extra
 * fields are dropped, as a schema parse would.
 */
function toAwarenessMessage(raw: unknown): AwarenessMessage | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const { clock, state } = raw as { clock?: unknown; state?: unknown };
  if (typeof clock !== 'number' || !Number.isSafeInteger(clock) || clock < 0) return undefined;
  if (state === null) return { clock, state: null };
  if (typeof state !== 'object' || state === undefined || Array.isArray(state) || !isJson(state)) return undefined;
  return { clock, state: state as { [key: string]: Json } };
}

/** Template of an ephemeral awareness event for `address`. */
export function makeAwarenessEvent(address: string, message: AwarenessMessage, createdAt: number): EventTemplate {
  return { kind: DocKind.Awareness, created_at: createdAt, tags: [['a', address]], content: JSON.stringify(message) };
}

/** Reads an awareness event; undefined when malformed. */
export function parseAwarenessEvent(ev: Incoming): { address: string; author: string; message: AwarenessMessage } | undefined {
  if (ev.kind !== DocKind.Awareness) return undefined;
  const address = getTagValue(ev, 'a');
  if (address === undefined || !parseDocAddress(address)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(ev.content);
  } catch {
    return undefined;
  }
  const message = toAwarenessMessage(raw);
  return message ? { address, author: ev.pubkey, message } : undefined;
}

/**
 * Filters a replica subscribes with for `address`: the owner's membership record, every snapshot part, and
 * deltas (from `since`, e.g. the loaded snapshot's created_at minus clock skew) plus live awareness.
 */
export function makeDocFilters(address: string, opts: { since?: number } = {}): Filter[] {
  const doc = parseDocAddress(address);
  if (!doc) return [];
  const deltas: Filter = { kinds: [DocKind.Update, DocKind.Awareness], '#a': [address] };
  if (opts.since !== undefined) deltas.since = opts.since;
  // A document addressed by agent id (34339) has its records by any key of the identity: named by their `a` tag.
  const record: Filter = doc.identity ? { kinds: [doc.kind], '#a': [address] } : { kinds: [doc.kind], authors: [doc.owner], '#d': [doc.name] };
  return [record, { kinds: [DocKind.Snapshot], '#a': [address] }, deltas];
}
