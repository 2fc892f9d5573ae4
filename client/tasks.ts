import { type Span, SpanKind, type Tracer } from '@opentelemetry/api';
import type { NostrEvent } from '../shared/event.js';
import {
  countWorkerOutcomes,
  getTaskChain,
  getTaskRequest,
  getTaskStep,
  makeTaskOffer,
  makeTaskRequest,
  makeTaskStep,
  rankWorkers,
  type RankedWorker,
  type TaskChain,
  TaskKind,
  type TaskRequest,
  type TaskRequestInput,
  type TaskState,
  TERMINAL_TASK_STATES,
} from '../shared/tasks.js';
import { ClientError } from './errors.js';
import { verifyEvent } from './identity.js';
import { addTraceTag, getDefaultTracer, runInSpan, startChildSpan, withSpan } from './tracing.js';
import type { WorkHost } from './work-host.js';

/** Tag marking a direct message that carries a signed task event (a private task). */
export const TASK_DM_TAG = 'roost-task';

/** What a worker's handler gets. */
export interface TaskContext {
  id: string;
  request: TaskRequest;
  input: string;
  /** Reports progress (a signed `working` step). */
  progress(text: string): Promise<void>;
}

/** A worker's handler: returns the result; a throw fails the task with the error's message. */
export type TaskHandler = (task: TaskContext) => string | Promise<string>;

/** How a worker answers requests. */
export interface OnRequestOptions {
  /** Offer on public requests nobody addressed to this worker (default true); a function may decline (undefined) or price. */
  offer?: boolean | ((request: TaskRequest) => { note?: string; price?: { amount: string; unit: string } } | undefined);
  /** Requests older than this are not offered on (default 3600 s). */
  lookbackSeconds?: number;
}

/**
 * `agent.tasks`: signed task lifecycles (docs/tasks.md). Public tasks are open events the relay
 * checks; private ones (`worker` set and `private: true`) travel as signed events inside gift-wrapped
 * DMs between the two parties. Either way every view of a task is {@link getTaskChain} over the
 * events held, so invalid steps are ignored here exactly as the relay refuses them.
 */
export class TaskClient {
  readonly #host: WorkHost;
  /** Private tasks: events by task id, as received or sent in direct messages (kept in memory). */
  readonly #private = new Map<string, Map<string, NostrEvent>>();
  readonly #watchers = new Set<(taskId: string) => void>();
  readonly #running = new Set<string>();
  readonly #workers: Array<{ capabilities: readonly string[]; handler: TaskHandler }> = [];
  readonly #tracer: Tracer;

  constructor(host: WorkHost) {
    this.#host = host;
    this.#tracer = host.tracer ?? getDefaultTracer();
  }

  /**
   * Publishes a task request (or sends it privately to `worker`); resolves with its id. When tracing,
   * the request names its `client.task.request` span in a `traceparent` tag (for a private task that
   * tag is on the signed event inside the encrypted DM), and every later event of the task continues
   * that trace (docs/observability.md).
   */
  async request(input: TaskRequestInput & { private?: boolean }): Promise<{ id: string; event: NostrEvent }> {
    if (input.private && input.worker === undefined) throw new ClientError('ROOST_ERR_BAD_INPUT', 'a private task needs a worker');
    const span = this.#tracer.startSpan('client.task.request', { kind: SpanKind.PRODUCER, attributes: { 'roost.task.private': input.private === true } });
    return runInSpan(span, async () => {
      const event = this.#host.sign(addTraceTag(makeTaskRequest(input, this.#nowSec()), span));
      if (!getTaskRequest(event)) throw new ClientError('ROOST_ERR_BAD_INPUT', 'invalid task request (capabilities 1–16, budget amount digits)');
      span.setAttribute('roost.task.id', event.id);
      if (input.private) {
        this.#remember(event.id, event);
        await this.#host.sendDirect(input.worker!, JSON.stringify(event), [[TASK_DM_TAG, event.id]]);
      } else await this.#host.publish(event);
      return { id: event.id, event };
    });
  }

