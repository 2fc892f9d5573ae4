import type { Logger } from 'pino';
import type { RateExchange, SharedRateStore } from '../store/types.js';
import type { MakeRateBuckets, RateBuckets, RateName } from './rate-limit.js';

/** How often each instance exchanges with the shared budget. */
export const RATE_EXCHANGE_MS = 250;
/** An instance that has not exchanged for this long no longer counts as alive (its credit is forgotten). */
const ALIVE_MS = 2_000;
/** A key unused here this long is forgotten (what it holds goes back): it starts afresh, with credit. */
const IDLE_MS = 60_000;

/** The credit an instance may spend on a key between two exchanges, out of `perMinute`, when `instances` are alive. */
export function getRateCredit(perMinute: number, instances: number): number {
  return Math.max(1, Math.ceil(perMinute / (4 * instances * instances)));
}

/** One key's share on this instance. */
interface Share {
  /** Tokens granted by the shared bucket, not spent. */
  lease: number;
  /** Tokens this instance may still spend on credit before its next exchange. */
  credit: number;
  /** Credit spent, to be charged at the next exchange. */
  owed: number;
  /** Tokens taken since the last exchange (the demand). */
  used: number;
  /** A token was refused since the last exchange (ask for a lease). */
  refused: boolean;
  lastUse: number;
  /** The exchange on its way: what it charges and gives back (restored if it fails). */
  sent?: { charge: number; lease: number };
}

/**
 * One rate's buckets spent from budgets shared by every instance of a cluster. Each key's budget is a
 * token bucket in the shared store; this instance spends, on its own turn and without a round trip,
 * from a lease the bucket granted at the last exchange and from a small credit (`s`, see
 * {@link getRateCredit}) charged at the next one. Credit is renewed only while the bucket held at least
 * the credit of every instance (`N·s`, which grants never take), so credit spent on stale news is
 * always covered: see docs/limits.md for the bound.
 */
export class SharedBuckets implements RateBuckets {
  readonly perMinute: number;
  readonly name: RateName;
  readonly #shares = new Map<string, Share>();
  readonly #budget: SharedRateBudget;
  readonly #maxKeys: number;

  constructor(name: RateName, perMinute: number, budget: SharedRateBudget, maxKeys = 100_000) {
    this.name = name;
    this.perMinute = perMinute;
    this.#budget = budget;
    this.#maxKeys = maxKeys;
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.#shares.size;
  }

