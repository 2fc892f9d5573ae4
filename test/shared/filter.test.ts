import { describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../shared/event.js';
import { matchFilter, matchFilters, type Filter } from '../../shared/filter.js';

const ev: NostrEvent = {
  id: 'a'.repeat(64),
  pubkey: 'b'.repeat(64),
  created_at: 1000,
  kind: 1,
  tags: [
    ['p', 'c'.repeat(64)],
    ['t', 'news'],
    ['t', 'ai'],
    ['expiration', '99999'],
  ],
  content: 'hello',
  sig: 'd'.repeat(128),
};

const cases: Array<[string, Filter, boolean]> = [
  ['empty filter matches everything', {}, true],
  ['id hit', { ids: ['a'.repeat(64)] }, true],
  ['id miss', { ids: ['e'.repeat(64)] }, false],
  ['empty ids matches nothing', { ids: [] }, false],
  ['author hit', { authors: ['b'.repeat(64)] }, true],
  ['author miss', { authors: ['c'.repeat(64)] }, false],
  ['kind hit', { kinds: [0, 1] }, true],
  ['kind miss', { kinds: [7] }, false],
  ['since inclusive', { since: 1000 }, true],
  ['since after', { since: 1001 }, false],
  ['until inclusive', { until: 1000 }, true],
  ['until before', { until: 999 }, false],
  ['tag hit', { '#t': ['ai'] }, true],
  ['tag any value', { '#t': ['x', 'news'] }, true],
  ['tag miss', { '#t': ['sports'] }, false],
  ['tag letter absent', { '#e': ['a'.repeat(64)] }, false],
  ['two tag filters both needed', { '#t': ['ai'], '#p': ['c'.repeat(64)] }, true],
  ['two tag filters one missing', { '#t': ['ai'], '#p': ['f'.repeat(64)] }, false],
  ['multi-letter tag names are not single-letter filters', { '#t': ['expiration'] }, false],
  ['limit is not an event property', { limit: 0 }, true],
  ['seq fields are not event properties', { seq_after: 5 }, true],
  ['all conditions', { ids: ['a'.repeat(64)], authors: ['b'.repeat(64)], kinds: [1], since: 1, until: 2000, '#t': ['news'] }, true],
];

describe('matchFilter', () => {
  it.each(cases)('%s', (_name, filter, expected) => {
    expect(matchFilter(filter, ev)).toBe(expected);
  });

  it('matchFilters is true when any filter matches', () => {
    expect(matchFilters([{ kinds: [7] }, { kinds: [1] }], ev)).toBe(true);
    expect(matchFilters([{ kinds: [7] }, { authors: [] }], ev)).toBe(false);
    expect(matchFilters([], ev)).toBe(false);
  });
});
