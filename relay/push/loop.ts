import type { Logger } from 'pino';
import { isPending, type MaybePromise } from '../store/types.js';
import { TokenBucket } from './backoff.js';
import type { PushStats, PushWakeConfig, WakeTracing } from './wake.js';
import {
  countDrop,
  decideWakeRelease,
  getDropReason,
  getPushKey,
  makeWakeCounters,
  makeWakeHint,
  planRetry,
  type DuePush,
  type WakeCounters,
  type WakeRelease,
  type WakeWindow,
} from './rules.js';
import type { PushClock, SendOutcome, WakeSenders } from './types.js';

const MAX_TIMER_MS = 60_000;
const RELEASE_BATCH = 256;

/** A due wake of one agent, as a queue store hands it to the loop. */
export interface DueWake {
  owner: string;
  seq: number;
  queuedAt: number;
}

/** What the loop decided for a due wake: dropped (the agent is online), held by the hourly cap, or released. */
export type WakeDecision = { kind: 'cancel' } | WakeRelease;

/** What the loop decided for a finished push; `prune` answers whether a registration was deleted. */
export type PushResult =
  | { kind: 'delete'; d: DuePush }
  | { kind: 'schedule'; d: DuePush; at: number; attempts: number }
  | { kind: 'prune'; d: DuePush; before: number };

/**
 * The rows of a wake queue. Each method answers now (SQLite, on the caller's turn, so the loop runs
 * without a turn of its own) or later (PostgreSQL); the loop waits only for answers still to come.
 */
export interface WakeQueueStore {
  /**
   * Takes up to `limit` due wakes (each by exactly one instance of a cluster), asks `decide` for each
   * with whether its agent is online and its hourly window, and applies the decision; answers how many
   * it took.
   */
  releaseDueWakes(now: number, limit: number, decide: (wake: DueWake, online: boolean, window: WakeWindow | undefined) => WakeDecision): MaybePromise<number>;
  /**
   * Claims up to `room` due pushes not in `inFlight`: each gets due at `leaseUntil` and one more
   * attempt, so no other pass sends it unless this one dies.
   */
  claimDue(now: number, room: number, leaseUntil: number, inFlight: { has(key: string): boolean; readonly size: number }): MaybePromise<DuePush[]>;
  /** Gives a claim back (over the global rate): due at `at`, the attempt not counted. */
  unclaim(d: DuePush, at: number): MaybePromise<void>;
  /** Whether the agent is online anywhere (its pushes are dropped). */
  isOnline(owner: string, now: number): MaybePromise<boolean>;
  /** Deletes a due push that will not be sent. */
  deleteDelivery(d: DuePush): MaybePromise<void>;
  /**
   * Records finished pushes together, with the store's own pending work (see {@link flush}); answers,
   * per result, whether a `prune` deleted the registration.
   */
  record(results: readonly PushResult[]): MaybePromise<boolean[]>;
  /** When the loop should look again (the earliest due row, or a poll), undefined when nothing is queued. */
  nextDue(now: number): number | undefined;
  /** Pending wakes and pushes (a shared store: as last counted by {@link refreshPending}). */
  pending(): { wakes: number; deliveries: number };
  /** Counts the pending rows again after each pass (a shared store, where others change them). */
  refreshPending?(): Promise<void>;
  /** Work the store wants done first in each pass and at close (wakes noted outside a transaction). */
  flush?(): void;
}

/** What the loop is built with. */
export interface WakeLoopDeps {
  store: WakeQueueStore;
  config: PushWakeConfig;
  log: Logger;
  senders: WakeSenders;
  clock: PushClock;
  random: () => number;
  relayPubkey: string;
  tracing?: WakeTracing;
  counters?: WakeCounters;
  /**
   * After a push finishes: pass again on the next turn (true: results and due work in one commit), or
   * only record the result (a shared store, which is polled).
   */
  passOnResult: boolean;
}

