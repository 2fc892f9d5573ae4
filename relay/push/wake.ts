import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import type { NostrEvent } from '../../shared/event.js';
import { makeReason } from '../../shared/reason.js';
import type { RelayConfig } from '../config.js';
import type { RelayIdentity } from '../identity.js';
import { TokenBucket } from './backoff.js';
import { admitWakeRegistration, ConversationKeyCache, type WakeRegistrationResult } from './registration.js';
import { createWakeSenders, describeWake, getConfiguredPlatforms, type PushConfig, type WakeDescription } from './senders.js';
import { PushStore, type DueDelivery } from './store.js';
import { countDrop, decideWakeRelease, getDropReason, getPushKey, makeWakeCounters, makeWakeHint, planRetry } from './rules.js';
import { systemClock, type PushClock, type SendOutcome, type WakePlatform, type WakeSenders } from './types.js';

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
export interface PushStats {
  /** Wakes queued (at most one pending per agent). */
  queued: number;
  /** Pushes accepted by APNs or FCM. */
  sent: number;
  /** Pushes rescheduled after 429, 5xx or a network error. */
  retried: number;
  /** Pushes given up: attempts or TTL exhausted, or a permanent error that keeps the token. */
  failed: number;
  /** Registrations removed because the push service called their token dead. */
  pruned: number;
  /** Wakes and pushes dropped because the agent came online or removed the device first. */
  cancelled: number;
  /** Wakes held back by the per-agent hourly cap. */
  rateLimited: number;
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

const MAX_TIMER_MS = 60_000;
const RELEASE_BATCH = 256;
/** An unchanged registration younger than this is not rewritten. */
const REGISTRATION_REFRESH_MS = 3_600_000;

/** Builds push wake over the relay's database; call `start()` once the relay listens. */
export function createPushWake(deps: PushWakeDeps): PushWake {
  return new PushWakeService(deps);
}

class PushWakeService implements PushWake {
  readonly #store: PushStore;
  readonly #identity: PushWakeDeps['identity'];
  readonly #keys: ConversationKeyCache;
  readonly #config: PushWakeConfig;
  readonly #log: Logger;
  readonly #tracing: WakeTracing | undefined;
  readonly #isOnline: (pubkey: string) => boolean;
  readonly #senders: WakeSenders;
  readonly #ownsSenders: boolean;
  readonly #configured: ReadonlySet<WakePlatform>;
  readonly #clock: PushClock;
  readonly #random: () => number;
  readonly #bucket: TokenBucket;
  readonly #leaseMs: number;
  /** Agents with at least one channel: most recipients are skipped without touching SQLite. */
  readonly #registered: Set<string>;
  readonly #inFlight = new Map<string, Promise<void>>();
  /** Wakes noted outside a transaction, and finished pushes: written together in one commit. */
  #deferredWakes: Array<{ owner: string; seq: number; now: number }> = [];
  #settled: Array<{ d: DueDelivery; attempt: number; outcome: SendOutcome }> = [];
  #flushScheduled = false;
  readonly #counters = makeWakeCounters();
  #started = false;
  #closed = false;
  #timerAt: number | undefined;
  #cancelTimer: (() => void) | undefined;

  constructor(deps: PushWakeDeps) {
    this.#store = new PushStore(deps.db);
    this.#identity = deps.identity;
    this.#keys = new ConversationKeyCache(deps.identity.secretKey);
    this.#config = deps.config;
    this.#log = deps.log.child({ module: 'push' });
    this.#tracing = deps.tracing;
    this.#isOnline = deps.isOnline;
    this.#ownsSenders = deps.senders === undefined;
    this.#senders = deps.senders ?? createWakeSenders(deps.config, this.#log);
    this.#configured = new Set(getConfiguredPlatforms(this.#senders));
    this.#clock = deps.clock ?? systemClock;
    this.#random = deps.random ?? Math.random;
    this.#bucket = new TokenBucket(deps.config.pushGlobalSendsPerSecond, this.#clock.now());
    // A claimed push is not sent again before both libraries' request timeouts (firebase-admin: 15 s) have passed.
    this.#leaseMs = 2 * Math.max(deps.config.pushRequestTimeoutMs, 15_000);
    this.#registered = new Set(this.#store.listOwnersWithChannels());
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
          this.#scheduleFlush();
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
    this.#pump();
  }

