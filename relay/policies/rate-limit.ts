import { makeReason } from '../../shared/reason.js';
import type { RejectEvent, RejectFilter } from './types.js';

const MINUTE_MS = 60_000;

/** An IPv4 client seen through a dual-stack socket (`::ffff:1.2.3.4`) as plain IPv4, so lists and limits key it once. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets keyed by a string (an IP, a pubkey): each holds up to `perMinute` tokens and
 * refills at `perMinute` per minute, so a key may burst one minute's worth and then keeps that pace.
 * The clock is injected; the number of keys is bounded (idle, full buckets are forgotten first).
 */
export class TokenBuckets {
  readonly #buckets = new Map<string, Bucket>();
  readonly #perMinute: number;
  readonly #nowMs: () => number;
  readonly #maxKeys: number;

  constructor(perMinute: number, nowMs: () => number, maxKeys = 100_000) {
    this.#perMinute = perMinute;
    this.#nowMs = nowMs;
    this.#maxKeys = maxKeys;
  }

  /** Tokens per minute (and the bucket size). */
  get perMinute(): number {
    return this.#perMinute;
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  #refill(key: string): Bucket {
    const now = this.#nowMs();
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= this.#maxKeys) this.#evict(now);
      b = { tokens: this.#perMinute, at: now };
      this.#buckets.set(key, b);
      return b;
    }
    const elapsed = Math.max(0, now - b.at);
    b.tokens = Math.min(this.#perMinute, b.tokens + (elapsed * this.#perMinute) / MINUTE_MS);
    b.at = now;
    return b;
  }

  #evict(now: number): void {
    // Buckets that would be full again carry no information: drop those first, then the oldest.
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) * this.#perMinute) / MINUTE_MS >= this.#perMinute) this.#buckets.delete(key);
    }
    for (const key of this.#buckets.keys()) {
      if (this.#buckets.size < this.#maxKeys) break;
      this.#buckets.delete(key);
    }
  }

  /** Takes one token if there is one; false means the key is over its rate. */
  take(key: string): boolean {
    const b = this.#refill(key);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** True when the key has a token, without taking it. */
  has(key: string): boolean {
    return this.#refill(key).tokens >= 1;
  }

  /**
   * Takes a token after the fact, going into debt (down to one bucket's worth) when there is none,
   * so work admitted concurrently with {@link has} is still paid for.
   */
  charge(key: string): void {
    const b = this.#refill(key);
    b.tokens = Math.max(-this.#perMinute, b.tokens - 1);
  }
}

/** Whether `ip` (IPv4, IPv6 or IPv4-mapped IPv6) is a loopback address. */
export function isLoopbackIp(ip: string): boolean {
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return v4.startsWith('127.') || ip === '::1';
}

/** Per-minute rates; 0 turns one off. */
export interface RateLimits {
  connectionsPerIp: number;
  /** Replaces `connectionsPerIp` for loopback addresses: local agents are the operator's own processes. */
  connectionsPerLoopback: number;
  eventsPerIp: number;
  eventsPerPubkey: number;
  reqsPerIp: number;
  reqsPerPubkey: number;
}

/** The relay's rate limits: one set of buckets per rate, sharing an injected clock. */
export class RateLimiter {
  readonly limits: Readonly<RateLimits>;
  readonly #connIp: TokenBuckets | undefined;
  readonly #connLoopback: TokenBuckets | undefined;
  readonly #eventIp: TokenBuckets | undefined;
  readonly #eventPubkey: TokenBuckets | undefined;
  readonly #reqIp: TokenBuckets | undefined;
  readonly #reqPubkey: TokenBuckets | undefined;

  constructor(limits: RateLimits, nowMs: () => number) {
    this.limits = Object.freeze({ ...limits });
    const make = (n: number) => (n > 0 ? new TokenBuckets(n, nowMs) : undefined);
    this.#connIp = make(limits.connectionsPerIp);
    this.#connLoopback = make(limits.connectionsPerLoopback);
    this.#eventIp = make(limits.eventsPerIp);
    this.#eventPubkey = make(limits.eventsPerPubkey);
    this.#reqIp = make(limits.reqsPerIp);
    this.#reqPubkey = make(limits.reqsPerPubkey);
  }

  /** A reason to refuse a new connection from `ip`, or undefined (takes a token). */
  admitConnection(ip: string): string | undefined {
    const loopback = isLoopbackIp(ip);
    const buckets = loopback ? this.#connLoopback : this.#connIp;
    if (buckets && !buckets.take(ip)) {
      const n = loopback ? this.limits.connectionsPerLoopback : this.limits.connectionsPerIp;
      return makeReason('rate-limited', `more than ${n} new connections per minute from your address`);
    }
    return undefined;
  }

  /** A reason to refuse an EVENT, or undefined: takes an IP token; checks (without taking) the author's. */
  admitEvent(ip: string, pubkey: string): string | undefined {
    if (this.#eventIp && !this.#eventIp.take(ip)) {
      return makeReason('rate-limited', `more than ${this.limits.eventsPerIp} events per minute from your address`);
    }
    if (this.#eventPubkey && !this.#eventPubkey.has(pubkey)) {
      return makeReason('rate-limited', `more than ${this.limits.eventsPerPubkey} events per minute from this author`);
    }
    return undefined;
  }

  /** Charges the author of a stored (hence verified) event, so forged events cannot drain someone else's bucket. */
  chargeAuthor(pubkey: string): void {
    this.#eventPubkey?.charge(pubkey);
  }

  /** A reason to refuse a REQ or COUNT, or undefined: takes a token for the IP and each authenticated pubkey. */
  admitReq(ip: string, authed: ReadonlySet<string>): string | undefined {
    if (this.#reqIp && !this.#reqIp.take(ip)) {
      return makeReason('rate-limited', `more than ${this.limits.reqsPerIp} subscriptions and counts per minute from your address`);
    }
    if (this.#reqPubkey) {
      for (const pk of authed) {
        if (!this.#reqPubkey.take(pk)) {
          return makeReason('rate-limited', `more than ${this.limits.reqsPerPubkey} subscriptions and counts per minute for this pubkey`);
        }
      }
    }
    return undefined;
  }
}

/** Refuses EVENTs over the per-IP or per-author rate (`rate-limited:`). */
export function rejectEventRate(limiter: RateLimiter): RejectEvent {
  return function rejectEventRate(ev, ctx) {
    return limiter.admitEvent(normalizeIp(ctx.ip), ev.pubkey);
  };
}

/** Refuses REQs and COUNTs over the per-IP or per-authenticated-pubkey rate (`rate-limited:`). */
export function rejectFilterRate(limiter: RateLimiter): RejectFilter {
  return function rejectFilterRate(_filters, ctx) {
    return limiter.admitReq(normalizeIp(ctx.ip), ctx.authed);
  };
}