/** What the loop makes of a finished push. */
interface Plan {
  result: PushResult;
  retryAt?: number;
  delayMs?: number;
  giveUp?: boolean;
}

/**
 * The wake queue's scheduling and send loop, one for every store: each pass records finished pushes,
 * releases due wakes under the per-agent caps, claims due pushes up to the in-flight cap, drops those
 * that can no longer be sent, spends the global send rate and starts the rest; then sets its timer
 * for the next due row.
 */
export class WakeLoop {
  readonly counters: WakeCounters;
  readonly #store: WakeQueueStore;
  readonly #config: PushWakeConfig;
  readonly #log: Logger;
  readonly #senders: WakeSenders;
  readonly #clock: PushClock;
  readonly #random: () => number;
  readonly #relayPubkey: string;
  readonly #tracing: WakeTracing | undefined;
  readonly #bucket: TokenBucket;
  readonly #leaseMs: number;
  readonly #inFlight = new Map<string, Promise<void>>();
  #settled: Array<{ d: DuePush; attempt: number; outcome: SendOutcome }> = [];
  #recording: Promise<void> | undefined;
  #flushScheduled = false;
  readonly #passOnResult: boolean;
  #pumping: Promise<void> | undefined;
  #passing = false;
  #started = false;
  #closed = false;
  #timerAt: number | undefined;
  #cancelTimer: (() => void) | undefined;

  constructor(deps: WakeLoopDeps) {
    this.#store = deps.store;
    this.#config = deps.config;
    this.#log = deps.log;
    this.#senders = deps.senders;
    this.#clock = deps.clock;
    this.#random = deps.random;
    this.#relayPubkey = deps.relayPubkey;
    this.#tracing = deps.tracing;
    this.counters = deps.counters ?? makeWakeCounters();
    this.#passOnResult = deps.passOnResult;
    this.#bucket = new TokenBucket(deps.config.pushGlobalSendsPerSecond, this.#clock.now());
    // A claimed push is not sent again before both libraries' request timeouts (firebase-admin: 15 s) have passed.
    this.#leaseMs = 2 * Math.max(deps.config.pushRequestTimeoutMs, 15_000);
  }

  /** Pushes in flight now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Starts pumping: now, or (`delayed`) at the first timer. */
  start(delayed = false): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    if (delayed) this.arm(this.#clock.now());
    else void this.pump();
  }