  async runDue(): Promise<void> {
    for (;;) {
      this.#pump();
      if (this.#inFlight.size === 0) return;
      await Promise.all(this.#inFlight.values());
    }
  }

  stats(): PushStats {
    this.#flush();
    const p = this.#store.countPending();
    return { ...this.#counters, pendingWakes: p.wakes, pendingDeliveries: p.deliveries, inFlight: this.#inFlight.size };
  }

  describeWake(): WakeDescription {
    return describeWake(this.#senders);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    await Promise.all(this.#inFlight.values());
    this.#flush();
    if (this.#ownsSenders) await Promise.all([this.#senders.apns?.close(), this.#senders.fcm?.close()]);
  }

  #queueWake(owner: string, seq: number, now: number): void {
    const due = this.#store.queueWake(owner, seq, now, this.#config.pushMinIntervalSeconds * 1000);
    if (due === undefined) return;
    this.#counters.queued++;
    this.#log.debug({ agent: owner, seq, due }, 'wake queued');
    this.#arm(due);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      if (this.#closed) return; // close() flushes on its own, before the database goes away
      if (this.#started) this.#pump();
      else this.#flush();
    });
  }

  /** Commits the noted wakes and the results of finished pushes, in one transaction. */
  #flush(): void {
    if (this.#deferredWakes.length === 0 && this.#settled.length === 0) return;
    const wakes = this.#deferredWakes;
    const settled = this.#settled;
    this.#deferredWakes = [];
    this.#settled = [];
    try {
      this.#store.batch(() => {
        for (const w of wakes) this.#queueWake(w.owner, w.seq, w.now);
        const now = this.#clock.now();
        for (const s of settled) this.#settle(s.d, s.attempt, s.outcome, now);
      });
    } catch (err) {
      this.#log.error({ err, wakes: wakes.length, results: settled.length }, 'recording push state failed');
    }
  }

  /** Commits what is pending, releases due wakes, starts due pushes up to the caps, and sets the timer. */
  #pump(): void {
    this.#flush();
    if (this.#closed) return;
    let blockedUntil: number | undefined;
    try {
      const now = this.#clock.now();
      this.#releaseDueWakes(now);
      const toStart: DueDelivery[] = [];
      this.#store.batch(() => {
        // Claimed pushes get a future due_at and dropped ones are deleted, so each listing shows new rows.
        for (;;) {
          const room = this.#config.pushMaxInFlight - this.#inFlight.size - toStart.length;
          if (room <= 0 || blockedUntil !== undefined) return;
          const limit = room + this.#inFlight.size;
          const due = this.#store.listDueDeliveries(now, limit);
          let progressed = false;
          for (const d of due) {
            if (this.#inFlight.has(getPushKey(d))) continue;
            progressed = true;
            if (!this.#isSendable(d, now)) continue;
            if (!this.#bucket.take(now)) {
              blockedUntil = now + this.#bucket.waitMs(now);
              break;
            }
            this.#store.scheduleDelivery(d, now + this.#leaseMs, d.attempts + 1);
            toStart.push(d);
            if (this.#inFlight.size + toStart.length >= this.#config.pushMaxInFlight) break;
          }
          if (!progressed || due.length < limit) return;
        }
      });
      for (const d of toStart) this.#startSend(d, now);
    } catch (err) {
      this.#log.error({ err }, 'push queue pass failed');
    }
    this.#armNext(blockedUntil);
  }

  #releaseDueWakes(now: number): void {
    for (;;) {
      const count = this.#store.batch(() => {
        const wakes = this.#store.listDueWakes(now, RELEASE_BATCH);
        for (const w of wakes) {
          if (this.#isOnline(w.owner)) {
            this.#store.deleteWake(w.owner);
            this.#counters.cancelled++;
            continue;
          }
          const release = decideWakeRelease(this.#store.getWindow(w.owner), now, this.#config.pushAgentWakesPerHour);
          if (release.kind === 'hold') {
            this.#store.postponeWake(w.owner, release.until);
            this.#counters.rateLimited++;
            this.#log.info({ agent: w.owner, until: release.until }, 'wake held by the per-agent cap');
            continue;
          }
          this.#store.releaseWake(w, now, { lastWakeAt: now, ...release.window });
        }
        return wakes.length;
      });
      if (count < RELEASE_BATCH) return;
    }
  }

