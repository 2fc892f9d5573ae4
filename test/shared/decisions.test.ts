import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Ballot,
  getBallot,
  getProposal,
  makeBallot,
  makeProposal,
  type Proposal,
  type ProposalInput,
  tallyDecision,
  VETO,
} from '../../shared/decisions.js';
import { makeKey, signEvent } from '../helpers/events.js';

const T0 = 1_700_000_000;
const voters = Array.from({ length: 7 }, () => makeKey());
const proposer = voters[0]!;
const outsider = makeKey();
const vetoHolder = makeKey();

function propose(over: Partial<ProposalInput> = {}): Proposal {
  const input: ProposalInput = {
    question: 'ship v2?',
    options: ['yes', 'no'],
    electorate: { type: 'pubkeys', pubkeys: voters.map((v) => v.pk) },
    rule: { type: 'majority' },
    quorum: 4,
    vetoHolders: [vetoHolder.pk],
    deadline: T0 + 100,
    ...over,
  };
  return getProposal(signEvent(proposer, makeProposal(input, T0)))!;
}

function ballot(p: Proposal, key: { pk: string; sk: Uint8Array }, choice: string, at: number): Ballot {
  return getBallot(signEvent(key, makeBallot(p, choice, at)))!;
}

describe('proposal and ballot events', () => {
  it('round-trip', () => {
    const p = propose({ rule: { type: 'threshold', num: 2, den: 3 } });
    expect(p).toMatchObject({ question: 'ship v2?', options: ['yes', 'no'], quorum: 4, vetoHolders: [vetoHolder.pk], deadline: T0 + 100 });
    expect(p.rule).toEqual({ type: 'threshold', num: 2, den: 3 });
    expect(p.electorate).toEqual({ type: 'pubkeys', pubkeys: voters.map((v) => v.pk) });
    expect(ballot(p, voters[1]!, 'yes', T0 + 1)).toMatchObject({ voter: voters[1]!.pk, proposalId: p.id, choice: 'yes' });
  });

  it('refuses a proposal with duplicate options, no deadline, or "veto" as an option', () => {
    const tpl = makeProposal(
      { question: 'q', options: ['a', 'a'], electorate: { type: 'pubkeys', pubkeys: [proposer.pk] }, rule: { type: 'majority' }, deadline: T0 },
      T0,
    );
    expect(getProposal(signEvent(proposer, tpl))).toBeUndefined();
    const noDeadline = makeProposal(
      { question: 'q', options: ['a', 'b'], electorate: { type: 'pubkeys', pubkeys: [proposer.pk] }, rule: { type: 'majority' }, deadline: T0 },
      T0,
    );
    noDeadline.tags = noDeadline.tags.filter((t) => t[0] !== 'deadline');
    expect(getProposal(signEvent(proposer, noDeadline))).toBeUndefined();
    const vetoOpt = makeProposal(
      { question: 'q', options: ['a', VETO], electorate: { type: 'pubkeys', pubkeys: [proposer.pk] }, rule: { type: 'majority' }, deadline: T0 },
      T0,
    );
    expect(getProposal(signEvent(proposer, vetoOpt))).toBeUndefined();
  });
});

