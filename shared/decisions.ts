import type { EventTemplate, NostrEvent } from './event.js';
import type { PriorKeys } from './identity-log.js';
import { getTagValue, getTagValues } from './event.js';
import { getTraceparent, type TraceParent } from './trace-context.js';

/**
 * Collective decisions (Roost): a proposal (kind 4343) names its options, electorate, rule, veto
 * holders and deadline; voters sign ballots (4344); the tally is a pure function of the set of
 * valid ballots, so every agent computes the same outcome from the same events. The proposer may
 * record the outcome (4345). The relay's policy and the client both call {@link checkBallot}.
 * See docs/decisions.md.
 */

/** Kinds of decision events (regular: every ballot is kept, the tally picks the latest). */
export const DecisionKind = { Proposal: 4343, Ballot: 4344, Result: 4345 } as const;

/** Option a veto holder chooses to veto. */
export const VETO = 'veto';

const HEX64 = /^[0-9a-f]{64}$/;
const isOption = (o: string) => o.length >= 1 && o.length <= 128 && o !== VETO;

/** How the winning option is decided among counted ballots: more than half, or at least num/den. */
export type DecisionRule = { type: 'majority' } | { type: 'threshold'; num: number; den: number };

/** Who may vote: a list of pubkeys, or the members of a shared document (resolved by the caller). */
export type Electorate = { type: 'pubkeys'; pubkeys: string[] } | { type: 'doc'; address: string };

/** A proposal as read from its event. */
export interface Proposal {
  id: string;
  proposer: string;
  question: string;
  /** 2–32 distinct options, none of them "veto". */
  options: string[];
  electorate: Electorate;
  rule: DecisionRule;
  /** Least number of counted ballots for any outcome but `no-quorum`. */
  quorum: number;
  vetoHolders: string[];
  deadline: number;
  createdAt: number;
  /** The proposer's trace context (its `traceparent` tag): ballots and the result continue this trace. */
  trace?: TraceParent;
}

/** A ballot as read from its event. */
export interface Ballot {
  id: string;
  voter: string;
  proposalId: string;
  /** An option, or {@link VETO}. */
  choice: string;
  createdAt: number;
}

/** What a new proposal says. */
export interface ProposalInput {
  question: string;
  options: readonly string[];
  electorate: Electorate;
  rule: DecisionRule;
  quorum?: number;
  vetoHolders?: readonly string[];
  deadline: number;
}

/** Builds a proposal template; voters of a pubkey electorate are p-tagged (their mailboxes get it). */
export function makeProposal(p: ProposalInput, createdAt: number): EventTemplate {
  const tags: string[][] = p.options.map((o) => ['option', o]);
  if (p.electorate.type === 'pubkeys') for (const pk of p.electorate.pubkeys) tags.push(['p', pk, '', 'voter']);
  else tags.push(['electorate', 'doc', p.electorate.address]);
  tags.push(p.rule.type === 'majority' ? ['rule', 'majority'] : ['rule', 'threshold', `${p.rule.num}/${p.rule.den}`]);
  tags.push(['quorum', String(p.quorum ?? 0)]);
  for (const v of p.vetoHolders ?? []) tags.push(['p', v, '', 'veto']);
  tags.push(['deadline', String(p.deadline)]);
  return { kind: DecisionKind.Proposal, created_at: createdAt, tags, content: p.question };
}

