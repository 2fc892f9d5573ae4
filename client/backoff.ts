/** Exponential backoff with full jitter: a random delay in [0, min(cap, base·2^attempt)]. */
export function getBackoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Timers, injected so tests and browsers can supply their own. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The platform timers. They keep a Node process alive: an agent runs until `close()`. */
export const systemTimers: Timers = {
  setTimeout(fn, ms) {
    return setTimeout(fn, ms);
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

/** Resolves after `ms` using the given timers. */
export function sleep(timers: Timers, ms: number): Promise<void> {
  return new Promise((resolve) => timers.setTimeout(resolve, ms));
}

/** Races a promise against a timer that is always cleared; the timeout rejects with `onTimeout()`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, timers: Timers, onTimeout: () => Error): Promise<T> {
  let handle: unknown;
  const timeout = new Promise<never>((_, reject) => {
    handle = timers.setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    timers.clearTimeout(handle);
  }
}
