import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import type { NostrEvent } from '../../shared/event.js';
import { makeReason } from '../../shared/reason.js';
import type { RelayConfig } from '../config.js';
import type { RelayIdentity } from '../identity.js';
import { admitWakeRegistration, ConversationKeyCache, type WakeRegistrationResult } from './registration.js';
import { createWakeSenders, describeWake, getConfiguredPlatforms, type PushConfig, type WakeDescription } from './senders.js';
import { PushStore } from './store.js';
import { WakeLoop, type DueWake, type PushResult, type WakeDecision, type WakeQueueStore } from './loop.js';
import { getPushKey, type DuePush, type WakeCounters, type WakeWindow } from './rules.js';
import { systemClock, type PushClock, type WakePlatform, type WakeSenders } from './types.js';

/** Settings push wake reads: every push* key, and the public URL it names in wake hints. */
export type PushWakeConfig = PushConfig & Pick<RelayConfig, 'publicUrl'>;

/** Everything push wake needs from the relay, injected. */
export interface PushWakeDeps {
  /** The relay's database handle, with migrations/0003_push.sql applied. */
  db: Database.Database;
  identity: Pick<RelayIdentity, 'secretKey' | 'pubkey'>;
  config: PushWakeConfig;
  log: Logger;
  /** True while the agent has an authenticated live connection (it then needs no wake). */
  isOnline: (pubkey: string) => boolean;
  /** Default: built from `config` by createWakeSenders (and closed by `close()`). */
  senders?: WakeSenders;
  clock?: PushClock;
  /** Uniform in [0, 1), for backoff jitter. */
  random?: () => number;
  /** Spans for queued and sent wakes (relay/tracing.ts); absent or disabled when tracing is off. */
  tracing?: WakeTracing;
}

/** What the wake queue reports to tracing: a wake queued for a stored event, and each push attempt. */
export interface WakeTracing {
  readonly enabled: boolean;
  /** A wake was queued for the event stored at `seq`. */
  wakeQueued(eventId: string, seq: number): void;
  /** A push for `seq` starts; the returned function ends its span with the outcome. */
  wakeSend(seq: number, platform: string): (outcome: string) => void;
}

/** Counters since start, and the current queue. */
export interface PushStats extends WakeCounters {
  pendingWakes: number;
  pendingDeliveries: number;
  inFlight: number;
}

/** The push-wake subsystem, as the relay core uses it. */
export interface PushWake {
  /** Applies a verified kind-29059 event; answer the client's EVENT with OK accordingly. Never throws. */
  handleWakeRegistration(event: NostrEvent): WakeRegistrationResult;
  /**
   * Queues a wake for every `p`-tagged agent that has a device and is offline; synchronous, never
   * throws. Inside the transaction that stores the event it is one prepared upsert per woken agent
   * and commits with the event (best: a crash after OK cannot lose the wake). Outside a transaction
   * it only notes the wake in memory and commits this tick's notes together on the next one.
   */
  onEventStored(event: NostrEvent, seq: number): void;
  /**
   * A key event log moved from key `from` to key `to` (a rotation or revocation the relay stored,
   * docs/identity.md): `to` gets `from`'s channels unless it registered its own, so an agent asleep
   * when it was rotated is still woken by mail to its new key. Never throws.
   */
  followKey(from: string, to: string, eventCreated: number): void;
  /** Starts the timers that send queued wakes, including those left on disk by an earlier run. */
  start(): void;
  /** Sends everything due now; resolves when nothing is due and nothing is in flight (tests, shutdown). */
  runDue(): Promise<void>;
  /** Counters and queue sizes (commits wakes noted this tick first, so the numbers are exact). */
  stats(): PushStats;
  /** For the NIP-11 document. */
  describeWake(): WakeDescription;
  /** Stops the timers, waits for pushes in flight and closes the senders it created. Pending wakes stay on disk. */
  close(): Promise<void>;
}

/** An unchanged registration younger than this is not rewritten. */
const REGISTRATION_REFRESH_MS = 3_600_000;

/** Builds push wake over the relay's database; call `start()` once the relay listens. */
export function createPushWake(deps: PushWakeDeps): PushWake {
  return new PushWakeService(deps);
}

/**
 * The wake queue's rows in the relay's SQLite database, for {@link WakeLoop}: every answer comes at once,
 * and each step is one transaction (results of finished pushes commit with the wakes noted this tick).
 */
class SqliteWakeQueue implements WakeQueueStore {
  readonly #store: PushStore;
  readonly #isOnline: (pubkey: string) => boolean;
  readonly #registered: Set<string>;
  readonly #flushWakes: () => void;
  readonly #hasWakes: () => boolean;

