import { describe, expect, it } from 'vitest';
import { createRandomPool } from '../../relay/app.js';

describe('createRandomPool', () => {
  it('hands out each drawn byte once, across refills', () => {
    const random = createRandomPool(64);
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const b = random(16);
      expect(b.length).toBe(16);
      seen.add(b.toString('hex'));
    }
    expect(seen.size).toBe(40);
  });

  it('keeps what it returned when the pool moves on', () => {
    const random = createRandomPool(32);
    const a = random(16);
    const copy = Buffer.from(a);
    random(16);
    random(16);
    expect(a.equals(copy)).toBe(true);
    expect(a.equals(Buffer.alloc(16))).toBe(false);
  });

  it('draws requests larger than the pool directly', () => {
    expect(createRandomPool(16)(100).length).toBe(100);
  });
});
