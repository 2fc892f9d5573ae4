import { describe, expect, it } from 'vitest';
import { parseClientMessage } from '../../shared/messages/client.js';

const goodEvent = {
  id: 'a'.repeat(64),
  pubkey: 'b'.repeat(64),
  created_at: 1,
  kind: 1,
  tags: [['p', 'x']],
  content: '',
  sig: 'c'.repeat(128),
};

describe('parseClientMessage', () => {
  it.each([
    ['EVENT', ['EVENT', goodEvent], 'EVENT'],
    ['REQ one filter', ['REQ', 's', { kinds: [1] }], 'REQ'],
    ['REQ tag filter', ['REQ', 's', { '#p': ['x'], limit: 3 }], 'REQ'],
    ['REQ seq extension', ['REQ', 's', { '#p': ['x'], seq_after: 3 }], 'REQ'],
    ['CLOSE', ['CLOSE', 's'], 'CLOSE'],
    ['AUTH', ['AUTH', goodEvent], 'AUTH'],
    ['COUNT', ['COUNT', 's', {}], 'COUNT'],
  ])('accepts %s', (_n, frame, type) => {
    const r = parseClientMessage(JSON.stringify(frame));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.message.type).toBe(type);
  });

  it.each([
    ['malformed JSON', '["EVENT",', 'NOTICE', /^invalid: malformed JSON/],
    ['not an array', '{"a":1}', 'NOTICE', /^invalid: /],
    ['empty array', '[]', 'NOTICE', /^invalid: /],
    ['unknown verb', '["HELLO"]', 'NOTICE', /^invalid: unknown message type/],
    ['EVENT with bad sig shape, readable id', JSON.stringify(['EVENT', { ...goodEvent, sig: 'zz' }]), 'OK', /^invalid: sig/],
    ['EVENT with uppercase id', JSON.stringify(['EVENT', { ...goodEvent, id: 'A'.repeat(64) }]), 'NOTICE', /^invalid: id/],
    ['EVENT with float kind', JSON.stringify(['EVENT', { ...goodEvent, kind: 1.5 }]), 'OK', /^invalid: kind/],
    ['EVENT with kind too large', JSON.stringify(['EVENT', { ...goodEvent, kind: 70000 }]), 'OK', /^invalid: kind/],
    ['EVENT with non-string tag', JSON.stringify(['EVENT', { ...goodEvent, tags: [[1]] }]), 'OK', /^invalid: tags/],
    ['EVENT twice', JSON.stringify(['EVENT', goodEvent, goodEvent]), 'OK', /^invalid: /],
    ['REQ without filters', JSON.stringify(['REQ', 's']), 'CLOSED', /^invalid: at least one filter/],
    ['REQ with empty sub id', JSON.stringify(['REQ', '', {}]), 'NOTICE', /^invalid: /],
    ['REQ with long sub id', JSON.stringify(['REQ', 'x'.repeat(65), {}]), 'NOTICE', /^invalid: /],
    ['REQ with unknown field', JSON.stringify(['REQ', 's', { search: 'x' }]), 'CLOSED', /unsupported filter field "search"/],
    ['REQ with multi-letter tag', JSON.stringify(['REQ', 's', { '#pp': ['x'] }]), 'CLOSED', /unsupported filter field/],
    ['REQ with negative limit', JSON.stringify(['REQ', 's', { limit: -1 }]), 'CLOSED', /^invalid: filter 0: limit/],
    ['REQ with short author', JSON.stringify(['REQ', 's', { authors: ['abc'] }]), 'CLOSED', /^invalid: filter 0: authors/],
    ['REQ with non-array tag values', JSON.stringify(['REQ', 's', { '#p': 'x' }]), 'CLOSED', /^invalid: /],
    ['COUNT without filters', JSON.stringify(['COUNT', 's']), 'COUNT_CLOSED', /^invalid: /],
    ['CLOSE with extra', JSON.stringify(['CLOSE', 's', 1]), 'NOTICE', /^invalid: /],
  ])('refuses %s', (_n, text, reply, reason) => {
    const r = parseClientMessage(text);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.reply).toBe(reply);
      expect(r.error.reason).toMatch(reason);
    }
  });
});
