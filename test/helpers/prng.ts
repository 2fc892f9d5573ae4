import { makeRandom } from '../../bench/lib/random.mjs';

/** Seeded random helpers (the repository's one PRNG, bench/lib/random.mjs) so fuzz and property tests replay exactly from their seed. */
export function createRng(seed: number) {
  const next = makeRandom(seed);
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    chance: (p: number) => next() < p,
    subset: <T>(xs: readonly T[], max: number): T[] => {
      const n = 1 + Math.floor(next() * Math.min(max, xs.length));
      const out = new Set<T>();
      while (out.size < n) out.add(xs[Math.floor(next() * xs.length)]!);
      return [...out];
    },
  };
}