describe('tallyDecision', () => {
  it('7 voters, majority with quorum: latest ballot counts, late and outside ballots are ignored', () => {
    const p = propose();
    const bs = [
      ballot(p, voters[0]!, 'yes', T0 + 1),
      ballot(p, voters[1]!, 'no', T0 + 2),
      ballot(p, voters[1]!, 'yes', T0 + 3), // replaces the 'no'
      ballot(p, voters[2]!, 'yes', T0 + 4),
      ballot(p, voters[3]!, 'no', T0 + 5),
      ballot(p, voters[4]!, 'yes', T0 + 101), // after the deadline
      ballot(p, outsider, 'yes', T0 + 6), // not in the electorate
      ballot(p, voters[5]!, 'maybe', T0 + 7), // not an option
      ballot(p, voters[6]!, VETO, T0 + 8), // not a veto holder
    ];
    const t = tallyDecision(p, bs, { now: T0 + 200 });
    expect(t).toMatchObject({ outcome: 'passed', winner: 'yes', counts: { yes: 3, no: 1 }, turnout: 4, final: true });
    expect(t.ignored.map((i) => i.why).sort()).toEqual(
      [
        'ballot cast after the deadline',
        'not one of the options',
        'only a veto holder may veto',
        'replaced by a later ballot of the same voter',
        'voter not in the electorate',
      ].sort(),
    );
    expect(tallyDecision(p, bs, { now: T0 + 50 }).final).toBe(false);
  });

  it('below quorum there is no decision', () => {
    const p = propose();
    const t = tallyDecision(p, [ballot(p, voters[0]!, 'yes', T0 + 1), ballot(p, voters[1]!, 'yes', T0 + 2)]);
    expect(t.outcome).toBe('no-quorum');
  });

  it('a threshold needs its share; a tie never passes', () => {
    const p = propose({ rule: { type: 'threshold', num: 2, den: 3 } });
    const four = ['yes', 'yes', 'no', 'no'].map((c, i) => ballot(p, voters[i]!, c, T0 + 1));
    expect(tallyDecision(p, four).outcome).toBe('failed');
    const six = ['yes', 'yes', 'yes', 'yes', 'no', 'no'].map((c, i) => ballot(p, voters[i]!, c, T0 + 1));
    expect(tallyDecision(p, six)).toMatchObject({ outcome: 'passed', winner: 'yes' });
    const five = ['yes', 'yes', 'yes', 'no', 'no'].map((c, i) => ballot(p, voters[i]!, c, T0 + 1));
    expect(tallyDecision(p, five).outcome).toBe('failed'); // 3/5 < 2/3
  });

  it('a veto holder vetoes, and withdraws the veto with a later ballot', () => {
    const p = propose({ electorate: { type: 'pubkeys', pubkeys: [...voters.map((v) => v.pk), vetoHolder.pk] } });
    const yes = voters.map((v) => ballot(p, v, 'yes', T0 + 1));
    const veto = ballot(p, vetoHolder, VETO, T0 + 2);
    expect(tallyDecision(p, [...yes, veto])).toMatchObject({ outcome: 'vetoed', vetoedBy: [vetoHolder.pk] });
    const change = ballot(p, vetoHolder, 'yes', T0 + 3);
    expect(tallyDecision(p, [...yes, veto, change])).toMatchObject({ outcome: 'passed', winner: 'yes', turnout: 8 });
  });

  it('a document electorate counts the members the caller resolved', () => {
    const p = propose({ electorate: { type: 'doc', address: `34338:${proposer.pk}:notes` }, quorum: 1 });
    const b = ballot(p, voters[2]!, 'no', T0 + 1);
    expect(tallyDecision(p, [b]).outcome).toBe('no-quorum');
    expect(tallyDecision(p, [b], { members: [voters[2]!.pk] })).toMatchObject({ outcome: 'passed', winner: 'no' });
  });

  // Seeded: the same inputs every run; change SEED to explore.
  const SEED = 20_2026;
  it(`is order-independent and idempotent (fast-check, seed ${SEED})`, () => {
    const p = propose({ rule: { type: 'threshold', num: 3, den: 5 }, quorum: 3 });
    const keys = [...voters, outsider, vetoHolder];
    const choices = ['yes', 'no', 'maybe', VETO];
    // A pool of signed ballots (signing is slow); runs pick subsets, orders and duplicates of it.
    const pool: Ballot[] = [];
    for (let i = 0; i < 60; i++) pool.push(ballot(p, keys[i % keys.length]!, choices[(i * 7) % choices.length]!, T0 + ((i * 37) % 130)));
    const arb = fc
      .array(fc.nat({ max: pool.length - 1 }), { maxLength: 80 })
      .chain((picks) => fc.tuple(fc.constant(picks.map((i) => pool[i]!)), fc.shuffledSubarray(picks, { minLength: picks.length, maxLength: picks.length })));
    fc.assert(
      fc.property(arb, ([ballots, shuffledIdx]) => {
        const once = tallyDecision(p, ballots);
        const reordered = tallyDecision(
          p,
          shuffledIdx.map((i) => pool[i]!),
        );
        const doubled = tallyDecision(p, [...ballots, ...ballots.slice().reverse()]);
        expect(reordered).toEqual(once);
        expect(doubled).toEqual(once);
        expect(tallyDecision(p, [...new Set(ballots)])).toEqual(once);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});
