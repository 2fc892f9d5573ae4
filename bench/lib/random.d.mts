/** A seeded PRNG (mulberry32); returns a function giving floats in [0, 1). */
export declare function makeRandom(seed: number): () => number;
