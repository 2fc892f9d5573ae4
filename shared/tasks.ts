import type { EventTemplate, NostrEvent } from './event.js';
import { getTagValue, getTagValues } from './event.js';
import type { PriorKeys } from './identity-log.js';
import { getTraceparent, type TraceParent } from './trace-context.js';

/**
 * Signed task lifecycles (Roost): a requester publishes a request (kind 4340), workers offer
 * (4341), and every change of state is a step (4342) signed by the party allowed to make it that
 * names the task's request (`root`) and the step before it (`prev`), so the history is a chain
 * anyone can check. States follow A2A's. Pure code: the relay's policy and the client's view of a
 * task both call {@link checkTaskStep} and {@link getTaskChain}. See docs/tasks.md.
 */

/** Kinds of the task events (regular: every step is kept). */
export const TaskKind = { Request: 4340, Offer: 4341, Step: 4342 } as const;

/** Every state a task can be in (A2A's names). */
export const TASK_STATES = ['submitted', 'working', 'input-required', 'completed', 'failed', 'canceled', 'rejected'] as const;

/** A task's state. */
export type TaskState = (typeof TASK_STATES)[number];

/** States after which no step is valid. */
export const TERMINAL_TASK_STATES: ReadonlySet<TaskState> = new Set<TaskState>(['completed', 'failed', 'canceled', 'rejected']);

/** Tag carrying the capability wanted (the agent card's capability tag, so relays filter with `#c`). */
export const TASK_CAPABILITY_TAG = 'c';

const HEX64 = /^[0-9a-f]{64}$/;
const AMOUNT = /^\d+(\.\d+)?$/;
const isHex64 = (v: unknown): v is string => typeof v === 'string' && HEX64.test(v);
const isCapability = (v: string) => v.length >= 1 && v.length <= 256;

/** An amount and its unit (`budget`, `price`). */
export interface TaskAmount {
  amount: string;
  unit: string;
}

/** A task request as read from its event. */
export interface TaskRequest {
  id: string;
  requester: string;
  /** 1–16 capabilities, each 1–256 characters. */
  capabilities: string[];
  input: string;
  inputRef?: string;
  deadline?: number;
  budget?: TaskAmount;
  /** Set when the request is addressed to one worker (a private task, or a directed public one). */
  worker?: string;
  createdAt: number;
  /** The requester's trace context (its `traceparent` tag): every later event of the task continues this trace. */
  trace?: TraceParent;
}

/** A worker's offer to do a task. */
export interface TaskOffer {
  id: string;
  worker: string;
  requestId: string;
  note: string;
  price?: TaskAmount;
  createdAt: number;
}

/** One step of a task's chain. */
export interface TaskStep {
  id: string;
  author: string;
  root: string;
  prev: string;
  state: TaskState;
  /** The worker the task is assigned to from this step on (absent while none is). */
  worker?: string;
  /** On an acceptance: the offer accepted. */
  offer?: string;
  content: string;
  createdAt: number;
}

/** Reads an `amount unit` tag; undefined when absent, null when malformed. */
function getAmount(ev: Pick<NostrEvent, 'tags'>, name: string): TaskAmount | undefined | null {
  const t = ev.tags.find((x) => x[0] === name);
  if (!t) return undefined;
  const [, amount, unit] = t;
  return amount !== undefined && AMOUNT.test(amount) && unit !== undefined && unit.length >= 1 && unit.length <= 16 ? { amount, unit } : null;
}

/** What a new request says. */
export interface TaskRequestInput {
  capabilities: readonly string[];
  input: string;
  inputRef?: string;
  deadline?: number;
  budget?: TaskAmount;
  /** Address the request to this worker only. */
  worker?: string;
}

/** Builds a task request template. */
export function makeTaskRequest(r: TaskRequestInput, createdAt: number): EventTemplate {
  const tags: string[][] = r.capabilities.map((c) => [TASK_CAPABILITY_TAG, c]);
  if (r.inputRef !== undefined) tags.push(['r', r.inputRef]);
  if (r.deadline !== undefined) tags.push(['deadline', String(r.deadline)]);
  if (r.budget) tags.push(['budget', r.budget.amount, r.budget.unit]);
  if (r.worker !== undefined) tags.push(['p', r.worker]);
  return { kind: TaskKind.Request, created_at: createdAt, tags, content: r.input };
}

