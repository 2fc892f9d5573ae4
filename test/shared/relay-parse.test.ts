import { describe, expect, it } from 'vitest';
import { parseRelayFrame, parseRelayMessage } from '../../shared/messages/relay-parse.js';
import { makeKey, signEvent } from '../helpers/events.js';

// The one edge for frames from relays: the client's links read parseRelayMessage, the replicator
// parseRelayFrame (NIP-77 and the replication extensions besides).
const ev = signEvent(makeKey(), { content: 'hi' });
const via = ['a'.repeat(64), 'b'.repeat(64)];
const j = (x: unknown) => JSON.stringify(x);

describe('parseRelayMessage (clients)', () => {
  it.each([
    ['EVENT', j(['EVENT', 's', ev]), { type: 'EVENT', subId: 's', event: ev }],
    ['EVENT with seq', j(['EVENT', 's', ev, { seq: 7 }]), { type: 'EVENT', subId: 's', event: ev, seq: 7 }],
    ['EVENT with seq and via: via is not a client field', j(['EVENT', 's', ev, { seq: 7, via }]), { type: 'EVENT', subId: 's', event: ev, seq: 7 }],
    ['EVENT extra fields dropped', j(['EVENT', 's', { ...ev, extra: 1 }]), { type: 'EVENT', subId: 's', event: ev }],
    ['OK', j(['OK', ev.id, false, 'blocked: no']), { type: 'OK', eventId: ev.id, accepted: false, reason: 'blocked: no' }],
    ['EOSE with cursor', j(['EOSE', 's', { cursor: 3, more: true }]), { type: 'EOSE', subId: 's', cursor: 3, more: true }],
    ['EOSE bad cursor', j(['EOSE', 's', { cursor: -1 }]), { type: 'EOSE', subId: 's' }],
    ['CLOSED', j(['CLOSED', 's', 'error: x']), { type: 'CLOSED', subId: 's', reason: 'error: x' }],
    ['NOTICE', j(['NOTICE', 'n']), { type: 'NOTICE', message: 'n' }],
    ['AUTH', j(['AUTH', 'c']), { type: 'AUTH', challenge: 'c' }],
    ['COUNT', j(['COUNT', 's', { count: 2 }]), { type: 'COUNT', subId: 's', count: 2 }],
  ])('%s', (_name, text, want) => {
    expect(parseRelayMessage(text)).toEqual(want);
  });

  it.each([
    ['not JSON', '['],
    ['not an array', '{}'],
    ['unknown type', j(['HELLO'])],
    ['malformed event', j(['EVENT', 's', { ...ev, id: 'x' }])],
    ['OK without boolean', j(['OK', ev.id, 'yes'])],
    ['COUNT without count', j(['COUNT', 's', {}])],
    // NIP-77 frames are the replicator's: a client link ignores them as before.
    ['NEG-MSG', j(['NEG-MSG', 'n', '61'])],
    ['NEG-ERR', j(['NEG-ERR', 'n', 'blocked: x'])],
  ])('%s: undefined', (_name, text) => {
    expect(parseRelayMessage(text)).toBeUndefined();
  });
});

describe('parseRelayFrame (the replicator)', () => {
  it.each([
    ['EVENT with via', j(['EVENT', 't', ev, { seq: 7, via }]), { type: 'EVENT', subId: 't', event: ev, seq: 7, via }],
    ['malformed event with seq', j(['EVENT', 't', { ...ev, sig: 'x' }, { seq: 9 }]), { type: 'EVENT-MALFORMED', subId: 't', seq: 9 }],
    ['malformed event without seq', j(['EVENT', 't', 42]), { type: 'EVENT-MALFORMED', subId: 't' }],
    ['NEG-MSG', j(['NEG-MSG', 'n', '61']), { type: 'NEG-MSG', subId: 'n', message: '61' }],
    ['NEG-ERR', j(['NEG-ERR', 'n', 'blocked: x']), { type: 'NEG-ERR', subId: 'n', reason: 'blocked: x' }],
  ])('%s', (_name, text, want) => {
    expect(parseRelayFrame(text)).toEqual(want);
  });

  it('NEG-MSG without a hex string is malformed', () => {
    expect(parseRelayFrame(j(['NEG-MSG', 'n', 5]))).toBeUndefined();
  });
});
