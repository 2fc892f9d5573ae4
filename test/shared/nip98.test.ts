import { describe, expect, it } from 'vitest';
import { finalizeEvent } from 'nostr-tools/pure';
import type { NostrEvent } from '../../shared/event.js';
import { type HttpAuthExpectation, checkHttpAuthEvent, getAuthorizationEvent, makeAuthorizationHeader, makeHttpAuthTemplate } from '../../shared/nip98.js';
import { makeKey } from '../helpers/events.js';

const key = makeKey();
const now = 1_700_000_000;
const sign = (
  over: Partial<NostrEvent> = {},
  t = makeHttpAuthTemplate({ url: 'https://relay.example/', method: 'post', payload: 'ab'.repeat(32), created_at: now }),
) => finalizeEvent({ ...t, ...over }, key.sk) as NostrEvent;
const want: HttpAuthExpectation = { method: 'POST', matchUrl: (u: string): boolean => u === 'https://relay.example/', payload: 'ab'.repeat(32), now };

describe('NIP-98', () => {
  it('round-trips the Authorization header, unicode included', () => {
    const ev = sign({ content: 'héllo ✓' });
    expect(getAuthorizationEvent(makeAuthorizationHeader(ev))).toEqual(JSON.parse(JSON.stringify(ev)));
  });

  it.each([
    ['absent', undefined],
    ['another scheme', 'Bearer abc'],
    ['not base64 JSON', 'Nostr bm90IGpzb24='],
    ['not an event', `Nostr ${btoa('{"kind":27235}')}`],
  ])('rejects a header that is %s', (_name, header) => {
    expect(getAuthorizationEvent(header)).toBeUndefined();
  });

  it.each<[string, Partial<NostrEvent> | undefined, Partial<HttpAuthExpectation>, RegExp | undefined]>([
    ['a good event', undefined, {}, undefined],
    ['the wrong kind', { kind: 1 }, {}, /kind 27235/],
    ['an old event', undefined, { now: now + 61 }, /too old/],
    ['a future event', undefined, { now: now - 61 }, /future/],
    ['another URL', undefined, { matchUrl: () => false }, /u tag/],
    ['another method', undefined, { method: 'GET' }, /method/],
    ['another body', undefined, { payload: 'cd'.repeat(32) }, /payload/],
  ])('checks %s', (_name, over, expectation, error) => {
    const r = checkHttpAuthEvent(sign(over), { ...want, ...expectation });
    if (error) expect(r).toMatch(error);
    else expect(r).toBeUndefined();
  });
});