/** Reads a proposal; undefined when malformed. */
export function getProposal(ev: NostrEvent): Proposal | undefined {
  if (ev.kind !== DecisionKind.Proposal) return undefined;
  const ruleTag = ev.tags.find((t) => t[0] === 'rule');
  let rule: DecisionRule | undefined;
  if (ruleTag?.[1] === 'majority') rule = { type: 'majority' };
  else if (ruleTag?.[1] === 'threshold') {
    const m = /^(\d{1,6})\/(\d{1,6})$/.exec(ruleTag[2] ?? '');
    const [num, den] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
    if (num > 0 && den > 0 && num <= den) rule = { type: 'threshold', num, den };
  }
  const doc = ev.tags.find((t) => t[0] === 'electorate' && t[1] === 'doc');
  const voters = [...new Set(ev.tags.filter((t) => t[0] === 'p' && t[3] === 'voter').map((t) => t[1]!))];
  const vetoHolders = [...new Set(ev.tags.filter((t) => t[0] === 'p' && t[3] === 'veto').map((t) => t[1]!))];
  const options = getTagValues(ev, 'option');
  const quorum = Number(getTagValue(ev, 'quorum') ?? '0');
  const deadline = Number(getTagValue(ev, 'deadline'));
  if (!rule || options.length < 2 || options.length > 32 || !options.every(isOption) || new Set(options).size !== options.length) return undefined;
  if (!Number.isInteger(quorum) || quorum < 0 || !Number.isInteger(deadline) || deadline < 0) return undefined;
  if (!voters.every((v) => HEX64.test(v)) || !vetoHolders.every((v) => HEX64.test(v)) || vetoHolders.length > 100) return undefined;
  let electorate: Electorate;
  if (doc) {
    const address = doc[2] ?? '';
    if (voters.length > 0 || address.length < 1 || address.length > 512) return undefined;
    electorate = { type: 'doc', address };
  } else {
    if (voters.length < 1 || voters.length > 1000) return undefined;
    electorate = { type: 'pubkeys', pubkeys: voters };
  }
  const p: Proposal = {
    id: ev.id,
    proposer: ev.pubkey,
    question: ev.content,
    options,
    electorate,
    rule,
    quorum,
    vetoHolders,
    deadline,
    createdAt: ev.created_at,
  };
  const trace = getTraceparent(ev.tags);
  if (trace) p.trace = trace;
  return p;
}

/** Builds a ballot for `choice` (an option or {@link VETO}). */
export function makeBallot(proposal: Pick<Proposal, 'id' | 'proposer'>, choice: string, createdAt: number): EventTemplate {
  return {
    kind: DecisionKind.Ballot,
    created_at: createdAt,
    tags: [
      ['e', proposal.id, '', 'root'],
      ['p', proposal.proposer],
      ['choice', choice],
    ],
    content: '',
  };
}

/** Reads a ballot; undefined when malformed. */
export function getBallot(ev: NostrEvent): Ballot | undefined {
  if (ev.kind !== DecisionKind.Ballot) return undefined;
  const proposalId = ev.tags.find((t) => t[0] === 'e' && t[3] === 'root')?.[1];
  const choice = getTagValue(ev, 'choice');
  if (proposalId === undefined || !/^[0-9a-f]{64}$/.test(proposalId) || choice === undefined) return undefined;
  return { id: ev.id, voter: ev.pubkey, proposalId, choice, createdAt: ev.created_at };
}

/** The voters of a proposal: its pubkey list, or `members` for a document electorate (none known: nobody). */
export function getElectorate(proposal: Proposal, members?: readonly string[]): ReadonlySet<string> {
  return new Set(proposal.electorate.type === 'pubkeys' ? proposal.electorate.pubkeys : (members ?? []));
}

/** The earlier keys of a voter's identity (shared/identity-log.ts): a rotated member votes with its successor key. */
export type { PriorKeys };

/** The listed key a ballot votes for: the voter's own, or the earlier key of its identity that is listed. */
export function getListedVoter(
  listed: ReadonlySet<string> | readonly string[],
  ballot: Pick<Ballot, 'voter' | 'createdAt'>,
  priorKeys?: PriorKeys,
): string | undefined {
  const has = (k: string) => (Array.isArray(listed) ? listed.includes(k) : (listed as ReadonlySet<string>).has(k));
  if (has(ballot.voter)) return ballot.voter;
  return priorKeys?.(ballot.voter, ballot.createdAt).find(has);
}

/** Why a ballot is not valid for the proposal, or undefined. `members` resolves a document electorate. */
export function checkBallot(proposal: Proposal, ballot: Ballot, members?: readonly string[], priorKeys?: PriorKeys): string | undefined {
  if (ballot.proposalId !== proposal.id) return 'ballot for another proposal';
  if (ballot.createdAt > proposal.deadline) return 'ballot cast after the deadline';
  if (ballot.createdAt < proposal.createdAt) return 'ballot cast before the proposal';
  if (ballot.choice === VETO) return getListedVoter(proposal.vetoHolders, ballot, priorKeys) !== undefined ? undefined : 'only a veto holder may veto';
  if (!proposal.options.includes(ballot.choice)) return 'not one of the options';
  if (getListedVoter(getElectorate(proposal, members), ballot, priorKeys) === undefined) return 'voter not in the electorate';
  return undefined;
}

