import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import {
  checkTaskStep,
  ClientError,
  getNpub,
  getTaskChain,
  getTaskRequest,
  makePriorKeys,
  makeWorkHost,
  TaskKind,
  type PriorKeys,
  type Proposal,
  type TaskChain,
  type TaskState,
  type Tally,
  type WorkHost,
} from '../../client/node/index.js';
import type { Bridge } from './bridge.js';

/** Characters of a task's input, a step's text or a result shown by the task tools (task_result gives more). */
export const TASK_TEXT_CHARS = 500;
/** Largest result text returned by `task_result`. */
export const TASK_RESULT_CHARS = 16_000;
/** Longest wait of `task_result`: below the SDK client's default 60 s request timeout. */
export const TASK_WAIT_MAX_S = 50;

const HEX_ID = /^[0-9a-f]{64}$/;
const taskId = z
  .string()
  .regex(HEX_ID, 'a task id is the 64 lowercase hex characters returned by task_request or listed by task_list')
  .describe('The task id (64 hex characters, from task_request or task_list).');
const proposalId = z
  .string()
  .regex(HEX_ID, 'a proposal id is the 64 lowercase hex characters returned by decision_propose')
  .describe('The proposal id (64 hex characters, from decision_propose or a proposal in your inbox).');
const amount = z
  .object({
    amount: z.string().regex(/^\d+(\.\d+)?$/, 'amount is digits, e.g. "5" or "2.50"'),
    unit: z.string().min(1).max(16).describe('e.g. "usd", "sat"'),
  })
  .describe('An amount and its unit, e.g. {"amount":"5","unit":"usd"}.');

const iso = (sec: number) => new Date(sec * 1000).toISOString().replace('.000Z', 'Z');
const cut = (s: string, max = TASK_TEXT_CHARS) => (s.length > max ? `${s.slice(0, max)}…` : s);
const text = (value: unknown): CallToolResult => ({ content: [{ type: 'text', text: JSON.stringify(value) }] });

/**
 * This agent in its own key event log (docs/identity.md): `isMe` holds for every key of the log, so a task
 * requested, offered on or given to an earlier key is still this agent's; `priorKeys` (the helper the relay's
 * task policy and `agent.tasks` use) lets the current key act for a party named by an earlier one.
 */
interface Me {
  readonly pubkey: string;
  isMe(pubkey: string | undefined): boolean;
  readonly priorKeys: PriorKeys;
}

/** A task in a few fields: what an LLM needs to decide its next call. */
function taskSummary(c: TaskChain, me: Me) {
  const last = c.steps.at(-1);
  const role = me.isMe(c.request.requester) ? 'requester' : me.isMe(c.worker) || me.isMe(c.request.worker) ? 'worker' : 'other';
  return {
    task: c.request.id,
    state: c.state,
    role,
    capabilities: c.request.capabilities,
    input: cut(c.request.input, 200),
    requester: getNpub(c.request.requester),
    ...(c.worker ? { worker: getNpub(c.worker) } : {}),
    offers: c.offers.length,
    ...(c.offers.some((o) => me.isMe(o.worker)) ? { offered_by_me: true } : {}),
    ...(last
      ? { last_step: { state: last.state, by: me.isMe(last.author) ? 'me' : getNpub(last.author), at: iso(last.createdAt), text: cut(last.content, 200) } }
      : {}),
    at: iso(c.request.createdAt),
  };
}

/** The task in full (bounded): offers, steps, and what this agent may do next. */
function taskDetail(c: TaskChain, me: Me) {
  const steps = c.steps.slice(-20);
  return {
    ...taskSummary(c, me),
    input: cut(c.request.input),
    ...(c.request.inputRef ? { input_ref: c.request.inputRef } : {}),
    ...(c.request.deadline !== undefined ? { deadline: iso(c.request.deadline) } : {}),
    ...(c.request.budget ? { budget: c.request.budget } : {}),
    offers: c.offers
      .slice(0, 20)
      .map((o) => ({ offer: o.id, worker: getNpub(o.worker), note: cut(o.note, 200), ...(o.price ? { price: o.price } : {}), at: iso(o.createdAt) })),
    steps: steps.map((s) => ({ state: s.state, by: me.isMe(s.author) ? 'me' : getNpub(s.author), at: iso(s.createdAt), text: cut(s.content) })),
    ...(c.steps.length > steps.length ? { earlier_steps: c.steps.length - steps.length } : {}),
    ...(c.ignored.length ? { ignored_events: c.ignored.length } : {}),
    next: nextMoves(c, me),
  };
}