  /** Offers to do a public task; resolves with the offer's id. */
  async offer(taskId: string, offer: { note?: string; price?: { amount: string; unit: string } } = {}): Promise<string> {
    const chain = await this.status(taskId);
    const span = startChildSpan(this.#tracer, 'client.task.offer', chain.request.trace, SpanKind.PRODUCER, { 'roost.task.id': taskId });
    return runInSpan(span, async () => {
      const event = this.#host.sign(addTraceTag(makeTaskOffer(chain.request, offer, this.#nowSec()), span));
      await this.#host.publish(event);
      return event.id;
    });
  }

  /** The requester accepts an offer: the task goes to `working` for the offer's author. */
  async accept(taskId: string, offerId: string): Promise<TaskChain> {
    const chain = await this.status(taskId);
    const offer = chain.offers.find((o) => o.id === offerId);
    if (!offer) throw new ClientError('ROOST_ERR_BAD_INPUT', `no valid offer ${offerId} on task ${taskId}`);
    return this.#step(chain, { state: 'working', worker: offer.worker, offer: offer.id, to: offer.worker });
  }

  /** The requester cancels the task. */
  async cancel(taskId: string, reason = ''): Promise<TaskChain> {
    const chain = await this.status(taskId);
    return this.#step(chain, { state: 'canceled', worker: chain.worker, to: chain.worker ?? chain.request.requester, content: reason });
  }

  /** Adds a step as this agent (progress, input-required, completed, failed, rejected, or the requester's input). */
  async update(taskId: string, state: TaskState, content = ''): Promise<TaskChain> {
    return this.#update(taskId, state, content, undefined);
  }

  async #update(taskId: string, state: TaskState, content: string, parent: Span | undefined): Promise<TaskChain> {
    const chain = await this.status(taskId);
    const to = this.#isMe(chain.request.requester) ? (chain.worker ?? chain.request.requester) : chain.request.requester;
    return this.#step(chain, { state, worker: chain.worker ?? this.#host.pubkey, to, content }, parent);
  }

  /** The task's chain as the relays (or, for a private task, its direct messages) hold it now. */
  async status(taskId: string): Promise<TaskChain> {
    const events = await this.#events(taskId);
    const reqEv = events.find((e) => e.id === taskId);
    const request = reqEv && getTaskRequest(reqEv);
    if (!request) throw new ClientError('ROOST_ERR_BAD_INPUT', `task ${taskId} not found`);
    return this.#chain(request, events);
  }