  /** `flushWakes` queues the wakes noted outside a transaction (`hasWakes`: whether there are any). */
  constructor(store: PushStore, isOnline: (pubkey: string) => boolean, registered: Set<string>, flushWakes: () => void, hasWakes: () => boolean) {
    this.#store = store;
    this.#isOnline = isOnline;
    this.#registered = registered;
    this.#flushWakes = flushWakes;
    this.#hasWakes = hasWakes;
  }

  releaseDueWakes(now: number, limit: number, decide: (wake: DueWake, online: boolean, window: WakeWindow | undefined) => WakeDecision): number {
    return this.#store.batch(() => {
      const wakes = this.#store.listDueWakes(now, limit);
      for (const w of wakes) {
        const d = decide(w, this.#isOnline(w.owner), this.#store.getWindow(w.owner));
        if (d.kind === 'cancel') this.#store.deleteWake(w.owner);
        else if (d.kind === 'hold') this.#store.postponeWake(w.owner, d.until);
        else this.#store.releaseWake(w, now, { lastWakeAt: now, ...d.window });
      }
      return wakes.length;
    });
  }

  claimDue(now: number, room: number, leaseUntil: number, inFlight: { has(key: string): boolean; readonly size: number }): DuePush[] {
    const claimed: DuePush[] = [];
    this.#store.batch(() => {
      // Claimed pushes get a future due_at, so each listing shows new rows.
      for (;;) {
        const left = room - claimed.length;
        if (left <= 0) return;
        const limit = left + inFlight.size;
        const due = this.#store.listDueDeliveries(now, limit);
        let progressed = false;
        for (const d of due) {
          if (inFlight.has(getPushKey(d))) continue;
          progressed = true;
          this.#store.scheduleDelivery(d, leaseUntil, d.attempts + 1);
          claimed.push(d);
          if (claimed.length >= room) return;
        }
        if (!progressed || due.length < limit) return;
      }
    });
    return claimed;
  }

  unclaim(d: DuePush, at: number): void {
    this.#store.scheduleDelivery(d, at, d.attempts);
  }

  isOnline(owner: string): boolean {
    return this.#isOnline(owner);
  }

  deleteDelivery(d: DuePush): void {
    this.#store.deleteDelivery(d);
  }

  record(results: readonly PushResult[]): boolean[] {
    return this.#store.batch(() => {
      this.#flushWakes();
      return results.map((r) => {
        if (r.kind === 'delete') this.#store.deleteDelivery(r.d);
        else if (r.kind === 'schedule') this.#store.scheduleDelivery(r.d, r.at, r.attempts);
        else {
          const pruned = this.#store.pruneChannel(r.d.owner, r.d.platform, r.d.token, r.before);
          if (pruned && !this.#store.hasChannels(r.d.owner)) this.#registered.delete(r.d.owner);
          return pruned;
        }
        return false;
      });
    });
  }

  nextDue(): number | undefined {
    return this.#store.getNextDue();
  }

  pending(): { wakes: number; deliveries: number } {
    return this.#store.countPending();
  }

  flush(): void {
    // Nothing noted, nothing touched (close() runs after the database may be gone).
    if (this.#hasWakes()) this.#store.batch(this.#flushWakes);
  }
}

class PushWakeService implements PushWake {
  readonly #store: PushStore;
  readonly #keys: ConversationKeyCache;
  readonly #config: PushWakeConfig;
  readonly #log: Logger;
  readonly #tracing: WakeTracing | undefined;
  readonly #isOnline: (pubkey: string) => boolean;
  readonly #senders: WakeSenders;
  readonly #ownsSenders: boolean;
  readonly #configured: ReadonlySet<WakePlatform>;
  readonly #clock: PushClock;
  /** Agents with at least one channel: most recipients are skipped without touching SQLite. */
  readonly #registered: Set<string>;
  readonly #loop: WakeLoop;
  /** Wakes noted outside a transaction: written together in one commit, with finished pushes. */
  #deferredWakes: Array<{ owner: string; seq: number; now: number }> = [];
  #started = false;
  #closed = false;

