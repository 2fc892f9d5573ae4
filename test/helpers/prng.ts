/** A small seeded PRNG (mulberry32) so fuzz and property tests replay exactly from their seed. */
export function createRng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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
