import { describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../../shared/event.js';
import { matchFilters, type Filter } from '../../../shared/filter.js';
import { SubscriptionIndex } from '../../../relay/subscriptions/index.js';
import { createRng } from '../../helpers/prng.js';

// The fan-out index must find exactly the subscriptions the plain matcher would.
describe('SubscriptionIndex', () => {
  const rng = createRng(7);
  const keys = ['a', 'b', 'c', 'd'].map((c) => c.repeat(64));
  const ids = ['1', '2', '3'].map((c) => c.repeat(64));
  const kinds = [1, 4, 7, 30023];
  const values = ['x', 'y', keys[0]!, keys[1]!];

  function randomFilter(): Filter {
    const f: Filter = {};
    if (rng.chance(0.15)) f.ids = rng.subset(ids, 2);
    if (rng.chance(0.35)) f.authors = rng.subset(keys, 2);
    if (rng.chance(0.4)) f.kinds = rng.subset(kinds, 2);
    if (rng.chance(0.4)) f[`#${rng.pick(['p', 't'])}`] = rng.subset(values, 2);
    if (rng.chance(0.2)) f.since = rng.int(0, 10);
    return f;
  }
  function randomEvent(): NostrEvent {
    return {
      id: rng.pick(ids),
      pubkey: rng.pick(keys),
      kind: rng.pick(kinds),
      created_at: rng.int(0, 10),
      tags: Array.from({ length: rng.int(0, 3) }, () => [rng.pick(['p', 't', 'e']), rng.pick(values)]),
      content: '',
      sig: '',
    };
  }

  it('matches the brute-force matcher over random subscriptions and events, across removals', () => {
    const index = new SubscriptionIndex<{ n: number; filters: Filter[] }>();
    let subs = Array.from({ length: 300 }, (_, n) => ({ n, filters: Array.from({ length: rng.int(1, 3) }, randomFilter) }));
    for (const s of subs) index.add(s);
    let hits = 0;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 400; i++) {
        const ev = randomEvent();
        const got: number[] = [];
        index.match(ev, (s) => got.push(s.n));
        const want = subs.filter((s) => matchFilters(s.filters, ev)).map((s) => s.n);
        expect(got.sort((a, b) => a - b)).toEqual(want);
        hits += want.length;
      }
      const removed = subs.filter(() => rng.chance(0.3));
      for (const s of removed) index.remove(s);
      subs = subs.filter((s) => !removed.includes(s));
      expect(index.size).toBe(subs.length);
    }
    expect(hits).toBeGreaterThan(1000);
  });
});