  /** The credit of one exchange interval with the instances now alive. */
  get credit(): number {
    return getRateCredit(this.perMinute, this.#budget.instances);
  }

  #get(key: string): Share {
    let s = this.#shares.get(key);
    if (!s) {
      if (this.#shares.size >= this.#maxKeys) this.#evict();
      s = { lease: 0, credit: this.credit, owed: 0, used: 0, refused: false, lastUse: this.#budget.nowMs() };
      this.#shares.set(key, s);
    }
    return s;
  }

  #evict(): void {
    // Keys holding nothing first; then the oldest (their lease is lost to the cluster until it refills).
    for (const [key, s] of this.#shares) if (s.lease < 1 && s.owed === 0 && !s.sent) this.#shares.delete(key);
    for (const key of this.#shares.keys()) {
      if (this.#shares.size < this.#maxKeys) break;
      this.#shares.delete(key);
    }
  }

  take(key: string): boolean {
    const s = this.#get(key);
    if (s.lease >= 1) s.lease -= 1;
    else if (s.credit >= 1) {
      s.credit -= 1;
      s.owed += 1;
    } else {
      s.refused = true;
      return false;
    }
    s.used += 1;
    s.lastUse = this.#budget.nowMs();
    return true;
  }

  has(key: string): boolean {
    const s = this.#shares.get(key);
    if (!s) return true;
    if (s.lease >= 1 || s.credit >= 1) return true;
    s.refused = true;
    return false;
  }

  refund(key: string): void {
    const s = this.#shares.get(key);
    if (!s) return;
    // Into the lease, whichever the token came from: the lease goes back to the bucket at the next
    // exchange, and credit spent stays charged (credit + owed never exceeds the covered credit).
    s.lease += 1;
    s.used = Math.max(0, s.used - 1);
  }

  /** Adds this rate's rows to an exchange (`all`: give everything back, at close). */
  collect(rows: RateExchange[], keys: Array<[SharedBuckets, string]>, nowMs: number, all: boolean): void {
    const credit = this.credit;
    const reserve = this.#budget.instances * credit;
    for (const [key, s] of this.#shares) {
      const idle = all || nowMs - s.lastUse > IDLE_MS;
      const wanted = !idle && (s.used > 0 || s.refused);
      // Out of credit: looked at again every interval (want 0), so credit comes back once the bucket refills.
      const watch = !idle && s.credit < 1;
      if (!wanted && !watch && s.lease < 1 && s.owed === 0) {
        if (idle) this.#shares.delete(key);
        continue;
      }
      const want = wanted ? Math.min(this.perMinute, Math.max(credit, 2 * s.used)) : 0;
      rows.push({ bucket: this.name, key, cap: this.perMinute, charge: s.owed, back: s.lease, want, reserve });
      keys.push([this, key]);
      // What goes back is no longer spendable here: meanwhile this instance spends credit only.
      s.sent = { charge: s.owed, lease: s.lease };
      s.lease = 0;
      s.owed = 0;
      s.used = 0;
      s.refused = false;
      if (idle) this.#shares.delete(key);
    }
  }

  /** Applies a key's answer: the new lease (plus refunds meanwhile); credit renewed if the bucket covers it. */
  settle(key: string, granted: number, tokens: number): void {
    const s = this.#shares.get(key);
    if (!s?.sent) return;
    s.sent = undefined;
    s.lease += granted;
    const credit = this.credit;
    s.credit = tokens >= this.#budget.instances * credit ? Math.max(0, credit - s.owed) : 0;
  }

  /** Undoes a key's part of a failed exchange (nothing was charged or given back). */
  unsent(key: string): void {
    const s = this.#shares.get(key);
    if (!s?.sent) return;
    s.owed += s.sent.charge;
    s.lease += s.sent.lease;
    s.sent = undefined;
  }
}

/** Settings of a cluster-wide rate budget. */
export interface SharedRateBudgetOptions {
  store: SharedRateStore;
  /** Milliseconds since the epoch. */
  nowMs: () => number;
  /** Between exchanges (default {@link RATE_EXCHANGE_MS}); 0: only when `exchange` is called (tests). */
  intervalMs?: number;
  log?: Pick<Logger, 'warn'>;
}

/**
 * The rate budgets of every instance on one shared store: makes each rate's {@link SharedBuckets} and
 * exchanges all their keys with the store in one transaction every 250 ms, in the background.
 */
export class SharedRateBudget {
  readonly nowMs: () => number;
  readonly #store: SharedRateStore;
  readonly #rates: SharedBuckets[] = [];
  readonly #log: Pick<Logger, 'warn'> | undefined;
  #instances = 1;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastWarn = 0;

  private constructor(opts: SharedRateBudgetOptions) {
    this.#store = opts.store;
    this.nowMs = opts.nowMs;
    this.#log = opts.log;
  }

  /** Counts the instances alive (one exchange) and starts exchanging every interval. */
  static async open(opts: SharedRateBudgetOptions): Promise<SharedRateBudget> {
    const budget = new SharedRateBudget(opts);
    await budget.exchange();
    const every = opts.intervalMs ?? RATE_EXCHANGE_MS;
    if (every > 0) {
      budget.#timer = setInterval(() => void budget.exchange(), every);
      budget.#timer.unref();
    }
    return budget;
  }

  /** Instances alive at the last exchange (this one included). */
  get instances(): number {
    return this.#instances;
  }

  /** Makes one rate's buckets, spent from this budget. */
  readonly makeBuckets: MakeRateBuckets = (name, perMinute) => {
    const b = new SharedBuckets(name, perMinute, this);
    this.#rates.push(b);
    return b;
  };

  /** One exchange of every key with the store (skipped while one is on its way). */
  exchange(all = false): Promise<void> {
    this.#running ??= this.#exchange(all).finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #exchange(all: boolean): Promise<void> {
    const now = this.nowMs();
    const rows: RateExchange[] = [];
    const keys: Array<[SharedBuckets, string]> = [];
    for (const rate of this.#rates) rate.collect(rows, keys, now, all);
    try {
      const r = await this.#store.exchange(rows, now, ALIVE_MS);
      this.#instances = r.instances;
      for (let i = 0; i < keys.length; i++) keys[i]![0].settle(keys[i]![1], r.granted[i]!, r.tokens[i]!);
    } catch (err) {
      for (const [rate, key] of keys) rate.unsent(key);
      if (now - this.#lastWarn > 60_000) {
        this.#lastWarn = now;
        this.#log?.warn({ err }, 'shared rate budget exchange failed (retried every interval; credit and leases only meanwhile)');
      }
    }
  }

  /** Stops exchanging and gives back every lease (charging credit spent). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
    await this.exchange(true);
  }
}
