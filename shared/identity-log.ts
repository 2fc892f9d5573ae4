import { schnorr } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { type EventTemplate, type NostrEvent, serializeEvent } from './event.js';

/** The key event log's kinds (docs/identity.md): regular, after Roost's tasks and decisions (4340–4345). */
export const IdentityKind = {
  Inception: 4346,
  Rotation: 4347,
  Revocation: 4348,
} as const;

/** Every key event kind, for filters. */
export const IDENTITY_KINDS: readonly number[] = [IdentityKind.Inception, IdentityKind.Rotation, IdentityKind.Revocation];

/** How long a rotated-out key still speaks for the agent when the inception names no `grace` (7 days). */
export const DEFAULT_GRACE_SECONDS = 604_800;

/** The longest grace period an inception may declare (30 days). */
export const MAX_GRACE_SECONDS = 2_592_000;

/** A key event, parsed: what the chain rules read. */
export interface KeyEvent {
  readonly id: string;
  readonly type: 'inception' | 'rotation' | 'revocation';
  /** The key this event reveals (its author). */
  readonly pubkey: string;
  readonly created_at: number;
  /** The agent id: the inception's event id. */
  readonly aid: string;
  /** The event this one follows (undefined for the inception). */
  readonly prev?: string;
  /** Position in the log: 0 for the inception. */
  readonly seq: number;
  /** Digest of the next key; undefined only on a revocation that closes the log. */
  readonly next?: string;
  /** Grace period in seconds (inception only). */
  readonly grace?: number;
  /** The current key's signature over the rotation statement (rotation only). */
  readonly priorSig?: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;
const SEQ = /^(0|[1-9]\d{0,8})$/;
const GRACE = /^(0|[1-9]\d{0,7})$/;

/** The commitment to a next key: sha256 of `roost-next-key:` + the 64-hex key, hex. */
export function getNextKeyDigest(pubkey: string): string {
  return bytesToHex(sha256(utf8ToBytes(`roost-next-key:${pubkey}`)));
}

/** What the current key co-signs in a rotation (32 bytes, hex): everything that names the successor. */
export function getRotationStatement(f: { aid: string; prev: string; seq: number; pubkey: string; next: string; created_at: number }): string {
  return bytesToHex(sha256(utf8ToBytes(JSON.stringify(['roost-rotation', f.aid, f.prev, f.seq, f.pubkey, f.next, f.created_at]))));
}

/** Whether an event's id is the hash of its content and its signature is its author's (BIP-340). */
export function isValidEventSignature(ev: NostrEvent): boolean {
  if (!HEX64.test(ev.id) || !HEX64.test(ev.pubkey) || !HEX128.test(ev.sig)) return false;
  if (bytesToHex(sha256(utf8ToBytes(serializeEvent(ev)))) !== ev.id) return false;
  return verifySchnorr(ev.sig, ev.id, ev.pubkey);
}

function verifySchnorr(sig: string, message: string, pubkey: string): boolean {
  try {
    return schnorr.verify(hexToBytes(sig), hexToBytes(message), hexToBytes(pubkey));
  } catch {
    return false;
  }
}

function markedE(ev: Pick<NostrEvent, 'tags'>, marker: string): string | undefined {
  for (const t of ev.tags) if (t[0] === 'e' && t[3] === marker && t[1] !== undefined) return t[1];
  return undefined;
}

function tag(ev: Pick<NostrEvent, 'tags'>, name: string): string | undefined {
  for (const t of ev.tags) if (t[0] === name && t.length > 1) return t[1];
  return undefined;
}

/** Parses a key event's shape (no signature checks, no chain rules); undefined when it is not a well-formed one. */
export function getKeyEvent(ev: NostrEvent): KeyEvent | undefined {
  if (!HEX64.test(ev.id) || !HEX64.test(ev.pubkey)) return undefined;
  const next = tag(ev, 'next');
  if (next !== undefined && !HEX64.test(next)) return undefined;
  const base = { id: ev.id, pubkey: ev.pubkey, created_at: ev.created_at };
  if (ev.kind === IdentityKind.Inception) {
    if (next === undefined) return undefined;
    const g = tag(ev, 'grace');
    if (g !== undefined && (!GRACE.test(g) || Number(g) > MAX_GRACE_SECONDS)) return undefined;
    return { ...base, type: 'inception', aid: ev.id, seq: 0, next, grace: g === undefined ? DEFAULT_GRACE_SECONDS : Number(g) };
  }
  if (ev.kind !== IdentityKind.Rotation && ev.kind !== IdentityKind.Revocation) return undefined;
  const aid = markedE(ev, 'root');
  const prev = markedE(ev, 'prev');
  const seq = tag(ev, 'seq');
  if (aid === undefined || !HEX64.test(aid) || prev === undefined || !HEX64.test(prev)) return undefined;
  if (seq === undefined || !SEQ.test(seq) || seq === '0') return undefined;
  if (ev.kind === IdentityKind.Revocation) {
    return next === undefined
      ? { ...base, type: 'revocation', aid, prev, seq: Number(seq) }
      : { ...base, type: 'revocation', aid, prev, seq: Number(seq), next };
  }
  const priorSig = tag(ev, 'prior-sig');
  if (next === undefined || priorSig === undefined || !HEX128.test(priorSig)) return undefined;
  return { ...base, type: 'rotation', aid, prev, seq: Number(seq), next, priorSig };
}

/** The inception template, to be signed by the first key; `nextKey` is the public key kept apart for the first rotation. */
export function makeInception(o: { nextKey: string; grace?: number }, created_at: number): EventTemplate {
  const tags = [['next', getNextKeyDigest(o.nextKey)]];
  if (o.grace !== undefined) tags.push(['grace', String(o.grace)]);
  return { kind: IdentityKind.Inception, tags, content: '', created_at };
}

/**
 * A rotation template, to be signed by `newKey` (the key `head` committed to); the current key
 * (`head`'s author, whose secret is `currentSecretKey`) co-signs the statement here.
 */
export function makeRotation(o: { head: KeyEvent; currentSecretKey: Uint8Array; newKey: string; nextKey: string }, created_at: number): EventTemplate {
  const seq = o.head.seq + 1;
  const next = getNextKeyDigest(o.nextKey);
  const statement = getRotationStatement({ aid: o.head.aid, prev: o.head.id, seq, pubkey: o.newKey, next, created_at });
  const priorSig = bytesToHex(schnorr.sign(hexToBytes(statement), o.currentSecretKey));
  return {
    kind: IdentityKind.Rotation,
    tags: [
      ['e', o.head.aid, '', 'root'],
      ['e', o.head.id, '', 'prev'],
      ['seq', String(seq)],
      ['next', next],
      ['prior-sig', priorSig],
    ],
    content: '',
    created_at,
  };
}

/** A revocation template, to be signed by the next key alone; without `nextKey` it closes the log. */
export function makeRevocation(o: { head: KeyEvent; nextKey?: string; reason?: string }, created_at: number): EventTemplate {
  const tags = [
    ['e', o.head.aid, '', 'root'],
    ['e', o.head.id, '', 'prev'],
    ['seq', String(o.head.seq + 1)],
  ];
  if (o.nextKey !== undefined) tags.push(['next', getNextKeyDigest(o.nextKey)]);
  return { kind: IdentityKind.Revocation, tags, content: o.reason ?? '', created_at };
}

/**
 * The chain rules between a log's latest event and a candidate successor (docs/identity.md):
 * same agent, `prev` and `seq` in order, author committed to by `prev`'s `next`, not dated before it,
 * and, on a rotation, `prior-sig` by the current key over the statement. Returns why not, or undefined.
 */
export function checkKeyEventStep(prev: KeyEvent, ev: KeyEvent): string | undefined {
  if (ev.type === 'inception') return 'an inception cannot follow another key event';
  if (ev.aid !== prev.aid) return `key event belongs to identity ${ev.aid}, not ${prev.aid}`;
  if (ev.prev !== prev.id) return `key event follows ${ev.prev}, not ${prev.id}`;
  if (ev.seq !== prev.seq + 1) return `key event seq must be ${prev.seq + 1}`;
  if (prev.next === undefined) return `identity ${prev.aid} is closed`;
  if (ev.pubkey === prev.pubkey || getNextKeyDigest(ev.pubkey) !== prev.next) {
    return `key ${ev.pubkey} is not the next key committed to by ${prev.id}`;
  }
  if (ev.created_at < prev.created_at) return 'key event is dated before the event it follows';
  if (ev.type === 'rotation') {
    const statement = getRotationStatement({ aid: ev.aid, prev: prev.id, seq: ev.seq, pubkey: ev.pubkey, next: ev.next ?? '', created_at: ev.created_at });
    if (ev.priorSig === undefined || !verifySchnorr(ev.priorSig, statement, prev.pubkey)) {
      return `prior-sig is not a signature by the current key ${prev.pubkey}`;
    }
  }
  return undefined;
}

/** When one key spoke for the agent. `until` is exclusive; absent while the key is current. */
export interface KeyWindow {
  readonly pubkey: string;
  readonly from: number;
  readonly until?: number;
  /** How the window ended: rotated (with grace), revoked (at once), closed (the log ended), forked (disputed). */
  readonly end?: 'rotated' | 'revoked' | 'closed' | 'forked';
}

/**
 * The earlier keys of a key's identity (its key event log), when that key speaks for it at `at` (seconds):
 * what lets a listed member, voter or task party act with its successor key.
 */
export type PriorKeys = (pubkey: string, at: number) => readonly string[];

/** {@link PriorKeys} over verified logs: the keys before `pubkey` in its log, when `pubkey` speaks at `at`. */
export function makePriorKeys(logs: Iterable<KeyLog>): PriorKeys {
  const byKey = new Map<string, KeyLog>();
  for (const log of logs) for (const k of log.keys) byKey.set(k.pubkey, log);
  return (pubkey, at) => {
    const log = byKey.get(pubkey);
    if (!log || !isKeyValidAt(log, pubkey, at)) return [];
    const i = log.keys.findIndex((k) => k.pubkey === pubkey);
    return log.keys.slice(0, Math.max(0, i)).map((k) => k.pubkey);
  };
}

/** A verified key event log. */
export interface KeyLog {
  readonly aid: string;
  /** active: has a current key; closed: ended by a revocation without `next`; forked: two valid successors of one event. */
  readonly status: 'active' | 'closed' | 'forked';
  /** The valid chain from the inception, up to the head (or the fork point). */
  readonly chain: readonly KeyEvent[];
  readonly head: KeyEvent;
  /** The current key (active logs only). */
  readonly current?: string;
  readonly grace: number;
  /** One window per key of the chain, in order. */
  readonly keys: readonly KeyWindow[];
  /** Where the log forked, and the competing events' ids (sorted). */
  readonly fork?: { readonly at: string; readonly branches: readonly string[] };
  /** Events given for this identity that are not part of the chain, with why. */
  readonly ignored: ReadonlyArray<{ readonly id: string; readonly reason: string }>;
}

/**
 * Verifies an agent's key event log from any set of events (unordered, duplicated, mixed with junk):
 * follows the chain from the inception `aid`, ignoring invalid events with their reason, and stops at
 * a fork. Checks ids and signatures unless `trustSignatures` (events a verifier already checked).
 * Returns the log, or why there is none (no valid inception).
 */
export function verifyKeyLog(aid: string, events: readonly NostrEvent[], opts: { trustSignatures?: boolean } = {}): KeyLog | string {
  const ignored: Array<{ id: string; reason: string }> = [];
  const seen = new Set<string>();
  const children = new Map<string, KeyEvent[]>();
  let inception: KeyEvent | undefined;
  for (const ev of events) {
    if (seen.has(ev.id)) continue;
    seen.add(ev.id);
    const k = getKeyEvent(ev);
    if (!k) {
      ignored.push({ id: ev.id, reason: 'malformed key event' });
      continue;
    }
    if (k.aid !== aid) {
      ignored.push({ id: ev.id, reason: `key event belongs to identity ${k.aid}` });
      continue;
    }
    if (!opts.trustSignatures && !isValidEventSignature(ev)) {
      ignored.push({ id: ev.id, reason: 'bad id or signature' });
      continue;
    }
    if (k.type === 'inception') inception = k;
    else {
      const list = children.get(k.prev as string) ?? [];
      list.push(k);
      children.set(k.prev as string, list);
    }
  }
  if (!inception) return `inception ${aid} not found`;

  const chain: KeyEvent[] = [inception];
  const keysUsed = new Set([inception.pubkey]);
  let fork: KeyLog['fork'];
  for (;;) {
    const head = chain[chain.length - 1] as KeyEvent;
    const valid: KeyEvent[] = [];
    for (const c of children.get(head.id) ?? []) {
      const why = keysUsed.has(c.pubkey) ? `key ${c.pubkey} was already used by this identity` : checkKeyEventStep(head, c);
      if (why === undefined) valid.push(c);
      else ignored.push({ id: c.id, reason: why });
    }
    if (valid.length === 0) break;
    if (valid.length > 1) {
      fork = { at: head.id, branches: valid.map((v) => v.id).sort() };
      break;
    }
    const nextEv = valid[0] as KeyEvent;
    chain.push(nextEv);
    keysUsed.add(nextEv.pubkey);
  }
  const inChain = new Set(chain.map((c) => c.id));
  for (const list of children.values()) {
    for (const c of list) {
      if (!inChain.has(c.id) && !fork?.branches.includes(c.id) && !ignored.some((i) => i.id === c.id)) {
        ignored.push({ id: c.id, reason: `key event follows ${c.prev}, which is not in the chain` });
      }
    }
  }

  const grace = inception.grace ?? DEFAULT_GRACE_SECONDS;
  const head = chain[chain.length - 1] as KeyEvent;
  const status: KeyLog['status'] = fork ? 'forked' : head.next === undefined ? 'closed' : 'active';
  const keys: KeyWindow[] = chain.map((k, i) => {
    const after = chain[i + 1];
    if (after) {
      return after.type === 'rotation'
        ? { pubkey: k.pubkey, from: k.created_at, until: after.created_at + grace, end: 'rotated' }
        : { pubkey: k.pubkey, from: k.created_at, until: after.created_at, end: 'revoked' };
    }
    if (status === 'closed') return { pubkey: k.pubkey, from: k.created_at, until: k.created_at, end: 'closed' };
    if (status === 'forked') {
      const first = Math.min(...(children.get(k.id) ?? []).filter((c) => fork?.branches.includes(c.id)).map((c) => c.created_at));
      return { pubkey: k.pubkey, from: k.created_at, until: first, end: 'forked' };
    }
    return { pubkey: k.pubkey, from: k.created_at };
  });
  const log = { aid, status, chain, head, grace, keys, ignored };
  if (fork) return { ...log, fork };
  return status === 'active' ? { ...log, current: head.pubkey } : log;
}

/** The window of `pubkey` in the log, if the key belongs to it. */
export function getKeyWindow(log: KeyLog, pubkey: string): KeyWindow | undefined {
  return log.keys.find((k) => k.pubkey === pubkey);
}

/** Whether `pubkey` speaks for the agent at time `at` (a message's `created_at`): inside its window. */
export function isKeyValidAt(log: KeyLog, pubkey: string, at: number): boolean {
  const w = getKeyWindow(log, pubkey);
  return w !== undefined && at >= w.from && (w.until === undefined || at < w.until);
}
