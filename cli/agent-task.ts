import type { Agent } from '../client/agent.js';
import { parsePubkey } from '../client/identity.js';
import { TASK_STATES, type TaskChain, type TaskState } from '../shared/tasks.js';

/** Usage of `roost agent task …`, part of `roost agent --help`. */
export const TASK_HELP = `  roost agent task request --capability C... [--to PK] [--deadline SEC] <input...>
                                               publish a task request; prints its id
  roost agent task offer <task> [--note TEXT]  offer to do a public task
  roost agent task accept <task> <offer>       accept an offer (requester)
  roost agent task status <task>               the task's signed chain: state, worker, offers, steps
  roost agent task result <task> [--timeout SEC]
                                               wait for the result (exit 1 if failed/canceled/rejected)
  roost agent task update <task> <state> [text...]
                                               add a step: working (progress), input-required, completed
                                               (text = the result), failed, rejected (worker)
  roost agent task cancel <task>               cancel (requester)
`;

/** A refusal the caller shows as a usage error (exit 2). */
export class TaskUsageError extends Error {}

type Out = (human: string, json: unknown) => void;

/** Values of the options `task` reads. */
export interface TaskValues {
  capability?: string[];
  to?: string;
  deadline?: string;
  note?: string;
  timeout?: string;
}

/** Runs `roost agent task <verb> …` with a started agent; returns the exit status. */
export async function runTaskCommand(agent: Agent, args: string[], values: TaskValues, out: Out): Promise<number> {
  const [verb, ...rest] = args;
  const need = (n: number, usage: string) => {
    if (rest.length < n) throw new TaskUsageError(`task ${verb} needs ${usage}`);
  };
  const timeoutMs = Math.max(0, Number(values.timeout ?? 60)) * 1000;
  switch (verb) {
    case 'request': {
      if (!values.capability?.length) throw new TaskUsageError('task request needs --capability');
      need(1, 'an input');
      const deadline = values.deadline === undefined ? undefined : Math.floor(Date.now() / 1000) + Number(values.deadline);
      const worker = values.to === undefined ? undefined : parsePubkey(values.to);
      const { id } = await agent.tasks.request({ capabilities: values.capability, input: rest.join(' '), deadline, worker });
      out(id, { id });
      return 0;
    }
    case 'offer': {
      need(1, '<task>');
      const id = await agent.tasks.offer(rest[0]!, { note: values.note });
      out(id, { id });
      return 0;
    }
    case 'accept': {
      need(2, '<task> <offer>');
      const chain = await agent.tasks.accept(rest[0]!, rest[1]!);
      out(describe(chain), chainJson(chain));
      return 0;
    }
    case 'cancel': {
      need(1, '<task>');
      const chain = await agent.tasks.cancel(rest[0]!);
      out(describe(chain), chainJson(chain));
      return 0;
    }
    case 'update': {
      need(2, '<task> <state>');
      const state = rest[1] as TaskState;
      if (!TASK_STATES.includes(state)) throw new TaskUsageError(`state must be one of ${TASK_STATES.join(', ')}`);
      const chain = await agent.tasks.update(rest[0]!, state, rest.slice(2).join(' '));
      out(describe(chain), chainJson(chain));
      return 0;
    }
    case 'status': {
      need(1, '<task>');
      const chain = await agent.tasks.status(rest[0]!);
      out(describe(chain), chainJson(chain));
      return 0;
    }
    case 'result': {
      need(1, '<task>');
      const { result, chain } = await agent.tasks.result(rest[0]!, { timeoutMs });
      out(result, { result, ...chainJson(chain) });
      return 0;
    }
    default:
      throw new TaskUsageError(`unknown task command ${JSON.stringify(verb ?? '')} (request, offer, accept, update, status, result, cancel)`);
  }
}

function chainJson(c: TaskChain) {
  return { id: c.request.id, state: c.state, worker: c.worker, head: c.head, offers: c.offers, steps: c.steps, ignored: c.ignored };
}

function describe(c: TaskChain): string {
  const lines = [`${c.request.id}  ${c.state}${c.worker ? `  worker ${c.worker}` : ''}  [${c.request.capabilities.join(', ')}]`];
  for (const o of c.offers) lines.push(`  offer ${o.id}  by ${o.worker}${o.note ? `  "${o.note}"` : ''}`);
  for (const s of c.steps) lines.push(`  step  ${s.id}  ${s.state}${s.content ? `  ${s.content}` : ''}`);
  return lines.join('\n');
}
