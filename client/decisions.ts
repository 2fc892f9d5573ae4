import {
  DecisionKind,
  getBallot,
  getProposal,
  makeBallot,
  makeDecisionResult,
  makeProposal,
  type Proposal,
  type ProposalInput,
  type Tally,
  tallyDecision,
} from '../shared/decisions.js';
import { SpanKind, type Tracer } from '@opentelemetry/api';
import { ClientError } from './errors.js';
import { addTraceTag, getDefaultTracer, runInSpan, startChildSpan } from './tracing.js';
import type { WorkHost } from './work-host.js';

/**
 * `agent.decisions`: proposals, signed ballots and a tally every agent recomputes from the events
 * (docs/decisions.md). Ballots the relay would refuse are also ignored by {@link tallyDecision}.
 */
export class DecisionClient {
  readonly #host: WorkHost;
  /** created_at of this agent's last ballot per proposal: a new ballot is dated after it, so it replaces it. */
  readonly #lastBallot = new Map<string, number>();
  readonly #tracer: Tracer;

  constructor(host: WorkHost) {
    this.#host = host;
    this.#tracer = host.tracer ?? getDefaultTracer();
  }

  /**
   * Publishes a proposal; voters of a pubkey electorate get it in their mailboxes. When tracing, it
   * names its `client.decision.propose` span in a `traceparent` tag, and the ballots and the result
   * continue that trace.
   */
  async propose(input: ProposalInput): Promise<Proposal> {
    const span = this.#tracer.startSpan('client.decision.propose', { kind: SpanKind.PRODUCER });
    return runInSpan(span, async () => {
      const event = this.#host.sign(addTraceTag(makeProposal(input, this.#nowSec()), span));
      const proposal = getProposal(event);
      if (!proposal) throw new ClientError('ROOST_ERR_BAD_INPUT', 'invalid proposal (2–32 distinct options, a deadline, a rule, an electorate)');
      span.setAttribute('roost.decision.id', proposal.id);
      await this.#host.publish(event);
      return proposal;
    });
  }

  /** The proposal with this id, from the relays. */
  async get(proposalId: string): Promise<Proposal> {
    const [ev] = await this.#host.query([{ ids: [proposalId], kinds: [DecisionKind.Proposal] }]);
    const proposal = ev && getProposal(ev);
    if (!proposal) throw new ClientError('ROOST_ERR_BAD_INPUT', `proposal ${proposalId} not found`);
    return proposal;
  }

  /** Casts (or replaces) this agent's ballot: an option, or "veto" for a veto holder. Resolves with the ballot id. */
  async vote(proposalId: string, choice: string): Promise<string> {
    const proposal = await this.get(proposalId);
    const at = Math.max(this.#nowSec(), (this.#lastBallot.get(proposalId) ?? 0) + 1);
    this.#lastBallot.set(proposalId, at);
    const span = startChildSpan(this.#tracer, 'client.decision.vote', proposal.trace, SpanKind.PRODUCER, { 'roost.decision.id': proposalId });
    return runInSpan(span, async () => {
      const event = this.#host.sign(addTraceTag(makeBallot(proposal, choice, at), span));
      await this.#host.publish(event);
      return event.id;
    });
  }

  /** Tallies from the ballots the relays hold now (`members` resolves a document electorate). */
  async tally(proposalId: string, opts: { members?: readonly string[] } = {}): Promise<Tally> {
    const proposal = await this.get(proposalId);
    const events = await this.#host.query([{ kinds: [DecisionKind.Ballot], '#e': [proposalId], limit: 5000 }]);
    const ballots = events.map(getBallot).filter((b) => b !== undefined);
    // Voters not listed may be listed members' successor keys: their key event logs say so.
    const listed = new Set([...(opts.members ?? []), ...proposal.vetoHolders, ...(proposal.electorate.type === 'pubkeys' ? proposal.electorate.pubkeys : [])]);
    const others = [...new Set(ballots.map((b) => b.voter).filter((v) => !listed.has(v)))];
    const priorKeys = others.length > 0 && this.#host.priorKeys ? await this.#host.priorKeys(others) : undefined;
    return tallyDecision(proposal, ballots, { members: opts.members, now: this.#nowSec(), ...(priorKeys ? { priorKeys } : {}) });
  }

  /** The proposer records a tally (kind 4345) naming the ballots it counted; others can recompute it. */
  async publishResult(proposalId: string, opts: { members?: readonly string[] } = {}): Promise<Tally> {
    const proposal = await this.get(proposalId);
    if (proposal.proposer !== this.#host.pubkey) throw new ClientError('ROOST_ERR_BAD_INPUT', 'only the proposer records the result');
    const tally = await this.tally(proposalId, opts);
    const span = startChildSpan(this.#tracer, 'client.decision.result', proposal.trace, SpanKind.PRODUCER, { 'roost.decision.id': proposalId });
    await runInSpan(span, () => this.#host.publish(this.#host.sign(addTraceTag(makeDecisionResult(proposal, tally, this.#nowSec()), span))));
    return tally;
  }

  /**
   * Calls `handler` for each proposal naming this agent as a voter or veto holder (past ones
   * still open, then live); a returned choice is cast as this agent's ballot.
   */
  onProposal(handler: (proposal: Proposal) => string | undefined | Promise<string | undefined>): { close(): void } {
    const seen = new Set<string>();
    return this.#host.subscribe([{ kinds: [DecisionKind.Proposal], '#p': [this.#host.pubkey] }], (ev) => {
      const proposal = getProposal(ev);
      if (!proposal || seen.has(proposal.id) || proposal.deadline < this.#nowSec()) return;
      seen.add(proposal.id);
      void (async () => {
        try {
          const choice = await handler(proposal);
          if (choice !== undefined) await this.vote(proposal.id, choice);
        } catch {
          // A refused ballot or a failing handler: the proposal stays unanswered by this agent.
        }
      })();
    });
  }

  #nowSec(): number {
    return Math.floor(this.#host.now() / 1000);
  }
}
