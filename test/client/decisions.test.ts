import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../client/node/index.js';
import { makeBallot, type Proposal, type Tally } from '../../shared/decisions.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { startRecordingAgent, tempDir } from './helpers.js';

const cleanups: Array<() => unknown> = [];
let relay: TestRelay;
beforeAll(async () => {
  relay = await startRelay();
});
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn();
  await relay.close();
});

async function newAgent(): Promise<Agent> {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const { agent } = await startRecordingAgent(t.dir, [relay.url]);
  cleanups.push(() => agent.close());
  await agent.whenConnected();
  return agent;
}

describe('agent.decisions through a real relay', () => {
  it('7 voters, quorum and threshold, a veto, late, duplicate and outside ballots: every agent computes the same tally', async () => {
    const voters = await Promise.all(Array.from({ length: 7 }, () => newAgent()));
    const outsider = await newAgent();
    const holder = await newAgent();
    const proposer = voters[0]!;
    const deadline = Math.floor(Date.now() / 1000) + 300;

    // Voters 1–4 answer from onProposal (live delivery of the p-tagged proposal).
    const seen: string[] = [];
    voters.slice(1, 5).forEach((v, i) =>
      v.decisions.onProposal((p: Proposal) => {
        seen.push(p.id);
        return i === 3 ? 'no' : 'yes';
      }),
    );
    const proposal = await proposer.decisions.propose({
      question: 'adopt the new schema?',
      options: ['yes', 'no'],
      electorate: { type: 'pubkeys', pubkeys: voters.map((v) => v.pubkey) },
      rule: { type: 'threshold', num: 2, den: 3 },
      quorum: 5,
      vetoHolders: [holder.pubkey],
      deadline,
    });
    await waitFor(() => seen.length === 4, 'four voters saw the proposal');
    await waitFor(async () => (await proposer.decisions.tally(proposal.id)).turnout === 4, 'four ballots');
    expect(await proposer.decisions.tally(proposal.id)).toMatchObject({ outcome: 'no-quorum', counts: { yes: 3, no: 1 } });

    await proposer.decisions.vote(proposal.id, 'no');
    await proposer.decisions.vote(proposal.id, 'yes'); // replaces the 'no' (a later created_at)
    await proposer.decisions.vote(proposal.id, 'yes'); // a duplicate choice: still one ballot counted
    await voters[5]!.decisions.vote(proposal.id, 'no');
    // 4 yes, 2 no of 6: exactly 2/3 → passes.
    let t = await voters[6]!.decisions.tally(proposal.id);
    expect(t).toMatchObject({ outcome: 'passed', winner: 'yes', counts: { yes: 4, no: 2 }, turnout: 6, final: false });

    // Refused by the relay: an outsider, a veto without the right, a ballot dated after the deadline.
    await expect(outsider.decisions.vote(proposal.id, 'no')).rejects.toMatchObject({ code: 'ROOST_ERR_REFUSED', prefix: 'restricted' });
    await expect(voters[6]!.decisions.vote(proposal.id, 'veto')).rejects.toMatchObject({ code: 'ROOST_ERR_REFUSED', prefix: 'restricted' });
    const late = voters[6]!.identity.sign(makeBallot(proposal, 'no', deadline + 5));
    await expect(voters[6]!.publishSigned(late)).rejects.toMatchObject({ code: 'ROOST_ERR_REFUSED', prefix: 'invalid' });

    // The veto holder vetoes; then every agent computes the same tally from the events.
    await holder.decisions.vote(proposal.id, 'veto');
    const tallies: Tally[] = await Promise.all([...voters, outsider, holder].map((a) => a.decisions.tally(proposal.id)));
    t = tallies[0]!;
    expect(t).toMatchObject({ outcome: 'vetoed', vetoedBy: [holder.pubkey], counts: { yes: 4, no: 2 } });
    expect(t.ignored.map((i) => i.why)).toEqual(['replaced by a later ballot of the same voter', 'replaced by a later ballot of the same voter']);
    for (const other of tallies) expect(other).toEqual(t);

    // The proposer records the outcome; its ballot list is what everyone counted.
    const recorded = await proposer.decisions.publishResult(proposal.id);
    expect(recorded.counted).toEqual(t.counted);
  }, 60_000);
});