  /** Pumps until nothing is due and nothing is in flight (tests, shutdown). */
  async runDue(): Promise<void> {
    for (;;) {
      await this.pump();
      // The pass joined may have begun before the last push finished (a timer's): its result is recorded here.
      const flushed = this.flush();
      if (isPending(flushed)) await flushed;
      if (this.#inFlight.size === 0 && this.#settled.length === 0) break;
      await Promise.all(this.#inFlight.values());
    }
    const counted = this.#store.refreshPending?.();
    if (counted) await counted;
  }

  /** One pass, single flight; with a store that answers at once it has run when this returns. */
  pump(): Promise<void> {
    if (this.#pumping) return this.#pumping;
    this.#passing = true;
    const p = this.#pass();
    // A pass that never waited is over already (#passing cleared): the next call runs a new one.
    if (this.#passing) {
      const running = p.finally(() => {
        if (this.#pumping === running) this.#pumping = undefined;
      });
      this.#pumping = running;
      return running;
    }
    return p;
  }

  /** Records finished pushes and the store's own pending work (in one commit where the store can). */
  flush(): MaybePromise<void> {
    if (this.#settled.length === 0) {
      this.#store.flush?.();
      return this.#recording;
    }
    const settled = this.#settled;
    this.#settled = [];
    const now = this.#clock.now();
    const results = settled.map((s) => this.#plan(s.d, s.attempt, s.outcome, now));
    const apply = (pruned: boolean[]) => {
      for (let i = 0; i < results.length; i++) this.#report(results[i]!, settled[i]!, pruned[i] ?? false);
    };
    const failed = (err: unknown) => this.#log.error({ err, results: settled.length }, 'recording push state failed');
    let answer: MaybePromise<boolean[]>;
    try {
      answer = this.#store.record(results.map((r) => r.result));
    } catch (err) {
      failed(err);
      return;
    }
    if (!isPending(answer)) return apply(answer);
    const p = answer.then(apply, failed).finally(() => {
      if (this.#recording === p) this.#recording = undefined;
    });
    this.#recording = p;
    return p;
  }

  /** Stops the timers and waits for the pass and the pushes in flight; records their results. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    await this.#pumping;
    await Promise.all(this.#inFlight.values());
    await this.flush();
  }

  /** Sets the timer to pass at `at` at the latest. */
  arm(at: number): void {
    if (!this.#started || this.#closed) return;
    if (this.#timerAt !== undefined && this.#timerAt <= at) return;
    this.#cancelTimer?.();
    const delay = Math.min(Math.max(0, at - this.#clock.now()), MAX_TIMER_MS);
    this.#timerAt = this.#clock.now() + delay;
    this.#cancelTimer = this.#clock.setTimer(() => {
      this.#timerAt = undefined;
      this.#cancelTimer = undefined;
      void this.pump();
    }, delay);
  }

  /** Queues a flush (and, once started, a pass) for the next turn: one commit for a tick's worth. */
  scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      if (this.#closed) return; // close() flushes on its own, before the database goes away
      if (this.#started && this.#passOnResult) void this.pump();
      else void this.flush();
    });
  }

  /** Pending counts and counters. */
  stats(): PushStats {
    const p = this.#store.pending();
    return { ...this.counters, pendingWakes: p.wakes, pendingDeliveries: p.deliveries, inFlight: this.#inFlight.size };
  }

  async #pass(): Promise<void> {
    let blockedUntil: number | undefined;
    try {
      const flushed = this.flush();
      if (isPending(flushed)) await flushed;
      if (this.#closed) return;
      const now = this.#clock.now();
      for (;;) {
        let n = this.#store.releaseDueWakes(now, RELEASE_BATCH, (w, online, window) => this.#decide(w, online, window, now));
        if (isPending(n)) n = await n;
        if (n < RELEASE_BATCH) break;
      }
      // Claims until the in-flight cap is reached, nothing more is due or the global rate runs out
      // (pushes dropped unsent leave room for more).
      for (;;) {
        const room = this.#config.pushMaxInFlight - this.#inFlight.size;
        if (room <= 0 || blockedUntil !== undefined) break;
        let claimed = this.#store.claimDue(now, room, now + this.#leaseMs, this.#inFlight);
        if (isPending(claimed)) claimed = await claimed;
        for (const d of claimed) {
          let online: MaybePromise<boolean> | undefined = d.target ? this.#store.isOnline(d.owner, now) : undefined;
          if (isPending(online)) online = await online;
          const why = getDropReason(d, online, now, this.#config, this.#senders);
          if (why) {
            const r = this.#store.deleteDelivery(d);
            if (isPending(r)) await r;
            countDrop(this.counters, why);
            this.#log.info({ agent: d.owner, platform: d.platform, why }, 'wake dropped');
            continue;
          }
          if (!this.#bucket.take(now)) {
            // Over the global rate: the claim goes back, due when a token is.
            blockedUntil = now + this.#bucket.waitMs(now);
            const r = this.#store.unclaim(d, blockedUntil);
            if (isPending(r)) await r;
            continue;
          }
          this.#startSend(d, now);
        }
        if (claimed.length < room) break;
      }
      const counted = this.#store.refreshPending?.();
      if (counted) await counted;
    } catch (err) {
      if (!this.#closed) this.#log.error({ err }, 'push queue pass failed');
    } finally {
      this.#passing = false;
    }
    this.#armNext(blockedUntil);
  }

  #decide(w: DueWake, online: boolean, window: WakeWindow | undefined, now: number): WakeDecision {
    if (online) {
      this.counters.cancelled++;
      return { kind: 'cancel' };
    }
    const release = decideWakeRelease(window, now, this.#config.pushAgentWakesPerHour);
    if (release.kind === 'hold') {
      this.counters.rateLimited++;
      this.#log.info({ agent: w.owner, until: release.until }, 'wake held by the per-agent cap');
    }
    return release;
  }

  #startSend(d: DuePush, now: number): void {
    const attempt = d.attempts + 1;
    const sender = this.#senders[d.platform]!;
    const hint = makeWakeHint(d, now, this.#config, this.#relayPubkey);
    const key = getPushKey(d);
    const traced = this.#tracing?.enabled ? this.#tracing.wakeSend(d.seq, d.platform) : undefined;
    const p = sender
      .send(d.target!, hint)
      .catch((): SendOutcome => ({ kind: 'retry', code: 'sender:exception' }))
      .then((outcome) => {
        traced?.(outcome.kind);
        this.#inFlight.delete(key);
        this.#settled.push({ d, attempt, outcome });
        this.scheduleFlush();
      });
    this.#inFlight.set(key, p);
  }

  #plan(d: DuePush, attempt: number, outcome: SendOutcome, now: number): Plan {
    switch (outcome.kind) {
      case 'sent':
      case 'reject':
        return { result: { kind: 'delete', d } };
      case 'retry': {
        const plan = planRetry(d, attempt, outcome, now, this.#config, this.#random);
        if (plan.kind === 'give-up') return { result: { kind: 'delete', d }, giveUp: true };
        return { result: { kind: 'schedule', d, at: plan.at, attempts: attempt }, retryAt: plan.at, delayMs: plan.delayMs };
      }
      case 'prune':
        return { result: { kind: 'prune', d, before: outcome.unregisteredAt ?? Number.MAX_SAFE_INTEGER } };
    }
  }

  #report(plan: Plan, s: { d: DuePush; attempt: number; outcome: SendOutcome }, pruned: boolean): void {
    const { d, attempt, outcome } = s;
    const base = { agent: d.owner, platform: d.platform, attempt };
    switch (outcome.kind) {
      case 'sent':
        this.counters.sent++;
        this.#log.info({ ...base, seq: d.seq }, 'wake sent');
        return;
      case 'retry':
        if (plan.giveUp) {
          this.counters.failed++;
          this.#log.warn({ ...base, code: outcome.code }, 'wake given up');
          return;
        }
        this.counters.retried++;
        this.#log.info({ ...base, code: outcome.code, delayMs: plan.delayMs, retryAfterMs: outcome.retryAfterMs }, 'wake will be retried');
        this.arm(plan.retryAt!);
        return;
      case 'prune':
        if (!pruned) {
          // Apple's timestamp predates the registration: the device registered this token again since.
          this.counters.failed++;
          this.#log.warn({ ...base, code: outcome.code }, 'token reported dead before its latest registration; kept');
          return;
        }
        this.counters.pruned++;
        this.#log.info({ ...base, code: outcome.code }, 'dead registration pruned');
        return;
      case 'reject':
        this.counters.failed++;
        this.#log.warn({ ...base, code: outcome.code }, 'wake refused by the push service');
        return;
    }
  }

  #armNext(blockedUntil: number | undefined): void {
    if (!this.#started || this.#closed) return;
    const now = this.#clock.now();
    let at = this.#store.nextDue(now);
    if (blockedUntil !== undefined) at = at === undefined ? blockedUntil : Math.max(at, blockedUntil);
    // Something due but not started waits for a push in flight to finish, which pumps again.
    if (at === undefined || (at <= now && this.#inFlight.size >= this.#config.pushMaxInFlight)) return;
    // Anything else still due (a push outliving its lease) is looked at again in a second, not in a spin.
    this.arm(at <= now ? now + 1000 : at);
  }
}
