import { describe, expect, test } from 'vitest';
import { getRetryDelay, parseRetryAfter, TokenBucket } from '../../../relay/push/backoff.js';

describe('retry delay', () => {
  const o = { baseMs: 1000, maxMs: 60_000 };
  test.each([
    // attempt, random, retryAfterMs, expected
    [1, 0, undefined, 0],
    [1, 0.5, undefined, 500],
    [1, 0.999, undefined, 999],
    [2, 0.5, undefined, 1000],
    [3, 0.5, undefined, 2000],
    [7, 0.5, undefined, 30_000],
    [8, 0.5, undefined, 30_000], // window capped at maxMs
    [50, 0.999, undefined, 59_940],
    [1, 0.5, 120_000, 120_000], // Retry-After wins when longer
    [5, 0.9, 2000, 14_400], // and backoff when longer
  ])('attempt %i, random %f, Retry-After %s → %i ms', (attempt, r, retryAfter, expected) => {
    expect(getRetryDelay(attempt, o, () => r, retryAfter)).toBe(expected);
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  test.each([
    ['120', 120_000],
    [' 0 ', 0],
    [['5', '9'], 5000],
    ['Wed, 01 Jan 2025 00:00:30 GMT', 30_000],
    ['Tue, 31 Dec 2024 23:59:00 GMT', 0],
    [undefined, undefined],
    ['soon', undefined],
    ['-5', undefined],
    ['1.5', undefined],
  ] as const)('%j → %s', (value, expected) => {
    expect(parseRetryAfter(value as string | string[] | undefined, now)).toBe(expected);
  });
});

describe('token bucket', () => {
  test('allows a burst of perSecond, then refills at that rate', () => {
    const b = new TokenBucket(4, 0);
    expect([b.take(0), b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, true, false]);
    expect(b.waitMs(0)).toBe(250);
    expect(b.take(249)).toBe(false);
    expect(b.take(250)).toBe(true);
    expect(b.take(10_000)).toBe(true);
    expect([b.take(10_000), b.take(10_000), b.take(10_000), b.take(10_000)]).toEqual([true, true, true, false]);
  });
});
