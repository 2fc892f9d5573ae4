/** Bucket upper bounds in seconds, shared by /metrics and the dashboard. */
export const LATENCY_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * A fixed-bucket latency histogram that can answer quantiles over a recent window: keep
 * {@link counts} snapshots and pass an older one to {@link quantile}.
 */
export class LatencyHistogram {
  readonly #counts: number[] = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);

  /** Records one observation, in seconds. */
  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    this.#counts[i]!++;
  }

  /** A copy of the per-bucket counts (the last one is +Inf). */
  counts(): number[] {
    return [...this.#counts];
  }

  /**
   * The q-quantile (0..1) in seconds of observations made since `since` (an earlier {@link counts}),
   * as the upper bound of the bucket holding it; undefined when there were none.
   */
  quantile(q: number, since?: readonly number[]): number | undefined {
    const d = this.#counts.map((c, i) => c - (since?.[i] ?? 0));
    const total = d.reduce((a, b) => a + b, 0);
    if (total === 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * total));
    let seen = 0;
    for (let i = 0; i < d.length; i++) {
      seen += d[i]!;
      if (seen >= rank) return i < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[i]! : Infinity;
    }
    return Infinity;
  }

  /** Observations made since `since`. */
  countSince(since?: readonly number[]): number {
    return this.#counts.reduce((a, c, i) => a + c - (since?.[i] ?? 0), 0);
  }
}
