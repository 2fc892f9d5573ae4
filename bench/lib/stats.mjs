// Latency histogram and small statistics helpers. The histogram has fixed logarithmic buckets
// (about 1% wide, 1 µs to ~17 min) so recording a sample never allocates.

const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const MIN_MS = 0.001;
const BUCKETS = 2100;

/** A fixed-size log-bucket latency histogram in milliseconds. */
export class Histogram {
  #counts = new Uint32Array(BUCKETS);
  #n = 0;
  #max = 0;

  /** Records one latency in milliseconds. */
  record(ms) {
    let i = ms <= MIN_MS ? 0 : Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH);
    if (i >= BUCKETS) i = BUCKETS - 1;
    this.#counts[i]++;
    this.#n++;
    if (ms > this.#max) this.#max = ms;
  }

  /** Number of recorded samples. */
  get count() {
    return this.#n;
  }

  /** The q-quantile (0..1) in milliseconds, or NaN when empty; upper bucket bound (≤1% high). */
  quantile(q) {
    if (this.#n === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.#n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i];
      if (seen >= rank) return Math.min(this.#max, MIN_MS * GROWTH ** i);
    }
    return this.#max;
  }
}

/** Median of the finite numbers in `values` (NaN when none). */
export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