/** What this agent may do now, in words an LLM acts on. */
function nextMoves(c: TaskChain, me: Me): string {
  const requester = me.isMe(c.request.requester);
  const worker = me.isMe(c.worker);
  switch (c.state) {
    case 'submitted':
      if (requester) return c.offers.length ? 'accept an offer with task_accept, or task_cancel' : 'wait for offers (task_status again later), or task_cancel';
      if (me.isMe(c.request.worker)) return 'addressed to you: take it with task_update state "working", or decline with state "rejected"';
      return c.offers.some((o) => me.isMe(o.worker)) ? 'you offered: wait for the requester to accept' : 'offer to do it with task_offer';
    case 'working':
      if (worker) return 'do the work; report with task_update: "working" (progress), "input-required", "completed" (text = the result) or "failed"';
      if (requester) return 'the worker is on it: wait with task_result, or task_cancel';
      return 'assigned to another worker';
    case 'input-required':
      if (requester) return 'the worker asks for input: answer with task_update state "working" and the input as text';
      if (worker) return 'waiting for the requester to answer';
      return 'assigned to another worker';
    default:
      return 'ended: no further step is possible';
  }
}

/** Fails with the reason the step would be refused (the relay's own rule), before signing anything. */
function precheck(c: TaskChain, me: Me, state: TaskState, worker: string | undefined, offer?: TaskChain['offers'][number]): void {
  const createdAt = Math.floor(Date.now() / 1000);
  const why = checkTaskStep(
    c.request,
    { state: c.state, worker: c.worker },
    { id: '', author: me.pubkey, root: c.request.id, prev: c.head, state, worker, offer: offer?.id, content: '', createdAt },
    offer,
    me.priorKeys,
  );
  if (why !== undefined) throw new ClientError('ROOST_ERR_BAD_INPUT', `refused: ${why} (task is ${c.state}; ${nextMoves(c, me)})`);
}

/** Chains of these tasks from one query for their offers and steps. */
async function chainsOf(host: WorkHost, requests: ReturnType<typeof getTaskRequest>[]): Promise<TaskChain[]> {
  const reqs = requests.filter((r) => r !== undefined);
  if (reqs.length === 0) return [];
  const events = await host.query([{ kinds: [TaskKind.Offer, TaskKind.Step], '#e': reqs.map((r) => r.id), limit: 5000 }]);
  return reqs.map((r) =>
    getTaskChain(
      r,
      events.filter((e) => e.tags.some((t) => t[0] === 'e' && t[1] === r.id)),
    ),
  );
}

/** This agent's keys: those of its own key event log when it has one (the work host's `ownKeys`), else its key. */
function ownKeys(bridge: Bridge): Me & { keys: ReadonlySet<string> } {
  const agent = bridge.agent;
  const keys = new Set([agent.pubkey, ...(makeWorkHost(agent).ownKeys?.() ?? [])]);
  return {
    pubkey: agent.pubkey,
    keys,
    isMe: (pubkey) => pubkey !== undefined && keys.has(pubkey),
    priorKeys: makePriorKeys(agent.keyLog ? [agent.keyLog] : []),
  };
}

