/** Backoff settings for push retries. */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/**
 * Delay before retry number `attempt` (1 for the first retry): full jitter over an exponentially
 * growing window, never shorter than the server's Retry-After.
 */
export function getRetryDelay(attempt: number, options: BackoffOptions, random: () => number, retryAfterMs?: number): number {
  const window = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  const jittered = Math.floor(random() * window);
  return Math.max(jittered, retryAfterMs ?? 0);
}

/** Milliseconds to wait from a Retry-After header (delta-seconds or HTTP date); undefined when absent or malformed. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const s = v.trim();
  if (/^\d{1,10}$/.test(s)) return Number(s) * 1000;
  const at = Date.parse(s);
  if (Number.isNaN(at) || !/[a-z]/i.test(s)) return undefined;
  return Math.max(0, at - now);
}

/** A token bucket: `take()` succeeds at most `perSecond` times per second on average, with that burst. */
export class TokenBucket {
  readonly #perMs: number;
  readonly #capacity: number;
  #tokens: number;
  #at: number;

  constructor(perSecond: number, now: number) {
    this.#perMs = perSecond / 1000;
    this.#capacity = perSecond;
    this.#tokens = perSecond;
    this.#at = now;
  }

  /** Takes one token if available. */
  take(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is available (0 when one is). */
  waitMs(now: number): number {
    this.#refill(now);
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) / this.#perMs);
  }

  #refill(now: number): void {
    if (now > this.#at) {
      this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#at) * this.#perMs);
      this.#at = now;
    }
  }
}