  /** Drops a due push that can no longer be sent; true when it should be sent. */
  #isSendable(d: DueDelivery, now: number): boolean {
    const why = getDropReason(d, d.target && this.#isOnline(d.owner), now, this.#config, this.#senders);
    if (!why) return true;
    this.#store.deleteDelivery(d);
    countDrop(this.#counters, why);
    this.#log.info({ agent: d.owner, platform: d.platform, why }, 'wake dropped');
    return false;
  }

  #startSend(d: DueDelivery, now: number): void {
    const attempt = d.attempts + 1;
    const sender = this.#senders[d.platform]!;
    const hint = makeWakeHint(d, now, this.#config, this.#identity.pubkey);
    const key = getPushKey(d);
    const traced = this.#tracing?.enabled ? this.#tracing.wakeSend(d.seq, d.platform) : undefined;
    const p = sender
      .send(d.target!, hint)
      .catch((): SendOutcome => ({ kind: 'retry', code: 'sender:exception' }))
      .then((outcome) => {
        traced?.(outcome.kind);
        this.#inFlight.delete(key);
        this.#settled.push({ d, attempt, outcome });
        this.#scheduleFlush();
      });
    this.#inFlight.set(key, p);
  }

  #settle(d: DueDelivery, attempt: number, outcome: SendOutcome, now: number): void {
    const base = { agent: d.owner, platform: d.platform, attempt };
    switch (outcome.kind) {
      case 'sent':
        this.#store.deleteDelivery(d);
        this.#counters.sent++;
        this.#log.info({ ...base, seq: d.seq }, 'wake sent');
        return;
      case 'retry': {
        const plan = planRetry(d, attempt, outcome, now, this.#config, this.#random);
        if (plan.kind === 'give-up') {
          this.#store.deleteDelivery(d);
          this.#counters.failed++;
          this.#log.warn({ ...base, code: outcome.code }, 'wake given up');
          return;
        }
        this.#store.scheduleDelivery(d, plan.at, attempt);
        this.#counters.retried++;
        this.#log.info({ ...base, code: outcome.code, delayMs: plan.delayMs, retryAfterMs: outcome.retryAfterMs }, 'wake will be retried');
        this.#arm(plan.at);
        return;
      }
      case 'prune': {
        const pruned = this.#store.pruneChannel(d.owner, d.platform, d.token, outcome.unregisteredAt ?? Number.MAX_SAFE_INTEGER);
        if (!pruned) {
          // Apple's timestamp predates the registration: the device registered this token again since.
          this.#counters.failed++;
          this.#log.warn({ ...base, code: outcome.code }, 'token reported dead before its latest registration; kept');
          return;
        }
        if (!this.#store.hasChannels(d.owner)) this.#registered.delete(d.owner);
        this.#counters.pruned++;
        this.#log.info({ ...base, code: outcome.code }, 'dead registration pruned');
        return;
      }
      case 'reject':
        this.#store.deleteDelivery(d);
        this.#counters.failed++;
        this.#log.warn({ ...base, code: outcome.code }, 'wake refused by the push service');
        return;
    }
  }

  #armNext(blockedUntil: number | undefined): void {
    if (!this.#started || this.#closed) return;
    const now = this.#clock.now();
    let at = this.#store.getNextDue();
    if (blockedUntil !== undefined) at = at === undefined ? blockedUntil : Math.max(at, blockedUntil);
    // Something due but not started waits for a push in flight to finish, which pumps again.
    if (at === undefined || (at <= now && this.#inFlight.size >= this.#config.pushMaxInFlight)) return;
    // Anything else still due (a push outliving its lease) is looked at again in a second, not in a spin.
    this.#arm(at <= now ? now + 1000 : at);
  }

  #arm(at: number): void {
    if (!this.#started || this.#closed) return;
    if (this.#timerAt !== undefined && this.#timerAt <= at) return;
    this.#cancelTimer?.();
    const delay = Math.min(Math.max(0, at - this.#clock.now()), MAX_TIMER_MS);
    this.#timerAt = this.#clock.now() + delay;
    this.#cancelTimer = this.#clock.setTimer(() => {
      this.#timerAt = undefined;
      this.#cancelTimer = undefined;
      this.#pump();
    }, delay);
  }
}
