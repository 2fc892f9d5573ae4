import { checkBallot, DecisionKind, getBallot, getProposal, type PriorKeys } from '../../shared/decisions.js';
import type { NostrEvent } from '../../shared/event.js';
import { makeReason } from '../../shared/reason.js';
import { checkTaskStep, getInitialPosition, isTaskParty, getTaskOffer, getTaskRequest, getTaskStep, type TaskPosition, TaskKind } from '../../shared/tasks.js';
import type { SyncEventReads } from '../store/types.js';
import type { RejectEvent } from './types.js';

/** What the task and ballot policies read from the store. */
export interface TaskLookup {
  /** A stored event by id. */
  get(id: string): NostrEvent | undefined;
  /** Ids of stored steps whose `prev` is this id. */
  successors(prev: string): string[];
  /** Whether the id is stored (a resubmission passes, so it gets its `duplicate:` answer). */
  isStored(id: string): boolean;
}

/**
 * Refuses a public task event that breaks the task state machine (shared/tasks.ts): a malformed
 * request, offer or step; an offer by the requester; a step whose request or previous step is not on
 * this relay, whose previous step already has a successor, or that its author may not make (a worker
 * accepting its own offer, a third party posting a result, anything after the task ended). A party
 * that rotated acts with its successor key: `priorKeys` gives the earlier keys of an author from the key
 * event chains stored here (as for ballots).
 */
export function rejectInvalidTaskEvents(lookup: TaskLookup, priorKeys?: PriorKeys): RejectEvent {
  return function rejectInvalidTaskEvents(ev) {
    if (ev.kind !== TaskKind.Request && ev.kind !== TaskKind.Offer && ev.kind !== TaskKind.Step) return undefined;
    if (lookup.isStored(ev.id)) return undefined;
    const why = check(ev);
    return why === undefined ? undefined : makeReason('invalid', why);
  };

  function check(ev: NostrEvent): string | undefined {
    if (ev.kind === TaskKind.Request) return getTaskRequest(ev) ? undefined : 'malformed task request';
    if (ev.kind === TaskKind.Offer) {
      const offer = getTaskOffer(ev);
      if (!offer) return 'malformed task offer';
      const request = requestOf(offer.requestId);
      if (typeof request === 'string') return request;
      if (isTaskParty(request.requester, { author: offer.worker, createdAt: offer.createdAt }, priorKeys))
        return 'the requester cannot offer to do its own task';
      if (request.worker !== undefined && request.worker !== offer.worker) return 'this task request is addressed to another worker';
      return undefined;
    }
    const step = getTaskStep(ev);
    if (!step) return 'malformed task step';
    const request = requestOf(step.root);
    if (typeof request === 'string') return request;
    let at: TaskPosition;
    if (step.prev === step.root) at = getInitialPosition(request);
    else {
      const prevEv = lookup.get(step.prev);
      const prev = prevEv && getTaskStep(prevEv);
      if (!prev || prev.root !== step.root) return `previous step ${step.prev} of this task is not on this relay`;
      at = { state: prev.state, worker: prev.worker };
    }
    const taken = lookup.successors(step.prev);
    if (taken.length > 0) return `step ${step.prev} already has a successor (${taken[0]}): name the latest step as prev`;
    let offer: ReturnType<typeof getTaskOffer>;
    if (step.offer !== undefined) {
      const offerEv = lookup.get(step.offer);
      offer = offerEv && getTaskOffer(offerEv);
      if (!offer) return `offer ${step.offer} is not on this relay`;
    }
    return checkTaskStep(request, at, step, offer, priorKeys);
  }

  function requestOf(id: string) {
    const ev = lookup.get(id);
    const request = ev && getTaskRequest(ev);
    return request ?? `task request ${id} is not on this relay`;
  }
}

/** How long after a proposal's deadline a ballot dated before it may still arrive (clock skew, retries). */
export const BALLOT_GRACE_SECONDS = 300;

/**
 * Refuses a malformed proposal, and a ballot that is not valid for its proposal (shared/decisions.ts):
 * unknown proposal, not an option, a veto from someone who holds none, a voter outside a pubkey
 * electorate (a document electorate is left to clients), dated after the deadline, or arriving more
 * than {@link BALLOT_GRACE_SECONDS} after it.
 */
export function rejectInvalidBallots(lookup: Pick<TaskLookup, 'get' | 'isStored'>, priorKeys?: PriorKeys): RejectEvent {
  return function rejectInvalidBallots(ev, ctx) {
    if (ev.kind !== DecisionKind.Proposal && ev.kind !== DecisionKind.Ballot) return undefined;
    if (lookup.isStored(ev.id)) return undefined;
    if (ev.kind === DecisionKind.Proposal) return getProposal(ev) ? undefined : makeReason('invalid', 'malformed proposal');
    const ballot = getBallot(ev);
    if (!ballot) return makeReason('invalid', 'malformed ballot');
    const pev = lookup.get(ballot.proposalId);
    const proposal = pev && getProposal(pev);
    if (!proposal) return makeReason('invalid', `proposal ${ballot.proposalId} is not on this relay`);
    // A replicated ballot arrived on its upstream, which judged the grace; its date is still checked below.
    if (!ctx.replicated && ctx.now > proposal.deadline + BALLOT_GRACE_SECONDS) return makeReason('invalid', 'voting on this proposal has closed');
    // Membership of a document electorate is the clients' to check (the tally takes the resolved members).
    // A rotated voter votes with its successor key (the earlier keys come from the key event logs stored here).
    const why = checkBallot(proposal, ballot, proposal.electorate.type === 'doc' ? [ballot.voter] : undefined, priorKeys);
    return why === undefined
      ? undefined
      : makeReason(why === 'voter not in the electorate' || why === 'only a veto holder may veto' ? 'restricted' : 'invalid', why);
  };
}

/** A {@link TaskLookup} over a store's id and tag queries. */
export function makeTaskLookup(store: SyncEventReads): TaskLookup {
  return {
    get(id) {
      const row = store.query([{ ids: [id], limit: 1 }])[0];
      return row ? (JSON.parse(row.raw) as NostrEvent) : undefined;
    },
    successors(prev) {
      return store
        .query([{ kinds: [TaskKind.Step], '#e': [prev], limit: 50 }])
        .map((r) => JSON.parse(r.raw) as NostrEvent)
        .filter((e) => getTaskStep(e)?.prev === prev)
        .map((e) => e.id);
    },
    isStored: (id) => store.isKnown(id) === 'stored',
  };
}

/** What a task step holds while it is verified and stored, across instances: its `prev` (one successor each). */
export function getTaskStepClaims(ev: NostrEvent): string[] {
  if (ev.kind !== TaskKind.Step) return [];
  const step = getTaskStep(ev);
  return step ? [`task:${step.prev}`] : [];
}