/** Reads a task request; undefined when the event is not a well-formed one. */
export function getTaskRequest(ev: NostrEvent): TaskRequest | undefined {
  if (ev.kind !== TaskKind.Request) return undefined;
  const capabilities = getTagValues(ev, TASK_CAPABILITY_TAG);
  if (capabilities.length < 1 || capabilities.length > 16 || !capabilities.every(isCapability)) return undefined;
  const budget = getAmount(ev, 'budget');
  const deadlineTag = getTagValue(ev, 'deadline');
  const deadline = deadlineTag === undefined ? undefined : Number(deadlineTag);
  const workers = getTagValues(ev, 'p');
  const inputRef = getTagValue(ev, 'r');
  if (budget === null || workers.length > 1 || (deadline !== undefined && !(Number.isInteger(deadline) && deadline >= 0))) return undefined;
  if (inputRef !== undefined && inputRef.length > 2048) return undefined;
  const worker = workers[0];
  if (worker !== undefined && (!isHex64(worker) || worker === ev.pubkey)) return undefined;
  const r: TaskRequest = { id: ev.id, requester: ev.pubkey, capabilities, input: ev.content, createdAt: ev.created_at };
  if (inputRef !== undefined) r.inputRef = inputRef;
  if (deadline !== undefined) r.deadline = deadline;
  if (budget) r.budget = budget;
  if (worker !== undefined) r.worker = worker;
  const trace = getTraceparent(ev.tags);
  if (trace) r.trace = trace;
  return r;
}

/** Builds an offer to do `request`. */
export function makeTaskOffer(
  request: Pick<TaskRequest, 'id' | 'requester'>,
  o: { note?: string; price?: { amount: string; unit: string } },
  createdAt: number,
): EventTemplate {
  const tags = [
    ['e', request.id, '', 'root'],
    ['p', request.requester],
  ];
  if (o.price) tags.push(['price', o.price.amount, o.price.unit]);
  return { kind: TaskKind.Offer, created_at: createdAt, tags, content: o.note ?? '' };
}

/** Reads an offer; undefined when malformed. */
export function getTaskOffer(ev: NostrEvent): TaskOffer | undefined {
  if (ev.kind !== TaskKind.Offer) return undefined;
  const requestId = getMarkedE(ev, 'root');
  const price = getAmount(ev, 'price');
  if (!isHex64(requestId) || price === null) return undefined;
  const o: TaskOffer = { id: ev.id, worker: ev.pubkey, requestId, note: ev.content, createdAt: ev.created_at };
  if (price) o.price = price;
  return o;
}

/** What a new step says. `to` is the other party (p-tagged, so the step reaches its mailbox and wakes it). */
export interface TaskStepInput {
  root: string;
  prev: string;
  state: TaskState;
  worker?: string;
  offer?: string;
  to: string;
  content?: string;
}

/** Builds a step template. */
export function makeTaskStep(s: TaskStepInput, createdAt: number): EventTemplate {
  const tags = [
    ['e', s.root, '', 'root'],
    ['e', s.prev, '', 'prev'],
    ['status', s.state],
    ['p', s.to],
  ];
  if (s.worker !== undefined) tags.push(['worker', s.worker]);
  if (s.offer !== undefined) tags.push(['e', s.offer, '', 'offer']);
  return { kind: TaskKind.Step, created_at: createdAt, tags, content: s.content ?? '' };
}

/** Reads a step; undefined when malformed. */
export function getTaskStep(ev: NostrEvent): TaskStep | undefined {
  if (ev.kind !== TaskKind.Step) return undefined;
  const root = getMarkedE(ev, 'root');
  const prev = getMarkedE(ev, 'prev');
  const state = getTagValue(ev, 'status') as TaskState | undefined;
  const worker = getTagValue(ev, 'worker');
  const offer = getMarkedE(ev, 'offer');
  if (!isHex64(root) || !isHex64(prev) || state === undefined || !TASK_STATES.includes(state)) return undefined;
  if ((worker !== undefined && !isHex64(worker)) || (offer !== undefined && !isHex64(offer))) return undefined;
  const s: TaskStep = { id: ev.id, author: ev.pubkey, root, prev, state, content: ev.content, createdAt: ev.created_at };
  if (worker !== undefined) s.worker = worker;
  if (offer !== undefined) s.offer = offer;
  return s;
}

/** The first `e` tag with this NIP-10 style marker. */
function getMarkedE(ev: Pick<NostrEvent, 'tags'>, marker: string): string | undefined {
  return ev.tags.find((t) => t[0] === 'e' && t[3] === marker)?.[1];
}

/** Where a task stands after some step: its state and assigned worker. */
export interface TaskPosition {
  state: TaskState;
  worker: string | undefined;
}

/** The position right after the request. */
export function getInitialPosition(request: TaskRequest): TaskPosition {
  return { state: 'submitted', worker: request.worker };
}

/**
 * Why `step` may not follow a task at `at`, or undefined when it may. Who may do what:
 * the requester accepts an offer (submitted → working, naming the offer and its author as worker),
 * answers a request for input (input-required → working) and cancels (any open state → canceled);
 * the assigned worker reports progress (working → working), asks for input, completes, fails or
 * rejects; a worker named by a directed request takes it (submitted → working) or rejects it.
 * `offer` is the accepted offer's event when the step names one. A party that rotated its key acts
 * with its successor key (`priorKeys`: the earlier keys of the step's author, from its key event
 * log); the request and the steps keep naming the party's key as it was when named.
 */
