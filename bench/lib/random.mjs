// The one seeded PRNG of the repository (mulberry32): bench data sets and the tests' fuzz and property
// runs (test/helpers/prng.ts) replay exactly from their seed.

/** A seeded PRNG; returns a function giving floats in [0, 1). */
export function makeRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
