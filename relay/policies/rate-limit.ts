import type { NostrEvent } from '../../shared/event.js';
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

/** One rate's buckets, keyed by an IP or a pubkey: what the limiter needs from them, local or cluster-wide. */
export interface RateBuckets {
  /** Tokens per minute (and the bucket size). */
  readonly perMinute: number;
  /** Takes one token if there is one; false means the key is over its rate. */
  take(key: string): boolean;
  /** True when the key has a token, without taking it. */
  has(key: string): boolean;
  /** Gives back a token taken for work that turned out not to be the key's. */
  refund(key: string): void;
}

/** The rates of {@link RateLimits}, by the names NIP-11 advertises them under. */
export type RateName =
  | 'connections_per_ip'
  | 'connections_per_loopback'
  | 'events_per_ip'
  | 'events_per_pubkey'
  | 'reqs_per_ip'
  | 'reqs_per_pubkey'
  | 'http_requests_per_ip';

/** Makes the buckets of one rate (the default: {@link TokenBuckets}, local to this process). */
export type MakeRateBuckets = (name: RateName, perMinute: number) => RateBuckets;

/**
 * Token buckets keyed by a string (an IP, a pubkey): each holds up to `perMinute` tokens and
 * refills at `perMinute` per minute, so a key may burst one minute's worth and then keeps that pace.
 * The clock is injected; the number of keys is bounded (idle, full buckets are forgotten first).
 */
export class TokenBuckets implements RateBuckets {
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

  /** Gives back a token taken for work that turned out not to be the key's (never above a full bucket). */
  refund(key: string): void {
    const b = this.#refill(key);
    b.tokens = Math.min(this.#perMinute, b.tokens + 1);
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
  /** Plain HTTP requests (every route but the WebSocket upgrade, which `connectionsPerIp` covers). */
  httpPerIp: number;
}

/**
 * The relay's rate limits: one set of buckets per rate, sharing an injected clock. Every bucket is charged at
 * admission, in the same synchronous step as the check, and a refusal takes nothing from any bucket: a burst can
 * never be admitted beyond what the buckets hold, however much of it is still being verified or stored.
 */
export class RateLimiter {
  readonly limits: Readonly<RateLimits>;
  readonly #connIp: RateBuckets | undefined;
  readonly #connLoopback: RateBuckets | undefined;
  readonly #eventIp: RateBuckets | undefined;
  readonly #eventPubkey: RateBuckets | undefined;
  readonly #reqIp: RateBuckets | undefined;
  readonly #reqPubkey: RateBuckets | undefined;
  readonly #httpIp: RateBuckets | undefined;
  /** Admitted events whose author was charged before the signature was checked. */
  readonly #chargedAuthor = new WeakSet<NostrEvent>();

  /**
   * `makeBuckets` makes each rate's buckets (default: local token buckets; a cluster passes buckets
   * that spend from a budget shared by every instance).
   */
  constructor(limits: RateLimits, nowMs: () => number, makeBuckets?: MakeRateBuckets) {
    this.limits = Object.freeze({ ...limits });
    const factory = makeBuckets ?? ((_name: RateName, n: number) => new TokenBuckets(n, nowMs));
    const make = (name: RateName, n: number) => (n > 0 ? factory(name, n) : undefined);
    this.#connIp = make('connections_per_ip', limits.connectionsPerIp);
    this.#connLoopback = make('connections_per_loopback', limits.connectionsPerLoopback);
    this.#eventIp = make('events_per_ip', limits.eventsPerIp);
    this.#eventPubkey = make('events_per_pubkey', limits.eventsPerPubkey);
    this.#reqIp = make('reqs_per_ip', limits.reqsPerIp);
    this.#reqPubkey = make('reqs_per_pubkey', limits.reqsPerPubkey);
    this.#httpIp = make('http_requests_per_ip', limits.httpPerIp);
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

  /** A reason to refuse a plain HTTP request from `ip`, or undefined (takes a token). */
  admitHttp(ip: string): string | undefined {
    if (this.#httpIp && !this.#httpIp.take(ip)) {
      return makeReason('rate-limited', `more than ${this.limits.httpPerIp} HTTP requests per minute from your address`);
    }
    return undefined;
  }

  /**
   * A reason to refuse an EVENT, or undefined after taking a token from both the IP's and the author's bucket.
   * The author's token is given back by {@link releaseAuthor} if the event ends without its signature verified.
   */
  admitEvent(ip: string, event: NostrEvent): string | undefined {
    if (this.#eventIp && !this.#eventIp.has(ip)) {
      return makeReason('rate-limited', `more than ${this.limits.eventsPerIp} events per minute from your address`);
    }
    if (this.#eventPubkey && !this.#eventPubkey.has(event.pubkey)) {
      return makeReason('rate-limited', `more than ${this.limits.eventsPerPubkey} events per minute from this author`);
    }
    this.#eventIp?.take(ip);
    if (this.#eventPubkey?.take(event.pubkey)) this.#chargedAuthor.add(event);
    return undefined;
  }

  /**
   * Refunds the author of an admitted event that was not proven theirs (refused before or by the signature check) or
   * was already stored: anyone can forge or replay an author's events, and that must not drain the author's budget.
   * The IP's token is kept. A no-op for an event this limiter did not charge.
   */
  releaseAuthor(event: NostrEvent): void {
    if (!this.#chargedAuthor.delete(event)) return;
    this.#eventPubkey?.refund(event.pubkey);
  }

  /** A reason to refuse a REQ or COUNT, or undefined after taking a token for the IP and each authenticated pubkey. */
  admitReq(ip: string, authed: ReadonlySet<string>): string | undefined {
    if (this.#reqIp && !this.#reqIp.has(ip)) {
      return makeReason('rate-limited', `more than ${this.limits.reqsPerIp} subscriptions and counts per minute from your address`);
    }
    if (this.#reqPubkey) {
      for (const pk of authed) {
        if (!this.#reqPubkey.has(pk)) {
          return makeReason('rate-limited', `more than ${this.limits.reqsPerPubkey} subscriptions and counts per minute for this pubkey`);
        }
      }
    }
    this.#reqIp?.take(ip);
    if (this.#reqPubkey) for (const pk of authed) this.#reqPubkey.take(pk);
    return undefined;
  }
}

/** Refuses EVENTs over the per-IP or per-author rate (`rate-limited:`); replicated history is not paced. */
export function rejectEventRate(limiter: RateLimiter): RejectEvent {
  return function rejectEventRate(ev, ctx) {
    if (ctx.replicated) return undefined;
    return limiter.admitEvent(normalizeIp(ctx.ip), ev);
  };
}

/** Refuses REQs and COUNTs over the per-IP or per-authenticated-pubkey rate (`rate-limited:`). */
export function rejectFilterRate(limiter: RateLimiter): RejectFilter {
  return function rejectFilterRate(_filters, ctx) {
    return limiter.admitReq(normalizeIp(ctx.ip), ctx.authed);
  };
}