export function checkTaskStep(request: TaskRequest, at: TaskPosition, step: TaskStep, offer?: TaskOffer, priorKeys?: PriorKeys): string | undefined {
  if (step.root !== request.id) return 'step does not belong to this task';
  if (TERMINAL_TASK_STATES.has(at.state)) return `task already ${at.state}`;
  const requester = request.requester;
  // The log is asked only about an author that is neither party by its own key (the relay reads it from its store).
  const prior = step.author === requester || step.author === at.worker ? [] : (priorKeys?.(step.author, step.createdAt) ?? []);
  const byRequester = step.author === requester || prior.includes(requester);
  const byWorker = at.worker !== undefined && (step.author === at.worker || prior.includes(at.worker));
  const to = step.state;
  if (at.state === 'submitted' && to === 'working') {
    if (byRequester) {
      if (at.worker !== undefined) return 'a directed request is taken by its worker, not accepted';
      if (step.offer === undefined || offer === undefined || offer.id !== step.offer) return 'an acceptance must name an offer';
      if (offer.requestId !== request.id) return 'the offer is for another task';
      if (offer.worker === requester) return 'the requester cannot accept its own offer';
      if (step.worker !== offer.worker) return 'the worker must be the author of the offer';
      return undefined;
    }
    if (byWorker && step.offer === undefined && step.worker === at.worker) return undefined;
    return 'only the requester accepts an offer';
  }
  if (step.offer !== undefined) return 'only an acceptance names an offer';
  if (to === 'canceled') return byRequester ? sameWorker(at, step) : 'only the requester cancels';
  if (at.state === 'input-required' && to === 'working') return byRequester ? sameWorker(at, step) : 'only the requester answers a request for input';
  const workerMoves: Record<string, readonly TaskState[]> = {
    submitted: ['rejected'],
    working: ['working', 'input-required', 'completed', 'failed', 'rejected'],
    'input-required': ['failed', 'rejected'],
  };
  if (!(workerMoves[at.state] ?? []).includes(to)) return `no transition from ${at.state} to ${to}`;
  if (at.worker === undefined) return `no worker is assigned to move the task to ${to}`;
  if (!byWorker) return `only the assigned worker moves the task to ${to}`;
  return sameWorker(at, step);
}

/** Whether `party` made `step`: its author, or a successor key of the author's identity at the step's time. */
export function isTaskParty(party: string, step: Pick<TaskStep, 'author' | 'createdAt'>, priorKeys?: PriorKeys): boolean {
  return step.author === party || (priorKeys?.(step.author, step.createdAt).includes(party) ?? false);
}

function sameWorker(at: TaskPosition, step: TaskStep): string | undefined {
  return step.worker === at.worker ? undefined : 'a step cannot change the worker';
}

/** A task's history as any party computes it from the events it holds. */
export interface TaskChain {
  request: TaskRequest;
  state: TaskState;
  worker: string | undefined;
  /** Id of the last valid step (the request's id before any): the `prev` of the next step. */
  head: string;
  /** The valid steps, in chain order. */
  steps: TaskStep[];
  /** Valid offers, oldest first. */
  offers: TaskOffer[];
  /** Events that name this task but are not on its chain, with the reason. */
  ignored: Array<{ id: string; why: string }>;
}

/**
 * The chain of a task from the request and any set of events naming it (in any order, duplicates
 * allowed): from the request, each step's valid successors are tried in (created_at, id) order and
 * the first valid one continues the chain. Every party holding the same events gets the same chain.
 * `priorKeys` lets a rotated party continue with its successor key ({@link checkTaskStep}).
 */
