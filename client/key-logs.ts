import type { NostrEvent } from '../shared/event.js';
import type { Filter } from '../shared/filter.js';
import { getKeyWindow, IDENTITY_KINDS, IdentityKind, type KeyLog, makePriorKeys, verifyKeyLog } from '../shared/identity-log.js';
import type { ClientLogger } from './emitter.js';
import { ClientError } from './errors.js';

/**
 * Peers' key event logs as this agent knows them (docs/identity.md): fetched from the relays the first
 * time a key is met, verified here, indexed by every key they reveal, and kept current by one live
 * subscription on the rotations and revocations of every identity met. What the messenger asks it:
 * which key to encrypt to for a peer, and whether a key may still speak for its identity.
 */

/** What the key logs need from the agent: stored events from the connected relays, and a live subscription. */
export interface KeyLogsDeps {
  fetch(filters: Filter[], timeoutMs: number): Promise<NostrEvent[]>;
  subscribe(filters: Filter[], onEvent: (event: NostrEvent) => void): { close(): void };
  connected(): boolean;
  /** Milliseconds since the epoch. */
  now(): number;
  log: ClientLogger;
  /** A key found without a log is asked about again after this long (ms; default 60 s). */
  missingTtlMs?: number;
  /** How long one look-up waits for the relays (ms; default 1500). */
  fetchTimeoutMs?: number;
}

/** Whether a key may speak for its identity: `aid` when it belongs to a log, `refused` with why when it may not. */
export interface SenderCheck {
  aid?: string;
  refused?: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** See the module comment. */
export class KeyLogs {
  readonly #d: KeyLogsDeps;
  readonly #logs = new Map<string, { events: Map<string, NostrEvent>; log: KeyLog }>();
  readonly #byKey = new Map<string, string>();
  readonly #missing = new Map<string, number>();
  readonly #inflight = new Map<string, Promise<KeyLog | undefined>>();
  #watch: { close(): void } | undefined;
  #batch: Map<string, (log: KeyLog | undefined) => void> | undefined;
  readonly #listeners = new Set<(log: KeyLog) => void>();
  #watched = '';
  #closed = false;

  constructor(deps: KeyLogsDeps) {
    this.#d = deps;
  }

  /** The verified log a key belongs to, as known now (no network). */
  get(pubkey: string): KeyLog | undefined {
    const aid = this.#byKey.get(pubkey);
    return aid === undefined ? undefined : this.#logs.get(aid)?.log;
  }

  /** The log of an agent id, as known now. */
  getByAid(aid: string): KeyLog | undefined {
    return this.#logs.get(aid)?.log;
  }

