import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NostrEvent } from '../../shared/event.js';
import { getNextKeyDigest, type KeyEvent, type KeyLog, makeInception, makeRevocation, makeRotation, verifyKeyLog } from '../../shared/identity-log.js';
import { ClientError } from '../errors.js';
import { Identity } from '../identity.js';
import { loadKeyFile, loadOrCreateKeyFile, saveKeyFile } from './key-file.js';

/**
 * An agent's keys on disk (docs/identity.md): the current key (`agent.key`), the pre-committed next key
 * in its own file (`agent.next.key`, to be moved offline or printed), the agent's own key event log
 * (`agent.kel.jsonl`, one event per line, append-only) and rotated-out keys (`retired/<pubkey>.key`,
 * kept to read mail sent to them during the grace period). A rotation first writes the key after next
 * (`agent.after.key`), then appends the signed event, then renames; opening the ring finishes a
 * rotation interrupted between the append and the renames.
 */
export interface KeyRing {
  readonly current: Identity;
  readonly next: Identity;
  /** The agent id (the inception's event id). */
  readonly aid: string;
  /** The verified log. */
  readonly log: KeyLog;
  /** The log's events, in order (what to publish). */
  readonly events: readonly NostrEvent[];
}

const FILES = { current: 'agent.key', next: 'agent.next.key', after: 'agent.after.key', log: 'agent.kel.jsonl', retired: 'retired' };

function fail(message: string): never {
  throw new ClientError('ROOST_ERR_KEY_FILE', message);
}

function readLog(path: string): NostrEvent[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as NostrEvent;
      } catch {
        return fail(`key event log ${path} line ${i + 1} is not JSON`);
      }
    });
}