export function getTaskChain(request: TaskRequest, events: readonly NostrEvent[], priorKeys?: PriorKeys): TaskChain {
  const offers = new Map<string, TaskOffer>();
  const byPrev = new Map<string, TaskStep[]>();
  const ignored = new Map<string, string>();
  for (const ev of events) {
    if (ev.id === request.id) continue;
    if (ev.kind === TaskKind.Offer) {
      const o = getTaskOffer(ev);
      if (!o || o.requestId !== request.id) ignored.set(ev.id, 'not an offer for this task');
      else if (isTaskParty(request.requester, { author: o.worker, createdAt: o.createdAt }, priorKeys)) ignored.set(ev.id, 'the requester cannot offer');
      else if (request.worker !== undefined && o.worker !== request.worker) ignored.set(ev.id, 'the request is addressed to another worker');
      else offers.set(o.id, o);
    } else if (ev.kind === TaskKind.Step) {
      const s = getTaskStep(ev);
      if (!s || s.root !== request.id) {
        ignored.set(ev.id, 'not a step of this task');
        continue;
      }
      const list = byPrev.get(s.prev) ?? [];
      if (!list.some((x) => x.id === s.id)) list.push(s);
      byPrev.set(s.prev, list);
    }
  }
  const steps: TaskStep[] = [];
  let at = getInitialPosition(request);
  let head = request.id;
  const onChain = new Set<string>();
  for (;;) {
    const next = (byPrev.get(head) ?? []).sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
    let chosen: TaskStep | undefined;
    for (const s of next) {
      const why = checkTaskStep(request, at, s, s.offer === undefined ? undefined : offers.get(s.offer), priorKeys);
      if (why === undefined && chosen === undefined) chosen = s;
      else ignored.set(s.id, why ?? 'another step already follows the same previous step');
    }
    if (!chosen) break;
    steps.push(chosen);
    onChain.add(chosen.id);
    at = { state: chosen.state, worker: chosen.worker };
    head = chosen.id;
  }
  for (const list of byPrev.values())
    for (const s of list) if (!onChain.has(s.id) && !ignored.has(s.id)) ignored.set(s.id, 'does not follow a step of the chain');
  return {
    request,
    state: at.state,
    worker: at.worker,
    head,
    steps,
    offers: [...offers.values()].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1)),
    ignored: [...ignored].map(([id, why]) => ({ id, why })).sort((a, b) => (a.id < b.id ? -1 : 1)),
  };
}

/** A candidate worker for {@link rankWorkers}. */
export interface WorkerCandidate {
  pubkey: string;
  capabilities: readonly string[];
  presence: 'online' | 'asleep' | 'offline';
}

/** Completed and failed tasks of one worker, counted from valid signed chains. */
export interface WorkerRecord {
  completed: number;
  failed: number;
  /** Median seconds from acceptance to completion over completed tasks (signed `created_at`s); undefined without any. */
  turnaround?: number;
}

/** A ranked candidate. */
export interface RankedWorker extends WorkerCandidate, WorkerRecord {
  /** Share of the wanted capabilities offered, 0–1. */
  match: number;
  /** (completed + 1) / (completed + failed + 2): a prior of one success and one failure. */
  reliability: number;
}

const PRESENCE_RANK = { online: 2, asleep: 1, offline: 0 } as const;

/**
 * Orders candidates for a task: capability match first, then presence (online, asleep but
 * wakeable, offline), then reliability from counted outcomes, then the faster median turnaround,
 * then completed count, then pubkey.
 * Records come from {@link countWorkerOutcomes}, never from what a worker says about itself.
 */
export function rankWorkers(candidates: readonly WorkerCandidate[], wanted: readonly string[], records: ReadonlyMap<string, WorkerRecord>): RankedWorker[] {
  return candidates
    .map((c) => {
      const r = records.get(c.pubkey) ?? { completed: 0, failed: 0 };
      const match = wanted.length === 0 ? 1 : wanted.filter((w) => c.capabilities.includes(w)).length / wanted.length;
      return { ...c, ...r, match, reliability: (r.completed + 1) / (r.completed + r.failed + 2) };
    })
    .sort(
      (a, b) =>
        b.match - a.match ||
        PRESENCE_RANK[b.presence] - PRESENCE_RANK[a.presence] ||
        b.reliability - a.reliability ||
        (a.turnaround ?? Number.POSITIVE_INFINITY) - (b.turnaround ?? Number.POSITIVE_INFINITY) ||
        b.completed - a.completed ||
        (a.pubkey < b.pubkey ? -1 : 1),
    );
}

/** Completed/failed counts per worker over task chains (each chain counts once, for its assigned worker). */
export function countWorkerOutcomes(chains: readonly TaskChain[]): Map<string, WorkerRecord> {
  const out = new Map<string, WorkerRecord>();
  const times = new Map<string, number[]>();
  for (const c of chains) {
    if (c.worker === undefined || (c.state !== 'completed' && c.state !== 'failed')) continue;
    // A worker's own request proves nothing about it.
    if (c.worker === c.request.requester) continue;
    const r = out.get(c.worker) ?? { completed: 0, failed: 0 };
    if (c.state === 'completed') {
      r.completed++;
      const assigned = c.steps.find((x) => x.worker === c.worker);
      if (assigned) times.set(c.worker, [...(times.get(c.worker) ?? []), Math.max(0, c.steps.at(-1)!.createdAt - assigned.createdAt)]);
    } else r.failed++;
    out.set(c.worker, r);
  }
  for (const [worker, list] of times) {
    list.sort((a, b) => a - b);
    const mid = list.length >> 1;
    out.get(worker)!.turnaround = list.length % 2 ? list[mid]! : (list[mid - 1]! + list[mid]!) / 2;
  }
  return out;
}
