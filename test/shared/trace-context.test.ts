import { describe, expect, it } from 'vitest';
import { formatTraceparent, getTraceparent, makeTraceparentTag, parseTraceparent } from '../../shared/trace-context.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

describe('parseTraceparent (W3C Trace Context, untrusted input)', () => {
  it.each([
    [`00-${T}-${S}-01`, { traceId: T, spanId: S, sampled: true }],
    [`00-${T}-${S}-00`, { traceId: T, spanId: S, sampled: false }],
    [`00-${T}-${S}-03`, { traceId: T, spanId: S, sampled: true }],
    // a later version: its first four fields are read, what follows is ignored
    [`01-${T}-${S}-01-what-comes-next`, { traceId: T, spanId: S, sampled: true }],
  ])('%s parses', (value, want) => expect(parseTraceparent(value)).toEqual(want));

  it.each([
    ['empty', ''],
    ['upper-case hex', `00-${T.toUpperCase()}-${S}-01`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${S}-01`],
    ['all-zero span id', `00-${T}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${T}-${S}-01`],
    ['version 00 with extra fields', `00-${T}-${S}-01-extra`],
    ['later version without a dash after the flags', `01-${T}-${S}-01x`],
    ['short trace id', `00-${T.slice(2)}-${S}-01`],
    ['huge', `01-${T}-${S}-01-${'a'.repeat(300)}`],
  ])('%s is refused', (_what, value) => expect(parseTraceparent(value)).toBeUndefined());
});

describe('the traceparent tag', () => {
  it('round-trips through an event tag', () => {
    const parent = { traceId: T, spanId: S, sampled: true };
    expect(makeTraceparentTag(parent)).toEqual(['traceparent', `00-${T}-${S}-01`]);
    expect(getTraceparent([['p', 'x'], makeTraceparentTag(parent)])).toEqual(parent);
    expect(formatTraceparent({ ...parent, sampled: false })).toBe(`00-${T}-${S}-00`);
  });

  it('only the first traceparent tag counts, and one that does not parse gives none', () => {
    expect(getTraceparent([['traceparent', 'junk'], makeTraceparentTag({ traceId: T, spanId: S, sampled: true })])).toBeUndefined();
    expect(getTraceparent([['traceparent'], ['e', T]])).toBeUndefined();
    expect(getTraceparent([])).toBeUndefined();
  });
});