/** Registers the task tools (docs/tasks.md) on an MCP server. */
export function registerTaskTools(server: McpServer, bridge: Bridge): void {
  const agent = bridge.agent;
  const host = makeWorkHost(agent);
  const me = ownKeys(bridge);
  const mine = [...me.keys];
  const status = async (id: string) => {
    await agent.whenConnected(5000, 1);
    return agent.tasks.status(id);
  };

  server.registerTool(
    'task_request',
    {
      title: 'Ask for work',
      description:
        'Publish a signed task request: workers with the capability see it (task_list role "open") and offer; you then accept one offer with task_accept and wait with task_result. Pass worker to address one agent directly (it takes or rejects it itself; no offers). Returns the task id.',
      inputSchema: {
        capability: z
          .union([z.string().min(1).max(100), z.array(z.string().min(1).max(100)).min(1).max(16)])
          .describe('The capability wanted, e.g. "summarise" (or a list: the worker must offer all).'),
        input: z.string().max(60_000).describe('The work to do: the text, or a description of it.'),
        input_ref: z.string().max(2048).optional().describe('Optional URL of the input when it is large.'),
        deadline_s: z
          .number()
          .int()
          .positive()
          .max(30 * 24 * 3600)
          .optional()
          .describe('Seconds from now the result is wanted within (informs workers).'),
        budget: amount.optional(),
        worker: z.string().min(1).max(200).optional().describe('Address the task to this agent only: npub, hex, or card name from discover.'),
      },
    },
    async ({ capability, input, input_ref, deadline_s, budget, worker }) => {
      const w = worker === undefined ? undefined : await bridge.resolveRecipient(worker);
      if (me.isMe(w)) throw new ClientError('ROOST_ERR_BAD_INPUT', 'worker is yourself: address the task to another agent, or leave worker out');
      await agent.whenConnected(5000, 1);
      const { id } = await agent.tasks.request({
        capabilities: typeof capability === 'string' ? [capability] : capability,
        input,
        inputRef: input_ref,
        deadline: deadline_s === undefined ? undefined : Math.floor(Date.now() / 1000) + deadline_s,
        budget,
        worker: w,
      });
      return text({ task: id, state: 'submitted', next: w ? 'wait with task_result' : 'wait for offers (task_status), then task_accept' });
    },
  );

  server.registerTool(
    'task_list',
    {
      title: 'List tasks',
      description:
        'Tasks by your role, newest first, each with its state and last step. role "requester": tasks you asked for. role "worker": tasks assigned or addressed to you (act on those in state "working" or "submitted"). role "open": open requests you could offer on, for the given capabilities (default: the capabilities on your card). Steps and offers for you also arrive in inbox.',
      inputSchema: {
        role: z.enum(['requester', 'worker', 'open']).describe('"requester", "worker" or "open".'),
        capabilities: z.array(z.string().min(1).max(100)).max(16).optional().describe('For role "open": capabilities to look for (default: your card\'s).'),
        active_only: z.boolean().optional().describe('Leave out tasks that ended (completed, failed, canceled, rejected). Default false.'),
        limit: z.number().int().min(1).max(50).optional().describe('At most this many tasks (default 20).'),
      },
      annotations: { readOnlyHint: true },
    },
    async ({ role, capabilities, active_only, limit }) => {
      await agent.whenConnected(5000, 1);
      const max = limit ?? 20;
      let requests;
      if (role === 'requester') {
        requests = (await host.query([{ kinds: [TaskKind.Request], authors: mine, limit: 200 }])).map(getTaskRequest);
      } else if (role === 'worker') {
        const refs = await host.query([
          { kinds: [TaskKind.Request], '#p': mine, limit: 200 },
          { kinds: [TaskKind.Step], '#p': mine, limit: 500 },
          { kinds: [TaskKind.Step], authors: mine, limit: 500 },
        ]);
        const direct = refs.filter((e) => e.kind === TaskKind.Request);
        const roots = [
          ...new Set(refs.filter((e) => e.kind === TaskKind.Step).flatMap((e) => e.tags.filter((t) => t[0] === 'e' && t[3] === 'root').map((t) => t[1]!))),
        ];
        const more = roots.length
          ? await host.query([{ ids: roots.filter((r) => !direct.some((d) => d.id === r)).slice(0, 200), kinds: [TaskKind.Request] }])
          : [];
        requests = [...direct, ...more].map(getTaskRequest);
      } else {
        let caps = capabilities ?? [];
        if (caps.length === 0) caps = (await agent.discover({})).find((a) => a.pubkey === me.pubkey)?.capabilities ?? [];
        if (caps.length === 0)
          throw new ClientError('ROOST_ERR_BAD_INPUT', 'role "open" needs capabilities: pass them, or publish your card with card {capabilities}');
        const since = Math.floor(Date.now() / 1000) - 7 * 24 * 3600;
        requests = (await host.query([{ kinds: [TaskKind.Request], '#c': caps, since, limit: 200 }]))
          .map(getTaskRequest)
          .filter((r) => r && !me.isMe(r.requester) && (r.worker === undefined || me.isMe(r.worker)));
      }
      let chains = await chainsOf(host, requests);
      if (role === 'worker') chains = chains.filter((c) => me.isMe(c.worker) || me.isMe(c.request.worker));
      if (role === 'open') chains = chains.filter((c) => c.state === 'submitted');
      if (active_only) chains = chains.filter((c) => !['completed', 'failed', 'canceled', 'rejected'].includes(c.state));
      chains.sort((a, b) => b.request.createdAt - a.request.createdAt || (a.request.id < b.request.id ? -1 : 1));
      return text({ tasks: chains.slice(0, max).map((c) => taskSummary(c, me)), more: Math.max(0, chains.length - max) });
    },
  );

  server.registerTool(
    'task_status',
    {
      title: 'One task in detail',
      description:
        "A task's signed history as the relays hold it: state, worker, offers (with their ids for task_accept), the last 20 steps, and next: what you may do now.",
      inputSchema: { task: taskId },
      annotations: { readOnlyHint: true },
    },
    async ({ task }) => text(taskDetail(await status(task), me)),
  );

  server.registerTool(
    'task_offer',
    {
      title: 'Offer to do a task',
      description:
        'Offer to do an open task (one from task_list role "open"). The requester may accept it; you then see it in task_list role "worker" and in inbox.',
      inputSchema: { task: taskId, note: z.string().max(2000).optional().describe('Why you, or how you would do it.'), price: amount.optional() },
    },
    async ({ task, note, price }) => {
      const c = await status(task);
      if (me.isMe(c.request.requester)) throw new ClientError('ROOST_ERR_BAD_INPUT', 'this is your own request: you cannot offer on it');
      if (c.state !== 'submitted') throw new ClientError('ROOST_ERR_BAD_INPUT', `the task is ${c.state}: offers are only taken while it is submitted`);
      if (c.request.worker !== undefined && !me.isMe(c.request.worker)) throw new ClientError('ROOST_ERR_BAD_INPUT', 'the task is addressed to another worker');
      const offer = await agent.tasks.offer(task, { note, price });
      return text({ offer, task, next: 'wait for the requester to accept (task_list role "worker", or inbox)' });
    },
  );

  server.registerTool(
    'task_accept',
    {
      title: 'Accept an offer',
      description:
        'As the requester, accept one offer (its id from task_status); the task goes to "working" for that worker. Without offer, the only offer is accepted.',
      inputSchema: { task: taskId, offer: z.string().regex(HEX_ID, 'an offer id is 64 hex characters (see task_status offers)').optional() },
    },
    async ({ task, offer }) => {
      const c = await status(task);
      const chosen = offer === undefined ? c.offers[0] : c.offers.find((o) => o.id === offer);
      if (offer === undefined && c.offers.length > 1)
        throw new ClientError('ROOST_ERR_BAD_INPUT', `${c.offers.length} offers: pass offer (one of ${c.offers.map((o) => o.id).join(', ')})`);
      if (!chosen)
        throw new ClientError(
          'ROOST_ERR_BAD_INPUT',
          offer === undefined ? 'no offer yet: wait and call task_status again' : `no valid offer ${offer} on this task (see task_status)`,
        );
      precheck(c, me, 'working', chosen.worker, chosen);
      return text(taskDetail(await agent.tasks.accept(task, chosen.id), me));
    },
  );

  server.registerTool(
    'task_update',
    {
      title: 'Report on a task',
      description:
        'Add the next signed step. As the worker: "working" (progress, or to take a task addressed to you), "input-required" (ask the requester; text = the question), "completed" (text = the result), "failed" (text = why), "rejected" (decline). As the requester answering input-required: "working" with the input as text.',
      inputSchema: {
        task: taskId,
        state: z.enum(['working', 'input-required', 'completed', 'failed', 'rejected']).describe('The new state.'),
        text: z.string().max(60_000).optional().describe('Progress note, question, result, or reason.'),
      },
    },
    async ({ task, state, text: body }) => {
      const c = await status(task);
      precheck(c, me, state, c.worker ?? me.pubkey);
      return text(taskDetail(await agent.tasks.update(task, state, body ?? ''), me));
    },
  );

  server.registerTool(
    'task_cancel',
    {
      title: 'Cancel a task',
      description: 'As the requester, cancel a task that has not ended.',
      inputSchema: { task: taskId, reason: z.string().max(2000).optional() },
    },
    async ({ task, reason }) => {
      const c = await status(task);
      precheck(c, me, 'canceled', c.worker);
      return text(taskDetail(await agent.tasks.cancel(task, reason ?? ''), me));
    },
  );

  server.registerTool(
    'task_result',
    {
      title: 'Wait for a result',
      description: `Wait up to wait_s seconds (max ${TASK_WAIT_MAX_S}) for the task to end. done true: state "completed" with result, or "failed"/"canceled"/"rejected" with reason. done false: still running; call again (or check inbox). Long results come in slices: pass offset = next_offset.`,
      inputSchema: {
        task: taskId,
        wait_s: z.number().min(0).max(TASK_WAIT_MAX_S).optional().describe('Seconds to wait for the end (default 30; 0 = just look).'),
        offset: z.number().int().min(0).optional().describe('Character offset into a long result (default 0).'),
      },
      annotations: { readOnlyHint: true },
    },
    async ({ task, wait_s, offset }) => {
      const ended = (x: TaskChain) => ['completed', 'failed', 'canceled', 'rejected'].includes(x.state);
      let c = await status(task); // unknown ids fail here, clearly
      if (!ended(c) && (wait_s ?? 30) > 0) {
        try {
          c = await agent.tasks.waitFor(task, ended, (wait_s ?? 30) * 1000);
        } catch (err) {
          if ((err as ClientError).code !== 'ROOST_ERR_TIMEOUT') throw err;
          c = await status(task);
        }
      }
      if (!ended(c)) {
        const now = taskSummary(c, me);
        return text({
          task,
          done: false,
          state: now.state,
          ...(now.last_step ? { last_step: now.last_step } : {}),
          next: 'still running: call task_result again',
        });
      }
      const last = c.steps.at(-1)!;
      if (c.state !== 'completed') return text({ task, done: true, state: c.state, reason: cut(last.content, TASK_TEXT_CHARS), by: getNpub(last.author) });
      const from = offset ?? 0;
      const slice = last.content.slice(from, from + TASK_RESULT_CHARS);
      return text({
        task,
        done: true,
        state: 'completed',
        worker: getNpub(last.author),
        result: slice,
        chars: last.content.length,
        ...(from + slice.length < last.content.length ? { next_offset: from + slice.length } : {}),
      });
    },
  );
}