function appendEvent(path: string, ev: NostrEvent): void {
  appendFileSync(path, `${JSON.stringify(ev)}\n`, { mode: 0o600 });
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function keyIn(home: string, name: string): Identity | undefined {
  return existsSync(join(home, name)) ? loadKeyFile(join(home, name)) : undefined;
}

/** Moves the current key to retired/ and promotes next (and after) once the log's head names the next key. */
function promote(home: string, current: Identity): void {
  mkdirSync(join(home, FILES.retired), { recursive: true, mode: 0o700 });
  const retired = join(home, FILES.retired, `${current.pubkey}.key`);
  if (!existsSync(retired)) saveKeyFile(retired, current);
  renameSync(join(home, FILES.next), join(home, FILES.current));
  if (existsSync(join(home, FILES.after))) renameSync(join(home, FILES.after), join(home, FILES.next));
}

/**
 * Opens (or creates) the key ring in `home`: creates the next key and the inception when missing, and
 * finishes an interrupted rotation. Throws ROOST_ERR_KEY_FILE when the files and the log disagree.
 */
export function openKeyRing(home: string, opts: { now?: () => number; grace?: number } = {}): KeyRing {
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  mkdirSync(home, { recursive: true, mode: 0o700 });
  let current = loadOrCreateKeyFile(join(home, FILES.current)).identity;
  let next = keyIn(home, FILES.next);
  const logPath = join(home, FILES.log);
  let events = readLog(logPath);
  if (events.length === 0) {
    if (!next) {
      next = Identity.generate();
      saveKeyFile(join(home, FILES.next), next);
    }
    const grace = opts.grace === undefined ? {} : { grace: opts.grace };
    const inception = current.sign(makeInception({ nextKey: next.pubkey, ...grace }, now()));
    appendEvent(logPath, inception);
    events = [inception];
  }
  const aid = events[0]?.id as string;
  const log = verifyKeyLog(aid, events);
  if (typeof log === 'string') return fail(`key event log ${logPath}: ${log}`);
  if (log.ignored.length > 0) return fail(`key event log ${logPath}: event ${log.ignored[0]?.id} ${log.ignored[0]?.reason}`);
  if (log.status !== 'active') return fail(`identity ${aid} is ${log.status}`);
  // only the exact state a rotation leaves after its append is finished; anything else is reported, never moved
  const before = log.chain[log.chain.length - 2];
  if (next && before?.pubkey === current.pubkey && log.head.pubkey === next.pubkey) {
    promote(home, current);
    current = next;
    next = keyIn(home, FILES.next);
  }
  if (log.head.pubkey !== current.pubkey) return fail(`${FILES.current} holds ${current.pubkey}, but the log's current key is ${log.head.pubkey}`);
  if (!next && existsSync(join(home, FILES.after))) {
    // interrupted between the two renames
    renameSync(join(home, FILES.after), join(home, FILES.next));
    next = keyIn(home, FILES.next);
  }
  if (!next) return fail(`${FILES.next} is missing: restore it from its backup (the log commits to ${log.head.next})`);
  if (getNextKeyDigest(next.pubkey) !== log.head.next) return fail(`${FILES.next} does not hold the next key the log commits to`);
  return { current, next, aid, log, events };
}

/** The rotated-out keys of the ring's log kept in `retired/` (to read mail sent to them during the grace period). */
export function readRetiredKeys(home: string, ring: KeyRing): Identity[] {
  return ring.log.keys.flatMap((k) => {
    if (k.pubkey === ring.current.pubkey) return [];
    const id = keyIn(join(home, FILES.retired), `${k.pubkey}.key`);
    return id?.pubkey === k.pubkey ? [id] : [];
  });
}

/** The key after next: reuses one left by an interrupted rotation. */
function afterKey(home: string): Identity {
  const existing = keyIn(home, FILES.after);
  if (existing) return existing;
  const after = Identity.generate();
  saveKeyFile(join(home, FILES.after), after);
  return after;
}

function advance(home: string, ring: KeyRing, ev: NostrEvent, now?: () => number): KeyRing {
  appendEvent(join(home, FILES.log), ev);
  promote(home, ring.current);
  return openKeyRing(home, now ? { now } : {});
}

/** Planned rotation: the next key becomes current (the current key co-signs), a new next key is committed. */
export function rotateKeyRing(home: string, opts: { now?: () => number } = {}): { ring: KeyRing; event: NostrEvent } {
  const ring = openKeyRing(home, opts);
  const at = (opts.now ?? (() => Math.floor(Date.now() / 1000)))();
  const after = afterKey(home);
  const head = ring.log.head as KeyEvent;
  const event = ring.next.sign(
    makeRotation({ head, currentSecretKey: ring.current.exportSecretKey(), newKey: ring.next.pubkey, nextKey: after.pubkey }, Math.max(at, head.created_at)),
  );
  return { ring: advance(home, ring, event, opts.now), event };
}

/** Compromise: the next key alone ends the current key at once and commits to a new next key. */
export function revokeKeyRing(home: string, opts: { now?: () => number; reason?: string } = {}): { ring: KeyRing; event: NostrEvent } {
  const ring = openKeyRing(home, opts);
  const at = (opts.now ?? (() => Math.floor(Date.now() / 1000)))();
  const after = afterKey(home);
  const head = ring.log.head as KeyEvent;
  const reason = opts.reason === undefined ? {} : { reason: opts.reason };
  const event = ring.next.sign(makeRevocation({ head, nextKey: after.pubkey, ...reason }, Math.max(at, head.created_at)));
  return { ring: advance(home, ring, event, opts.now), event };
}

/** Shortest and longest rotation interval accepted (a rotation is a permanent key event; one an hour is plenty). */
export const ROTATION_INTERVAL_BOUNDS = { min: 3600, max: 365 * 86_400 } as const;

const ROTATION_FILE = 'agent.rotation.json';
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/**
 * Reads a rotation interval: `30d`, `12h`, `2w`, `90m`, `86400` (seconds) or `off`/`0` (never); seconds, 0 for
 * never. Throws ROOST_ERR_BAD_INPUT for anything else or outside {@link ROTATION_INTERVAL_BOUNDS}.
 */
export function parseRotationInterval(text: string): number {
  const t = text.trim().toLowerCase();
  if (t === 'off' || t === 'never' || t === '0') return 0;
  const m = /^(\d{1,9})([smhdw]?)$/.exec(t);
  const seconds = m ? Number(m[1]) * (UNITS[m[2] || 's'] as number) : Number.NaN;
  const { min, max } = ROTATION_INTERVAL_BOUNDS;
  if (!(seconds >= min && seconds <= max)) {
    throw new ClientError('ROOST_ERR_BAD_INPUT', `rotation interval ${JSON.stringify(text)}: give 1h to 365d (like 30d, 12h, 2w) or off`);
  }
  return seconds;
}

/** The rotation interval kept in the agent's home (`agent.rotation.json`), in seconds; undefined when none is set. */
export function readRotationInterval(home: string): number | undefined {
  const path = join(home, ROTATION_FILE);
  if (!existsSync(path)) return undefined;
  let every: unknown;
  try {
    every = (JSON.parse(readFileSync(path, 'utf8')) as { everySeconds?: unknown }).everySeconds;
  } catch {
    return fail(`${path} is not JSON`);
  }
  const { min, max } = ROTATION_INTERVAL_BOUNDS;
  if (every !== 0 && !(typeof every === 'number' && Number.isInteger(every) && every >= min && every <= max)) {
    return fail(`${path}: everySeconds must be 0 (never) or an integer from ${min} to ${max}`);
  }
  return every;
}

/** Keeps the rotation interval (seconds, 0 for never) in the agent's home; `createNodeAgent` rotates by it when it starts. */
export function saveRotationInterval(home: string, everySeconds: number): void {
  const { min, max } = ROTATION_INTERVAL_BOUNDS;
  if (everySeconds !== 0 && !(Number.isInteger(everySeconds) && everySeconds >= min && everySeconds <= max)) {
    throw new ClientError('ROOST_ERR_BAD_INPUT', `rotation interval must be 0 or ${min}–${max} seconds`);
  }
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const path = join(home, ROTATION_FILE);
  writeFileSync(`${path}.tmp`, `${JSON.stringify({ everySeconds })}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** Whether the ring's log head is older than `everySeconds` at `nowSec` (0: never due). */
export function isRotationDue(ring: Pick<KeyRing, 'log'>, everySeconds: number, nowSec: number): boolean {
  return everySeconds > 0 && nowSec - ring.log.head.created_at >= everySeconds;
}