  /**
   * The log `pubkey` belongs to: from memory, else read from the connected relays (once at a time per
   * key; a key with no log is not asked about again for `missingTtlMs`). Undefined: a plain key.
   */
  lookup(pubkey: string): KeyLog | undefined | Promise<KeyLog | undefined> {
    const known = this.get(pubkey);
    if (known) return known;
    const missed = this.#missing.get(pubkey);
    if (missed !== undefined && this.#d.now() - missed < (this.#d.missingTtlMs ?? 60_000)) return undefined;
    if (!this.#d.connected()) return undefined;
    let p = this.#inflight.get(pubkey);
    if (!p) {
      p = this.#enqueue(pubkey);
      this.#inflight.set(pubkey, p);
      void p.finally(() => this.#inflight.delete(pubkey));
    }
    return p;
  }

  /**
   * The logs of many keys at once (two queries for all the unknown ones, however many): what a
   * reputation computation needs for every attester. Keys without a log are absent.
   */
  async lookupMany(pubkeys: readonly string[], timeoutMs = this.#d.fetchTimeoutMs ?? 1500): Promise<KeyLog[]> {
    const logs = new Map<string, KeyLog>();
    const unknown: string[] = [];
    for (const pk of new Set(pubkeys)) {
      const known = this.get(pk);
      if (known) logs.set(known.aid, known);
      else if (this.#d.connected()) unknown.push(pk);
    }
    if (unknown.length > 0) {
      const revealing = await this.#d.fetch([{ kinds: [...IDENTITY_KINDS], authors: unknown }], timeoutMs);
      const aids = new Set<string>();
      const aidOf = new Map<string, string>();
      for (const ev of revealing) {
        const aid = ev.kind === IdentityKind.Inception ? ev.id : ev.tags.find((t) => t[0] === 'e' && t[3] === 'root')?.[1];
        if (aid === undefined || !HEX64.test(aid)) continue;
        aidOf.set(ev.pubkey, aid);
        if (!logs.has(aid)) aids.add(aid);
      }
      if (aids.size > 0) {
        const events = await this.#d.fetch([{ ids: [...aids] }, { kinds: [IdentityKind.Rotation, IdentityKind.Revocation], '#e': [...aids] }], timeoutMs);
        for (const aid of aids) {
          const log = this.add(
            aid,
            events.filter((e) => e.id === aid || e.tags.some((t) => t[0] === 'e' && t[1] === aid && t[3] === 'root')),
          );
          if (typeof log !== 'string') logs.set(aid, log);
        }
      }
      for (const pk of unknown) {
        const aid = aidOf.get(pk);
        // A forked log's chain stops at the fork: a key of a branch is indexed to the log all the same.
        if (aid !== undefined && this.#logs.has(aid)) this.#byKey.set(pk, aid);
        else this.#missing.set(pk, this.#d.now());
      }
    }
    return [...logs.values()];
  }

  /** Reads an identity's whole log from the relays, merges it with what is known and verifies it. */
  async fetchLog(aid: string, timeoutMs = this.#d.fetchTimeoutMs ?? 1500): Promise<KeyLog | string> {
    const events = await this.#d.fetch([{ ids: [aid] }, { kinds: [IdentityKind.Rotation, IdentityKind.Revocation], '#e': [aid] }], timeoutMs);
    return this.add(aid, events);
  }

  /** Adds events to an identity's log (verified together with what was known); the log, or why there is none. */
  add(aid: string, events: readonly NostrEvent[]): KeyLog | string {
    const entry = this.#logs.get(aid);
    const all = new Map(entry?.events ?? []);
    for (const ev of events) all.set(ev.id, ev);
    const log = verifyKeyLog(aid, [...all.values()]);
    if (typeof log === 'string') return log;
    const before = entry?.log;
    this.#logs.set(aid, { events: all, log });
    for (const k of log.keys) {
      this.#byKey.set(k.pubkey, aid);
      this.#missing.delete(k.pubkey);
    }
    if (before && (before.head.id !== log.head.id || before.status !== log.status)) {
      this.#d.log.info({ aid: aid.slice(0, 16), seq: log.head.seq, status: log.status }, 'peer key event log moved');
      for (const l of this.#listeners) l(log);
    }
    this.#rewatch();
    return log;
  }

  /**
   * The key to encrypt to for `pubkey`: its identity's current key (the key itself when it has no log).
   * Throws ROOST_ERR_IDENTITY_DISPUTED for a forked log and ROOST_ERR_IDENTITY_CLOSED for a closed one.
   */
  recipient(pubkey: string): string | Promise<string> {
    const known = this.lookup(pubkey);
    return known instanceof Promise ? known.then((log) => currentKeyOf(pubkey, log)) : currentKeyOf(pubkey, known);
  }

  /**
   * Whether `pubkey` may speak for its identity in a message dated `createdAt` (seconds), received now:
   * a key rotated out speaks only until the end of its grace period; a revoked key, a key of a closed
   * log or a key revealed after a fork, never again.
   */
  async checkSender(pubkey: string, createdAt: number): Promise<SenderCheck> {
    const log = await this.lookup(pubkey);
    if (!log) return {};
    const w = getKeyWindow(log, pubkey);
    if (!w) return { aid: log.aid, refused: `key ${pubkey} is not in the chain of identity ${log.aid}${log.fork ? ' (forked)' : ''}` };
    if (w.end === undefined) return { aid: log.aid };
    if (w.end === 'rotated') {
      return createdAt < (w.until as number) ? { aid: log.aid } : { aid: log.aid, refused: `key ${pubkey} was rotated out and its grace period is over` };
    }
    if (w.end === 'forked' && createdAt < (w.until as number)) return { aid: log.aid };
    return { aid: log.aid, refused: `key ${pubkey} was ${w.end === 'forked' ? 'current when identity forked' : w.end}` };
  }

  /** Calls `listener` whenever a known log moves (a rotation, revocation or fork seen); returns the unsubscribe. */
  onChange(listener: (log: KeyLog) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The earlier keys of `pubkey`'s identity, as known now, when `pubkey` speaks for it at `at` (seconds):
   * what makes a listed member's successor key a member.
   */
  priorKeys(pubkey: string, at: number): readonly string[] {
    const log = this.get(pubkey);
    return log ? makePriorKeys([log])(pubkey, at) : [];
  }

  /** Stops the live subscription. */
  close(): void {
    this.#closed = true;
    this.#watch?.close();
    this.#watch = undefined;
  }

  /** The agent id of the log that revealed `pubkey`, read from the relays. */
  async findAid(pubkey: string, timeoutMs = this.#d.fetchTimeoutMs ?? 1500): Promise<string | undefined> {
    const [revealing] = await this.#d.fetch([{ kinds: [...IDENTITY_KINDS], authors: [pubkey], limit: 1 }], timeoutMs);
    if (revealing === undefined) return undefined;
    return revealing.kind === IdentityKind.Inception ? revealing.id : revealing.tags.find((t) => t[0] === 'e' && t[3] === 'root')?.[1];
  }

  /** Look-ups asked for in one tick share two queries (however many keys: a burst never opens a subscription each). */
  #enqueue(pubkey: string): Promise<KeyLog | undefined> {
    let batch = this.#batch;
    if (!batch) {
      const fresh = new Map<string, (log: KeyLog | undefined) => void>();
      this.#batch = batch = fresh;
      queueMicrotask(() => {
        this.#batch = undefined;
        void this.#runBatch(fresh);
      });
    }
    const pending = batch;
    return new Promise((resolve) => pending.set(pubkey, resolve));
  }

  async #runBatch(batch: Map<string, (log: KeyLog | undefined) => void>): Promise<void> {
    try {
      await this.lookupMany([...batch.keys()]);
    } catch (err) {
      this.#d.log.warn({ keys: batch.size, err: String(err) }, 'key event log look-up failed');
    }
    for (const [pubkey, resolve] of batch) resolve(this.get(pubkey));
  }

  /** One live subscription on the later key events of every identity met, re-sent when one is added. */
  #rewatch(): void {
    if (this.#closed) return;
    const aids = [...this.#logs.keys()].sort();
    const key = aids.join(',');
    if (key === this.#watched) return;
    this.#watched = key;
    this.#watch?.close();
    this.#watch = this.#d.subscribe([{ kinds: [IdentityKind.Rotation, IdentityKind.Revocation], '#e': aids }], (ev) => {
      const aid = ev.tags.find((t) => t[0] === 'e' && t[3] === 'root')?.[1];
      if (aid !== undefined && this.#logs.has(aid) && !this.#logs.get(aid)?.events.has(ev.id)) this.add(aid, [ev]);
    });
  }
}

function currentKeyOf(pubkey: string, log: KeyLog | undefined): string {
  if (!log) return pubkey;
  if (log.status === 'forked') {
    throw new ClientError('ROOST_ERR_IDENTITY_DISPUTED', `identity ${log.aid} of ${pubkey} is forked at ${log.fork?.at}: no key speaks for it`);
  }
  if (log.status === 'closed') throw new ClientError('ROOST_ERR_IDENTITY_CLOSED', `identity ${log.aid} of ${pubkey} was closed by a revocation`);
  return log.current as string;
}