/** The outcome of a decision. */
export interface Tally {
  proposalId: string;
  /** `passed` (see `winner`), `failed` (no option met the rule), `no-quorum`, or `vetoed`. */
  outcome: 'passed' | 'failed' | 'no-quorum' | 'vetoed';
  winner: string | undefined;
  /** Counted ballots per option (every option listed). */
  counts: Record<string, number>;
  /** Number of voters whose latest ballot chose an option. */
  turnout: number;
  /** Veto holders whose latest ballot is a veto, sorted. */
  vetoedBy: string[];
  /** Ids of the ballots counted (each voter's latest), sorted. */
  counted: string[];
  /** Ballots not counted: invalid, or replaced by a later one of the same voter; sorted by id. */
  ignored: Array<{ id: string; why: string }>;
  /** True once `now` has reached the deadline: no further ballot can change it. */
  final: boolean;
}

/**
 * Tallies a proposal from any collection of ballots (order and duplicates do not matter). Each
 * voter's latest valid ballot counts (greatest created_at; on a tie the lowest id, as NIP-01
 * does for replaceable events). A veto holder whose latest ballot vetoes vetoes the proposal; below
 * `quorum` counted ballots there is no quorum; otherwise the option with the most ballots passes
 * if it meets the rule (majority: more than half; threshold num/den: at least that share) and no
 * other option has as many.
 */
export function tallyDecision(
  proposal: Proposal,
  ballots: readonly Ballot[],
  opts: { members?: readonly string[]; now?: number; priorKeys?: PriorKeys } = {},
): Tally {
  const ignored = new Map<string, string>();
  const latest = new Map<string, Ballot>();
  const listed = new Set([...getElectorate(proposal, opts.members), ...proposal.vetoHolders]);
  for (const b of ballots) {
    const why = checkBallot(proposal, b, opts.members, opts.priorKeys);
    if (why !== undefined) {
      ignored.set(b.id, why);
      continue;
    }
    // One voice per listed member, whichever of its identity's keys cast it.
    const voter = getListedVoter(listed, b, opts.priorKeys) ?? b.voter;
    const cur = latest.get(voter);
    if (!cur || b.createdAt > cur.createdAt || (b.createdAt === cur.createdAt && b.id < cur.id)) latest.set(voter, b);
  }
  const counted = new Set([...latest.values()].map((b) => b.id));
  for (const b of ballots) if (!counted.has(b.id) && !ignored.has(b.id)) ignored.set(b.id, 'replaced by a later ballot of the same voter');
  const counts: Record<string, number> = Object.fromEntries(proposal.options.map((o) => [o, 0]));
  const vetoedBy: string[] = [];
  let turnout = 0;
  for (const [voter, b] of latest) {
    if (b.choice === VETO) vetoedBy.push(voter);
    else {
      counts[b.choice] = (counts[b.choice] ?? 0) + 1;
      turnout++;
    }
  }
  vetoedBy.sort();
  let outcome: Tally['outcome'];
  let winner: string | undefined;
  if (vetoedBy.length > 0) outcome = 'vetoed';
  else if (turnout < proposal.quorum || turnout === 0) outcome = 'no-quorum';
  else {
    const top = Math.max(...Object.values(counts));
    const leaders = proposal.options.filter((o) => counts[o] === top);
    const rule = proposal.rule;
    const meets = rule.type === 'majority' ? top * 2 > turnout : top * rule.den >= rule.num * turnout;
    if (leaders.length === 1 && meets) {
      outcome = 'passed';
      winner = leaders[0];
    } else outcome = 'failed';
  }
  return {
    proposalId: proposal.id,
    outcome,
    winner,
    counts,
    turnout,
    vetoedBy,
    counted: [...counted].sort(),
    ignored: [...ignored].map(([id, why]) => ({ id, why })).sort((a, b) => (a.id < b.id ? -1 : 1)),
    final: opts.now !== undefined && opts.now >= proposal.deadline,
  };
}

/** Builds the proposer's record of a tally (kind 4345), naming the ballots counted. */
export function makeDecisionResult(proposal: Pick<Proposal, 'id'>, tally: Tally, createdAt: number): EventTemplate {
  return {
    kind: DecisionKind.Result,
    created_at: createdAt,
    tags: [
      ['e', proposal.id, '', 'root'],
      ['outcome', tally.outcome],
      ...(tally.winner ? [['winner', tally.winner]] : []),
      ...tally.counted.map((id) => ['e', id, '', 'ballot']),
    ],
    content: JSON.stringify({ counts: tally.counts, turnout: tally.turnout, vetoedBy: tally.vetoedBy }),
  };
}
