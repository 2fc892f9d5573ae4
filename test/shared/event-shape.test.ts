import { describe, expect, it } from 'vitest';
import { isEventShape } from '../../shared/event-shape.js';
import { HISTORY_RESET, isHistoryReset, makeHistoryResetReason } from '../../shared/history-reset.js';
import { eventSchema } from '../../shared/messages/schema.js';

const good = {
  id: 'a'.repeat(64),
  pubkey: 'b'.repeat(64),
  created_at: 1_700_000_000,
  kind: 1,
  tags: [['p', 'c'.repeat(64)]],
  content: 'hi',
  sig: 'd'.repeat(128),
};

// The relay's zod edge and the client's hand-written one must answer the same for every input.
const cases: Array<[string, unknown]> = [
  ['a well-formed event', good],
  ['extra fields', { ...good, seq: 3 }],
  ['uppercase id', { ...good, id: 'A'.repeat(64) }],
  ['short pubkey', { ...good, pubkey: 'b'.repeat(63) }],
  ['short sig', { ...good, sig: 'd'.repeat(126) }],
  ['negative created_at', { ...good, created_at: -1 }],
  ['fractional created_at', { ...good, created_at: 1.5 }],
  ['unsafe created_at', { ...good, created_at: 2 ** 53 }],
  ['kind 65535', { ...good, kind: 65535 }],
  ['kind 65536', { ...good, kind: 65536 }],
  ['kind as a string', { ...good, kind: '1' }],
  ['a number in a tag', { ...good, tags: [['p', 1]] }],
  ['a tag that is not an array', { ...good, tags: ['p'] }],
  ['no content', { ...good, content: undefined }],
  ['null', null],
  ['an array', [good]],
  ['a string', 'event'],
];

describe('event shape (shared by relay and client)', () => {
  it.each(cases)('%s: the client check agrees with the relay schema', (_name, input) => {
    expect(isEventShape(input)).toBe(eventSchema.safeParse(input).success);
  });
});

describe('history reset reason', () => {
  it('is recognised by its code, not its wording', () => {
    const reason = makeHistoryResetReason(120, 7);
    expect(reason.startsWith(`invalid: ${HISTORY_RESET}: `)).toBe(true);
    expect(isHistoryReset(reason)).toBe(true);
    expect(isHistoryReset("invalid: seq_after 120 is ahead of this relay's newest sequence number 7")).toBe(false);
    expect(isHistoryReset('invalid: seq_after must be an integer')).toBe(false);
    expect(isHistoryReset(`blocked: ${HISTORY_RESET}: no`)).toBe(false);
  });
});
