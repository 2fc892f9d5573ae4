/**
 * The parts of the shared-document wire format (issue 5) that both sides read: kinds, document
 * addresses, the `clock` tag of a delta, the `sv` tag and `part` tag of a snapshot, and the coarse
 * coverage rule. Pure and Yjs-free: the relay's membership policy and compaction use it, and
 * client/crdt/wire.ts re-exports it next to the encoders.
 */
import { getDTag, getTagValue, type NostrEvent } from './event.js';

/** Event kinds of shared documents (regular / ephemeral / addressable per NIP-01). */
export const DocKind = {
  Update: 4337,
  Awareness: 24337,
  Membership: 34337,
  Snapshot: 34338,
  /** The membership record of a document addressed by its owner's agent id (docs/identity.md), signed by a key of that identity. */
  IdentityMembership: 34339,
} as const;

/** Kinds whose `a` tag names the document they write to (the membership record itself is signed by the owner). */
export const DOC_WRITE_KINDS: readonly number[] = [DocKind.Update, DocKind.Awareness, DocKind.Snapshot];

/** Tag on a membership record asking relays to refuse the document's events from non-members: `["enforce", "members"]`. */
export const ENFORCE_TAG = 'enforce';

/** Clock range `[from, to)` of the structs one replica (Yjs client id) created in a delta. */
export interface ClockRange {
  client: number;
  from: number;
  to: number;
}

type Tagged = Pick<NostrEvent, 'tags'>;

const UINT = /^(0|[1-9]\d{0,15})$/;

/** A non-negative safe integer written in decimal without leading zeros; undefined otherwise. */
export function parseUint(text: string | undefined): number | undefined {
  if (text === undefined || !UINT.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The address of document `name` owned by `owner`: `34337:<owner>:<name>` (NIP-01 `a` tag form). */
export function makeDocAddress(owner: string, name: string): string {
  return `${DocKind.Membership}:${owner}:${name}`;
}

/**
 * The address of document `name` owned by the identity `aid` (the agent id of a key event log):
 * `34339:<aid>:<name>`. It outlives the owner's rotations: any key speaking for `aid` signs its record.
 */
export function makeIdentityDocAddress(aid: string, name: string): string {
  return `${DocKind.IdentityMembership}:${aid}:${name}`;
}

/**
 * Owner and name of a document address; undefined when it is not one. For an identity-addressed
 * document (`34339:…`) `owner` is the agent id and `identity` is true.
 */
export function parseDocAddress(address: string): { owner: string; name: string; identity: boolean; kind: number } | undefined {
  const m = /^(3433[79]):([0-9a-f]{64}):(.*)$/s.exec(address);
  if (!m) return undefined;
  const kind = Number(m[1]);
  return { owner: m[2]!, name: m[3]!, identity: kind === DocKind.IdentityMembership, kind };
}

/** The document an identity membership record (kind 34339) is for: its `a` tag, when it names one of that kind with the record's `d`. */
export function getIdentityRecordAddress(ev: Pick<NostrEvent, 'kind' | 'tags'>): { address: string; aid: string; name: string } | undefined {
  if (ev.kind !== DocKind.IdentityMembership) return undefined;
  const address = getTagValue(ev, 'a');
  const doc = address === undefined ? undefined : parseDocAddress(address);
  if (!doc?.identity || getDTag(ev) !== doc.name) return undefined;
  return { address: address as string, aid: doc.owner, name: doc.name };
}

/** `client:clock,...` sorted by client: the text form of a state vector carried in a tag. */
export function formatStateVector(sv: ReadonlyMap<number, number>): string {
  return [...sv.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([c, k]) => `${c}:${k}`)
    .join(',');
}

/** Parses {@link formatStateVector} output; undefined when malformed. */
export function parseStateVector(text: string): Map<number, number> | undefined {
  const sv = new Map<number, number>();
  if (text === '') return sv;
  for (const pair of text.split(',')) {
    const [c, k, extra] = pair.split(':');
    const client = parseUint(c);
    const clock = parseUint(k);
    if (client === undefined || clock === undefined || extra !== undefined) return undefined;
    sv.set(client, clock);
  }
  return sv;
}

/** True when a snapshot with state vector `sv` holds every struct of a delta with clock `range`. */
export function isRangeCovered(range: ClockRange, sv: ReadonlyMap<number, number>): boolean {
  return (sv.get(range.client) ?? 0) >= range.to;
}

/**
 * The `clock` tag of a delta: undefined when absent, null when present but malformed (the event is
 * then not a well-formed delta).
 */
export function getClockRange(ev: Tagged): ClockRange | undefined | null {
  const t = ev.tags.find((t) => t[0] === 'clock');
  if (!t) return undefined;
  const [client, from, to] = [parseUint(t[1]), parseUint(t[2]), parseUint(t[3])];
  if (client === undefined || from === undefined || to === undefined || to <= from) return null;
  return { client, from, to };
}

/** The `part` tag of a snapshot part: index, count and generation id; undefined when malformed. */
export function getSnapshotPart(ev: Tagged): { index: number; count: number; id: string } | undefined {
  const t = ev.tags.find((t) => t[0] === 'part');
  const index = parseUint(t?.[1]);
  const count = parseUint(t?.[2]);
  const id = t?.[3];
  if (index === undefined || count === undefined || id === undefined || index >= count) return undefined;
  return { index, count, id };
}

/** Every document address an event's `a` tags name (other `a` values are left out). */
export function getDocAddresses(ev: Tagged): string[] {
  const out: string[] = [];
  for (const t of ev.tags) if (t[0] === 'a' && t[1] !== undefined && parseDocAddress(t[1])) out.push(t[1]);
  return out;
}

const HEX64_MEMBER = /^[0-9a-f]{64}$/;

/**
 * The members a membership record lists: the values of its `p` tags that are public keys (64
 * lowercase hex), each once, in order. A malformed `p` tag is ignored, on the relay and in the client
 * alike, so both always agree on who may write (the owner is a member whether listed or not).
 */
export function getMembershipMembers(ev: Tagged): string[] {
  const out = new Set<string>();
  for (const t of ev.tags) if (t[0] === 'p' && t[1] !== undefined && HEX64_MEMBER.test(t[1])) out.add(t[1]);
  return [...out];
}

/** True when a membership record asks relays to refuse non-members' events. */
export function isEnforcedMembership(ev: Tagged): boolean {
  return getTagValue(ev, ENFORCE_TAG) === 'members';
}
