import { describe, expect, it } from 'vitest';
import { describeRetention, findRetentionRule, parseKindList, parseRetention } from '../../../relay/mailbox/retention-rules.js';
import { loadConfig } from '../../../relay/config.js';

// The retention and private-kind settings: table-driven parsing, first-match lookup, NIP-11 form,
// and refusal at start-up with ROOST_ERR_CONFIG.
describe('parseRetention', () => {
  const good: Array<[string, unknown]> = [
    ['', []],
    ['  ', []],
    ['1:60', [{ kinds: [[1, 1]], seconds: 60 }]],
    [
      '1+7:30d',
      [
        {
          kinds: [
            [1, 1],
            [7, 7],
          ],
          seconds: 30 * 86400,
        },
      ],
    ],
    ['30000-39999:1y, *:2w', [{ kinds: [[30000, 39999]], seconds: 365 * 86400 }, { seconds: 14 * 86400 }]],
    [
      '4 : 90m ,1059:12h',
      [
        { kinds: [[4, 4]], seconds: 5400 },
        { kinds: [[1059, 1059]], seconds: 43200 },
      ],
    ],
    ['0-65535:1s', [{ kinds: [[0, 65535]], seconds: 1 }]],
  ];
  it.each(good)('%j parses', (spec, rules) => {
    expect(parseRetention(spec)).toEqual({ ok: true, rules });
  });

  const bad = ['1', '1:', ':60', 'x:60', '1:60q', '5-3:60', '70000:60', '1:0', '1+:60', '1,2:60', '*:-1'];
  it.each(bad)('%j is refused', (spec) => {
    expect(parseRetention(spec).ok).toBe(false);
    expect(() => loadConfig({ retention: spec })).toThrow(expect.objectContaining({ code: 'ROOST_ERR_CONFIG' }));
  });

  it('first matching rule wins, and NIP-11 writes single kinds as numbers', () => {
    const r = parseRetention('7:1h,1-10:1d,*:1w');
    if (!r.ok) throw new Error(r.error);
    expect(findRetentionRule(r.rules, 7)?.seconds).toBe(3600);
    expect(findRetentionRule(r.rules, 5)?.seconds).toBe(86400);
    expect(findRetentionRule(r.rules, 1059)?.seconds).toBe(604800);
    expect(describeRetention(r.rules)).toEqual([{ kinds: [7], time: 3600 }, { kinds: [[1, 10]], time: 86400 }, { time: 604800 }]);
    const none = parseRetention('1:1h');
    if (!none.ok) throw new Error(none.error);
    expect(findRetentionRule(none.rules, 2)).toBeUndefined();
  });
});

describe('parseKindList', () => {
  it.each([
    ['', []],
    ['4242', [4242]],
    [' 4242, 4243 ,', [4242, 4243]],
  ])('%j parses', (spec, kinds) => {
    expect(parseKindList(spec)).toEqual({ ok: true, kinds });
  });
  it.each(['x', '4242;1', '70000', '-1'])('%j is refused', (spec) => {
    expect(parseKindList(spec).ok).toBe(false);
    expect(() => loadConfig({ mailboxPrivateKinds: spec })).toThrow(expect.objectContaining({ code: 'ROOST_ERR_CONFIG' }));
  });
});