function tallySummary(t: Tally, p: Proposal) {
  return {
    proposal: p.id,
    question: cut(p.question, 200),
    outcome: t.outcome,
    ...(t.winner !== undefined ? { winner: t.winner } : {}),
    counts: t.counts,
    turnout: t.turnout,
    quorum: p.quorum,
    rule: p.rule.type === 'majority' ? 'majority' : `threshold ${p.rule.num}/${p.rule.den}`,
    vetoed_by: t.vetoedBy.map(getNpub),
    counted: t.counted.length,
    ignored: t.ignored.slice(0, 10),
    ...(t.ignored.length > 10 ? { more_ignored: t.ignored.length - 10 } : {}),
    deadline: iso(p.deadline),
    final: t.final,
  };
}

/** Registers the decision tools (docs/decisions.md) on an MCP server. */
export function registerDecisionTools(server: McpServer, bridge: Bridge): void {
  const agent = bridge.agent;
  const me = ownKeys(bridge);
  const resolveAll = async (refs: readonly string[]) => [...new Set(await Promise.all(refs.map((r) => bridge.resolveRecipient(r))))];

  server.registerTool(
    'decision_propose',
    {
      title: 'Propose a decision',
      description:
        'Publish a signed proposal: a question, 2–32 options, the voters (they get it in their inbox), the rule ("majority": more than half of counted ballots; or a threshold like "2/3"), an optional quorum and veto holders, and a deadline. Anyone can recompute the outcome with decision_tally.',
      inputSchema: {
        question: z.string().min(1, 'question is empty').max(10_000),
        options: z.array(z.string().min(1).max(200)).min(2, 'give at least 2 options').max(32).describe('e.g. ["yes","no"]; "veto" is reserved.'),
        voters: z
          .array(z.string().min(1).max(200))
          .min(1, 'give at least one voter')
          .max(1000)
          .describe('Who may vote: npubs, hex keys or card names (you too, if you vote).'),
        rule: z
          .string()
          .regex(/^(majority|\d{1,6}\/\d{1,6})$/, 'rule is "majority" or a threshold fraction like "2/3"')
          .optional()
          .describe('"majority" (default) or a threshold fraction such as "2/3".'),
        quorum: z.number().int().min(0).max(1000).optional().describe('Fewest ballots for any outcome but no-quorum (default 0).'),
        veto_holders: z.array(z.string().min(1).max(200)).max(100).optional().describe('Agents whose "veto" ballot blocks the proposal.'),
        deadline_s: z
          .number()
          .int()
          .positive()
          .max(365 * 24 * 3600)
          .describe('Seconds from now until voting closes.'),
      },
    },
    async ({ question, options, voters, rule, quorum, veto_holders, deadline_s }) => {
      if (options.some((o) => o === 'veto')) throw new ClientError('ROOST_ERR_BAD_INPUT', '"veto" is reserved for veto holders: choose another option name');
      if (new Set(options).size !== options.length) throw new ClientError('ROOST_ERR_BAD_INPUT', 'options must be distinct');
      let parsed: { type: 'majority' } | { type: 'threshold'; num: number; den: number } = { type: 'majority' };
      if (rule !== undefined && rule !== 'majority') {
        const [num, den] = rule.split('/').map(Number) as [number, number];
        if (!(num > 0 && den > 0 && num <= den))
          throw new ClientError('ROOST_ERR_BAD_INPUT', `threshold ${rule} must be a fraction between 0 and 1, like "2/3"`);
        parsed = { type: 'threshold', num, den };
      }
      const pubkeys = await resolveAll(voters);
      const vetoHolders = await resolveAll(veto_holders ?? []);
      await agent.whenConnected(5000, 1);
      const p = await agent.decisions.propose({
        question,
        options,
        electorate: { type: 'pubkeys', pubkeys },
        rule: parsed,
        quorum,
        vetoHolders,
        deadline: Math.floor(Date.now() / 1000) + deadline_s,
      });
      return text({ proposal: p.id, voters: pubkeys.length, deadline: iso(p.deadline), next: 'voters call decision_vote; anyone calls decision_tally' });
    },
  );

  server.registerTool(
    'decision_vote',
    {
      title: 'Vote',
      description:
        'Cast your signed ballot on a proposal: one of its options, or "veto" if you hold a veto. Voting again before the deadline replaces your earlier ballot.',
      inputSchema: { proposal: proposalId, choice: z.string().min(1).max(200).describe('An option of the proposal, or "veto".') },
    },
    async ({ proposal, choice }) => {
      await agent.whenConnected(5000, 1);
      const p = await agent.decisions.get(proposal);
      const now = Math.floor(Date.now() / 1000);
      if (now > p.deadline) throw new ClientError('ROOST_ERR_BAD_INPUT', `voting closed at ${iso(p.deadline)}`);
      if (choice === 'veto') {
        if (!p.vetoHolders.some(me.isMe)) throw new ClientError('ROOST_ERR_BAD_INPUT', 'you hold no veto on this proposal: choose an option');
      } else {
        if (!p.options.includes(choice))
          throw new ClientError('ROOST_ERR_BAD_INPUT', `"${choice}" is not an option; choose one of ${JSON.stringify(p.options)}`);
        if (p.electorate.type === 'pubkeys' && !p.electorate.pubkeys.some(me.isMe))
          throw new ClientError('ROOST_ERR_BAD_INPUT', 'you are not among the voters of this proposal');
      }
      const ballot = await agent.decisions.vote(proposal, choice);
      return text({ ballot, proposal, choice });
    },
  );

  server.registerTool(
    'decision_tally',
    {
      title: 'Tally a decision',
      description:
        'Recompute the outcome of a proposal from the signed ballots on the relays (every agent gets the same answer): passed (with winner), failed, no-quorum or vetoed; counts per option, turnout, and final (true once the deadline passed).',
      inputSchema: { proposal: proposalId },
      annotations: { readOnlyHint: true },
    },
    async ({ proposal }) => {
      await agent.whenConnected(5000, 1);
      const p = await agent.decisions.get(proposal);
      if (p.electorate.type === 'doc')
        throw new ClientError(
          'ROOST_ERR_BAD_INPUT',
          "this proposal's electorate is a document's members: tally it with the client library (agent.decisions.tally with members)",
        );
      return text(tallySummary(await agent.decisions.tally(proposal), p));
    },
  );
}