  /**
   * {@link getTaskChain}, with the key event logs of authors the task does not name read first: a
   * requester or worker that rotated continues the task with its successor key (docs/identity.md).
   */
  async #chain(request: TaskRequest, events: readonly NostrEvent[]): Promise<TaskChain> {
    const named = new Set([request.requester, ...(request.worker === undefined ? [] : [request.worker])]);
    for (const ev of events) if (ev.kind === TaskKind.Offer) named.add(ev.pubkey);
    for (const ev of events) {
      const worker = ev.kind === TaskKind.Step ? getTaskStep(ev)?.worker : undefined;
      if (worker !== undefined) named.add(worker);
    }
    const others = [...new Set(events.filter((e) => e.kind === TaskKind.Step && !named.has(e.pubkey)).map((e) => e.pubkey))];
    const priorKeys = others.length > 0 && this.#host.priorKeys ? await this.#host.priorKeys(others) : undefined;
    return getTaskChain(request, events, priorKeys);
  }

  /** Whether `pubkey` is this agent: its key, or an earlier key of its own log. */
  #isMe(pubkey: string | undefined): boolean {
    return pubkey !== undefined && (pubkey === this.#host.pubkey || (this.#host.ownKeys?.().includes(pubkey) ?? false));
  }

  /**
   * Waits for the task to end: resolves with the result (the completing step's content) and the
   * chain; rejects ROOST_ERR_TASK_ENDED when it failed, was canceled or rejected, ROOST_ERR_TIMEOUT
   * after `timeoutMs` (default 60 s).
   */
  async result(taskId: string, opts: { timeoutMs?: number } = {}): Promise<{ result: string; chain: TaskChain }> {
    const chain = await this.waitFor(taskId, (c) => TERMINAL_TASK_STATES.has(c.state), opts.timeoutMs ?? 60_000);
    if (chain.state === 'completed') return { result: chain.steps.at(-1)!.content, chain };
    throw new ClientError('ROOST_ERR_TASK_ENDED', `task ${taskId} ${chain.state}: ${chain.steps.at(-1)?.content ?? ''}`);
  }

  /** Resolves with the chain once `done(chain)` holds (checked on every new event of the task). */
  waitFor(taskId: string, done: (chain: TaskChain) => boolean, timeoutMs = 60_000): Promise<TaskChain> {
    return new Promise((resolve, reject) => {
      const events = new Map<string, NostrEvent>();
      let request: TaskRequest | undefined;
      let settled = false;
      const check = async () => {
        if (settled) return;
        for (const [id, ev] of this.#private.get(taskId) ?? []) events.set(id, ev);
        const reqEv = events.get(taskId);
        request ??= reqEv && getTaskRequest(reqEv);
        if (!request) return;
        const chain = await this.#chain(request, [...events.values()]);
        if (!settled && done(chain)) finish(() => resolve(chain));
      };
      const sub = this.#host.subscribe(taskFilters(taskId), (ev) => {
        events.set(ev.id, ev);
        void check();
      });
      const watcher = (id: string) => id === taskId && void check();
      this.#watchers.add(watcher);
      const timer = setTimeout(
        () => finish(() => reject(new ClientError('ROOST_ERR_TIMEOUT', `task ${taskId} did not reach the awaited state within ${timeoutMs} ms`))),
        timeoutMs,
      );
      const finish = (then: () => void) => {
        settled = true;
        clearTimeout(timer);
        this.#watchers.delete(watcher);
        queueMicrotask(() => sub.close());
        then();
      };
      void check();
    });
  }

  /**
   * Works on requests for these capabilities: offers on open public ones, takes those addressed to
   * this agent, and once a task is this agent's (accepted, or taken) runs `handler` with automatic
   * steps: `working` ("started") first, `completed` with the returned string, or `failed` with the
   * error. Accepted tasks are found from the signed history on every start, so an agent woken from
   * sleep picks up what was accepted while it slept; a task already ended is never run again.
   */
  onRequest(capabilities: readonly string[], handler: TaskHandler, opts: OnRequestOptions = {}): { close(): void } {
    if (capabilities.length === 0) throw new ClientError('ROOST_ERR_BAD_INPUT', 'onRequest needs at least one capability');
    const entry = { capabilities, handler };
    this.#workers.push(entry);
    const since = this.#nowSec() - (opts.lookbackSeconds ?? 3600);
    const offered = new Set<string>();
    const requests = this.#host.subscribe([{ kinds: [TaskKind.Request], '#c': [...capabilities], since }], (ev) => {
      const request = getTaskRequest(ev);
      if (!request || this.#isMe(request.requester) || !request.capabilities.every((c) => capabilities.includes(c))) return;
      if (this.#isMe(request.worker)) void this.#run(request.id, handler, true);
      else if (request.worker === undefined && opts.offer !== false && !offered.has(request.id)) {
        offered.add(request.id);
        const terms = typeof opts.offer === 'function' ? opts.offer(request) : {};
        if (terms) void this.#offerOnce(request.id, terms);
      }
    });
    // Steps name the worker's key as it was when the task was given: every key of this agent's log is asked for.
    const mine = [...new Set([this.#host.pubkey, ...(this.#host.ownKeys?.() ?? [])])];
    const steps = this.#host.subscribe([{ kinds: [TaskKind.Step], '#p': mine }], (ev) => {
      const step = getTaskStep(ev);
      if (this.#isMe(step?.worker)) void this.#run(step!.root, handler, false);
    });
    return {
      close: () => {
        requests.close();
        steps.close();
        this.#workers.splice(this.#workers.indexOf(entry), 1);
      },
    };
  }

  /**
   * Candidate workers for these capabilities, ranked by {@link rankWorkers}: match, presence, then
   * completed/failed counts recomputed from the signed chains of their past tasks on the relays.
   */
  async discover(capabilities: readonly string[]): Promise<RankedWorker[]> {
    const agents = (await this.#host.discover(capabilities)).filter((a) => a.pubkey !== this.#host.pubkey);
    if (agents.length === 0) return [];
    const pubkeys = agents.map((a) => a.pubkey);
    const ends = (await this.#host.query([{ kinds: [TaskKind.Step], authors: pubkeys, limit: 500 }]))
      .map(getTaskStep)
      .filter((s) => s !== undefined && (s.state === 'completed' || s.state === 'failed'));
    const roots = [...new Set(ends.map((s) => s!.root))].slice(0, 200);
    const chains: TaskChain[] = [];
    if (roots.length > 0) {
      const events = await this.#host.query([{ ids: roots }, { kinds: [TaskKind.Offer, TaskKind.Step], '#e': roots, limit: 5000 }]);
      for (const root of roots) {
        const reqEv = events.find((e) => e.id === root);
        const request = reqEv && getTaskRequest(reqEv);
        if (request) chains.push(getTaskChain(request, events));
      }
    }
    return rankWorkers(
      agents.map((a) => ({ pubkey: a.pubkey, capabilities: a.capabilities, presence: a.presence })),
      capabilities,
      countWorkerOutcomes(chains),
    );
  }

  /**
   * Takes a direct message carrying a private task event (returns true), else false. The event
   * must be signed by the DM's sender; steps are judged later, by the chain, like public ones.
   */
  async handleDirectMessage(msg: { from: string; content: string; tags: string[][] }): Promise<boolean> {
    const tag = msg.tags.find((t) => t[0] === TASK_DM_TAG);
    if (!tag) return false;
    let ev: NostrEvent;
    try {
      ev = JSON.parse(msg.content) as NostrEvent;
    } catch {
      return true;
    }
    if (typeof ev !== 'object' || ev === null || ev.pubkey !== msg.from || !verifyEvent(ev)) return true;
    const root = ev.kind === TaskKind.Request ? ev.id : getTaskStep(ev)?.root;
    if (root === undefined || tag[1] !== root) return true;
    this.#remember(root, ev);
    if (ev.kind === TaskKind.Request) {
      const request = getTaskRequest(ev);
      const w = request && this.#isMe(request.worker) ? this.#workers.find((x) => request.capabilities.every((c) => x.capabilities.includes(c))) : undefined;
      if (w) void this.#run(root, w.handler, true);
    }
    for (const fn of this.#watchers) fn(root);
    return true;
  }

  async #offerOnce(taskId: string, terms: { note?: string; price?: { amount: string; unit: string } }): Promise<void> {
    try {
      const chain = await this.status(taskId);
      if (chain.state !== 'submitted' || chain.offers.some((o) => this.#isMe(o.worker))) return;
      await this.offer(taskId, terms);
    } catch {
      // A request that went away or a refused offer: nothing to do.
    }
  }

  /** Runs the handler on a task that is this agent's (or takes a directed one first). */
  async #run(taskId: string, handler: TaskHandler, take: boolean): Promise<void> {
    if (this.#running.has(taskId)) return;
    this.#running.add(taskId);
    try {
      let chain = await this.status(taskId);
      // The worker named may be an earlier key of this agent (rotated since): steps keep naming it.
      const worker = chain.worker;
      if (worker === undefined || !this.#isMe(worker)) return;
      if (take && chain.state === 'submitted') chain = await this.#step(chain, { state: 'working', worker, to: chain.request.requester, content: 'started' });
      else if (chain.state === 'working' && !this.#isMe(chain.steps.at(-1)?.author))
        chain = await this.#step(chain, { state: 'working', worker, to: chain.request.requester, content: 'started' });
      if (chain.worker !== worker || (chain.state !== 'working' && chain.state !== 'input-required')) return;
      // The handler's work, in the requester's trace: its progress and result steps are children of this span.
      const span = startChildSpan(this.#tracer, 'client.task.run', chain.request.trace, SpanKind.CONSUMER, { 'roost.task.id': taskId });
      await runInSpan(span, async () => {
        const ctx: TaskContext = {
          id: taskId,
          request: chain.request,
          input: chain.request.input,
          progress: async (text) => {
            await this.#update(taskId, 'working', text, span);
          },
        };
        let outcome: { state: TaskState; content: string };
        try {
          outcome = { state: 'completed', content: await withSpan(span, () => handler(ctx)) };
        } catch (err) {
          outcome = { state: 'failed', content: err instanceof Error ? err.message : String(err) };
        }
        const now = await this.status(taskId);
        if (!TERMINAL_TASK_STATES.has(now.state)) await this.#update(taskId, outcome.state, outcome.content, span);
      });
    } catch {
      // Refused or unreachable: the task stays where the chain says; a later event retries it.
    } finally {
      this.#running.delete(taskId);
    }
  }

  /**
   * Signs and sends the next step after the chain's head (publicly, or by DM for a private task), in a
   * `client.task.step` span: a child of `parent` (the worker's run) or else of the request's span.
   */
  async #step(chain: TaskChain, s: { state: TaskState; worker?: string; offer?: string; to: string; content?: string }, parent?: Span): Promise<TaskChain> {
    const root = chain.request.id;
    const span = startChildSpan(this.#tracer, 'client.task.step', parent ?? chain.request.trace, SpanKind.PRODUCER, {
      'roost.task.id': root,
      'roost.task.state': s.state,
    });
    return runInSpan(span, async () => {
      const event = this.#host.sign(addTraceTag(makeTaskStep({ root, prev: chain.head, ...s }, this.#nowSec()), span));
      if (this.#private.has(root)) {
        this.#remember(root, event);
        await this.#host.sendDirect(s.to, JSON.stringify(event), [[TASK_DM_TAG, root]]);
        for (const fn of this.#watchers) fn(root);
      } else await this.#host.publish(event);
      return this.#chain(chain.request, [...(await this.#events(root)), event]);
    });
  }

  async #events(taskId: string): Promise<NostrEvent[]> {
    const priv = this.#private.get(taskId);
    if (priv) return [...priv.values()];
    return this.#host.query(taskFilters(taskId));
  }

  #remember(root: string, ev: NostrEvent): void {
    let m = this.#private.get(root);
    if (!m) this.#private.set(root, (m = new Map()));
    m.set(ev.id, ev);
  }

  #nowSec(): number {
    return Math.floor(this.#host.now() / 1000);
  }
}

/** The filters that fetch a public task: its request, offers and steps. */
export function taskFilters(taskId: string) {
  return [{ ids: [taskId] }, { kinds: [TaskKind.Offer, TaskKind.Step], '#e': [taskId], limit: 1000 }];
}