  constructor(deps: PushWakeDeps) {
    this.#store = new PushStore(deps.db);
    this.#keys = new ConversationKeyCache(deps.identity.secretKey);
    this.#config = deps.config;
    this.#log = deps.log.child({ module: 'push' });
    this.#tracing = deps.tracing;
    this.#isOnline = deps.isOnline;
    this.#ownsSenders = deps.senders === undefined;
    this.#senders = deps.senders ?? createWakeSenders(deps.config, this.#log);
    this.#configured = new Set(getConfiguredPlatforms(this.#senders));
    this.#clock = deps.clock ?? systemClock;
    this.#registered = new Set(this.#store.listOwnersWithChannels());
    this.#loop = new WakeLoop({
      store: new SqliteWakeQueue(
        this.#store,
        this.#isOnline,
        this.#registered,
        () => this.#flushWakes(),
        () => this.#deferredWakes.length > 0,
      ),
      config: deps.config,
      log: this.#log,
      senders: this.#senders,
      clock: this.#clock,
      random: deps.random ?? Math.random,
      relayPubkey: deps.identity.pubkey,
      tracing: deps.tracing,
      passOnResult: true,
    });
  }

  handleWakeRegistration(event: NostrEvent): WakeRegistrationResult {
    try {
      const admitted = admitWakeRegistration(event, this.#keys, this.#configured, this.#log);
      if (!admitted.ok) return admitted;
      const { targets } = admitted;
      const inForce = this.#store.getRegistrationTime(event.pubkey);
      if (inForce !== undefined && event.created_at < inForce) {
        return { ok: false, reason: makeReason('invalid', 'a newer wake registration is already in force') };
      }
      const now = this.#clock.now();
      // Agents re-register on every connect: an unchanged, recent registration costs one read, no commit.
      // Skipping the write is safe for the replay guard: any event it lets through carries this same set.
      if (this.#store.hasSameChannels(event.pubkey, targets, now - REGISTRATION_REFRESH_MS)) return { ok: true };
      const n = this.#store.replaceChannels(event.pubkey, event.created_at, targets, now);
      if (n > 0) this.#registered.add(event.pubkey);
      else this.#registered.delete(event.pubkey);
      this.#log.info({ event: event.id, agent: event.pubkey, channels: n, platforms: [...new Set(targets.map((t) => t.platform))] }, 'wake registration');
      return { ok: true };
    } catch (err) {
      this.#log.error({ err, event: event.id }, 'wake registration failed');
      return { ok: false, reason: makeReason('error', 'internal error') };
    }
  }

  followKey(from: string, to: string, eventCreated: number): void {
    try {
      if (!this.#registered.has(from) || this.#store.getRegistrationTime(to) !== undefined) return;
      const targets = this.#store.getChannels(from);
      if (targets.length === 0) return;
      this.#store.replaceChannels(to, eventCreated, targets, this.#clock.now());
      this.#registered.add(to);
      this.#log.info({ from, agent: to, channels: targets.length }, 'wake registration follows the key event log');
    } catch (err) {
      this.#log.error({ err, agent: to }, 'moving a wake registration to a new key failed');
    }
  }

  onEventStored(event: NostrEvent, seq: number): void {
    if (this.#registered.size === 0 || this.#configured.size === 0 || this.#closed) return;
    try {
      let now: number | undefined;
      let done: Set<string> | undefined;
      for (const tag of event.tags) {
        const pk = tag[0] === 'p' ? tag[1] : undefined;
        if (pk === undefined || pk === event.pubkey || !this.#registered.has(pk)) continue;
        if (done?.has(pk)) continue;
        (done ??= new Set()).add(pk);
        if (this.#isOnline(pk)) continue;
        now ??= this.#clock.now();
        if (this.#tracing?.enabled) this.#tracing.wakeQueued(event.id, seq);
        if (this.#store.inTransaction) this.#queueWake(pk, seq, now);
        else {
          // Outside a transaction each write would be its own commit (an fsync with synchronous=FULL):
          // note it and commit all notes of this tick together.
          this.#deferredWakes.push({ owner: pk, seq, now });
          this.#loop.scheduleFlush();
        }
      }
    } catch (err) {
      this.#log.error({ err, event: event.id }, 'queueing a wake failed');
    }
  }

  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#flush();
    const pending = this.#store.countPending();
    if (pending.wakes + pending.deliveries > 0) this.#log.info(pending, 'resuming queued wakes');
    this.#loop.start();
  }

  runDue(): Promise<void> {
    return this.#loop.runDue();
  }

  stats(): PushStats {
    this.#flush();
    return this.#loop.stats();
  }

  describeWake(): WakeDescription {
    return describeWake(this.#senders);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#loop.close();
    if (this.#ownsSenders) await Promise.all([this.#senders.apns?.close(), this.#senders.fcm?.close()]);
  }

  /** Commits the noted wakes and the results of finished pushes (answered at once on SQLite). */
  #flush(): void {
    void this.#loop.flush();
  }

  /** Queues the noted wakes (inside the caller's transaction). */
  #flushWakes(): void {
    if (this.#deferredWakes.length === 0) return;
    const wakes = this.#deferredWakes;
    this.#deferredWakes = [];
    try {
      for (const w of wakes) this.#queueWake(w.owner, w.seq, w.now);
    } catch (err) {
      this.#log.error({ err, wakes: wakes.length }, 'recording push state failed');
    }
  }

  #queueWake(owner: string, seq: number, now: number): void {
    const due = this.#store.queueWake(owner, seq, now, this.#config.pushMinIntervalSeconds * 1000);
    if (due === undefined) return;
    this.#loop.counters.queued++;
    this.#log.debug({ agent: owner, seq, due }, 'wake queued');
    this.#loop.arm(due);
  }
}
