import { afterEach, describe, expect, it } from 'vitest';
import { startRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { runCli, startRecordingAgent, tempDir } from '../client/helpers.js';
import { call, callError, startStdioBridge, type StdioBridge } from './helpers.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function bridgeOn(relay: string): Promise<StdioBridge> {
  const home = tempDir('roost-mcp-');
  cleanups.push(home.cleanup);
  const b = await startStdioBridge(home.dir, [relay]);
  cleanups.push(() => b.close());
  return b;
}

interface TaskSummary {
  task: string;
  state: string;
  role: string;
  worker?: string;
  offers: number;
  offered_by_me?: true;
  last_step?: { state: string; text: string };
}
interface TaskDetail extends TaskSummary {
  offers: never;
  steps: Array<{ state: string; by: string; text: string }>;
  next: string;
}
interface Inbox {
  messages: Array<{ seq: number; type?: string; task?: string; state?: string; proposal?: string }>;
  next: number;
}

describe('task and decision tools of roost mcp (two bridges, SDK client, real relay)', () => {
  it('a bridge asks, another bridge offers and is accepted, reports a result; the requester gets it; forged steps are refused with a clear error', async () => {
    const r = await startRelay();
    cleanups.push(() => r.close());
    const [asker, worker] = await Promise.all([bridgeOn(r.url), bridgeOn(r.url)]);
    const { tools } = await asker.client.listTools();
    expect(tools.map((t) => t.name)).toEqual(
      expect.arrayContaining(['task_request', 'task_list', 'task_status', 'task_offer', 'task_accept', 'task_update', 'task_cancel', 'task_result']),
    );
    const w = await call<{ npub: string }>(worker.client, 'whoami');
    await call(worker.client, 'card', { name: 'summariser', capabilities: ['summarise'] });

    const { task } = await call<{ task: string }>(asker.client, 'task_request', { capability: 'summarise', input: 'the paper', deadline_s: 600 });
    expect(task).toMatch(/^[0-9a-f]{64}$/);

    // the worker finds it among open requests for its card's capabilities, and offers
    let open!: { tasks: TaskSummary[] };
    await waitFor(async () => (open = await call(worker.client, 'task_list', { role: 'open' })).tasks.length === 1, 'the open request');
    expect(open.tasks[0]).toMatchObject({ task, state: 'submitted', role: 'other', offers: 0 });
    const { offer } = await call<{ offer: string }>(worker.client, 'task_offer', { task, note: 'I read fast' });

    // forged: the worker "accepting" its own offer is refused before anything is signed
    expect(await callError(worker.client, 'task_accept', { task, offer })).toMatch(/only the requester accepts an offer/);

    // the requester sees the offer in its inbox and accepts it
    let inbox!: Inbox;
    await waitFor(async () => (inbox = await call<Inbox>(asker.client, 'inbox')).messages.some((m) => m.type === 'task_offer'), 'the offer in the inbox');
    expect(inbox.messages.find((m) => m.type === 'task_offer')).toMatchObject({ task });
    const accepted = await call<TaskDetail>(asker.client, 'task_accept', { task });
    expect(accepted).toMatchObject({ state: 'working', worker: w.npub, role: 'requester' });

    // the worker sees the task assigned to it, reports progress and the result
    let mine!: { tasks: TaskSummary[] };
    await waitFor(async () => (mine = await call(worker.client, 'task_list', { role: 'worker', active_only: true })).tasks.length === 1, 'assigned');
    expect(mine.tasks[0]).toMatchObject({ task, state: 'working', role: 'worker' });
    await waitFor(
      async () => (await call<Inbox>(worker.client, 'inbox')).messages.some((m) => m.type === 'task_step' && m.task === task && m.state === 'working'),
      'the acceptance in the worker inbox',
    );
    expect(await call(asker.client, 'task_result', { task, wait_s: 0 })).toMatchObject({ done: false, state: 'working' });
    const pending = call<{ done: boolean; state: string; result?: string }>(asker.client, 'task_result', { task, wait_s: 20 });
    await call(worker.client, 'task_update', { task, state: 'working', text: 'half way' });

    // forged: the requester posting the result
    expect(await callError(asker.client, 'task_update', { task, state: 'completed', text: 'fake' })).toMatch(
      /only the assigned worker moves the task to completed/,
    );
    const done = await call<TaskDetail>(worker.client, 'task_update', { task, state: 'completed', text: 'a short summary' });
    expect(done.steps.map((s) => s.state)).toEqual(['working', 'working', 'completed']);
    expect(await pending).toMatchObject({ done: true, state: 'completed', result: 'a short summary', worker: w.npub });

    // anything after the end, and bad input: clear errors, no stack
    const cases: Array<[StdioBridge, string, Record<string, unknown>, RegExp]> = [
      [worker, 'task_update', { task, state: 'failed' }, /task already completed/],
      [asker, 'task_cancel', { task }, /task already completed/],
      [worker, 'task_offer', { task }, /completed: offers are only taken while it is submitted/],
      [asker, 'task_status', { task: 'abc' }, /64 lowercase hex/],
      [asker, 'task_status', { task: 'f'.repeat(64) }, /not found/],
      [asker, 'task_update', { task, state: 'done' }, /state/],
      [asker, 'task_request', { input: 'x' }, /capability/],
      [asker, 'task_result', { task, wait_s: 500 }, /wait_s/],
    ];
    for (const [b, tool, args, want] of cases) {
      const msg = await callError(b.client, tool, args);
      expect(msg, `${tool} ${JSON.stringify(args)}`).toMatch(want);
      expect(msg).not.toMatch(/\n\s+at /);
    }
    expect(await call(asker.client, 'task_result', { task, wait_s: 0 })).toMatchObject({ done: true, result: 'a short summary' });
    expect(await call(asker.client, 'task_list', { role: 'requester' })).toMatchObject({ tasks: [{ task, state: 'completed', role: 'requester' }] });
  });

  it('both parties rotate mid-task (roost agent rotate, server restarted): each continues the task with its new key to completion', async () => {
    const r = await startRelay();
    cleanups.push(() => r.close());
    const homes = [tempDir('roost-mcp-'), tempDir('roost-mcp-')];
    for (const h of homes) cleanups.push(h.cleanup);
    const as = (home: string, ...args: string[]) => runCli(['--home', home, '--json', ...args], { ROOST_RELAYS: r.url });
    for (const h of homes) {
      expect((await as(h.dir, 'keygen')).code).toBe(0);
      expect((await as(h.dir, 'identity')).code).toBe(0);
    }
    const start = async () => {
      const [asker, worker] = await Promise.all(homes.map((h) => startStdioBridge(h.dir, [r.url])));
      return { asker: asker!, worker: worker! };
    };
    let { asker, worker } = await start();
    const w0 = await call<{ npub: string; pubkey: string }>(worker.client, 'whoami');
    const a0 = await call<{ npub: string; pubkey: string }>(asker.client, 'whoami');
    await call(worker.client, 'card', { name: 'summariser', capabilities: ['summarise'] });
    const { task } = await call<{ task: string }>(asker.client, 'task_request', { capability: 'summarise', input: 'the paper' });
    await waitFor(async () => (await call<{ tasks: TaskSummary[] }>(worker.client, 'task_list', { role: 'open' })).tasks.length === 1, 'the open request');
    await call(worker.client, 'task_offer', { task });
    await waitFor(async () => (await call<{ offers: unknown[] }>(asker.client, 'task_status', { task })).offers.length === 1, 'the offer');
    await call(asker.client, 'task_accept', { task });
    await call(worker.client, 'task_update', { task, state: 'working', text: 'started' });
    const { proposal } = await call<{ proposal: string }>(asker.client, 'decision_propose', {
      question: 'ship it?',
      options: ['yes', 'no'],
      voters: [w0.npub],
      veto_holders: [w0.npub],
      deadline_s: 600,
    });
    await Promise.all([asker.close(), worker.close()]);

    for (const h of homes) expect((await as(h.dir, 'rotate')).code).toBe(0);
    ({ asker, worker } = await start());
    cleanups.push(
      () => asker.close(),
      () => worker.close(),
    );
    const w1 = await call<{ pubkey: string }>(worker.client, 'whoami');
    const a1 = await call<{ pubkey: string }>(asker.client, 'whoami');
    expect([w1.pubkey, a1.pubkey]).not.toContain(w0.pubkey);
    expect(a1.pubkey).not.toBe(a0.pubkey);

    // the worker's new key still finds the task given to its earlier key, as its own
    const mine = await call<{ tasks: TaskSummary[] }>(worker.client, 'task_list', { role: 'worker' });
    expect(mine.tasks).toMatchObject([{ task, state: 'working', role: 'worker', worker: w0.npub }]);
    const asked = await call<TaskDetail>(worker.client, 'task_update', { task, state: 'input-required', text: 'which section?' });
    expect(asked).toMatchObject({ state: 'input-required', role: 'worker', next: 'waiting for the requester to answer' });
    expect(asked.steps.map((s) => s.by)).toEqual([a0.npub, 'me', 'me']); // accepted by the requester's earlier key; both worker steps are mine
    // the requester's new key answers as the requester, and sees its task among its requests
    expect(await call(asker.client, 'task_list', { role: 'requester' })).toMatchObject({ tasks: [{ task, role: 'requester' }] });
    await waitFor(async () => (await call<TaskDetail>(asker.client, 'task_status', { task })).state === 'input-required', 'the question');
    expect(await call(asker.client, 'task_update', { task, state: 'working', text: 'section 2' })).toMatchObject({ state: 'working', role: 'requester' });
    await waitFor(async () => (await call<TaskDetail>(worker.client, 'task_status', { task })).state === 'working', 'the answer');
    await call(worker.client, 'task_update', { task, state: 'completed', text: 'section 2, summarised' });
    expect(await call(asker.client, 'task_result', { task, wait_s: 20 })).toMatchObject({ done: true, state: 'completed', result: 'section 2, summarised' });
    // a voter listed by its earlier key votes with its new key, and is counted
    await call(worker.client, 'decision_vote', { proposal, choice: 'yes' });
    expect(await call(asker.client, 'decision_tally', { proposal })).toMatchObject({ counts: { yes: 1 }, turnout: 1 });
    // the requester's new key is still the requester: it cannot offer on its own request
    expect(await callError(asker.client, 'task_offer', { task })).toMatch(/your own request/);
  });

  it('a proposal with three voters (two bridges, one library agent): every one tallies the same outcome', async () => {
    const r = await startRelay();
    cleanups.push(() => r.close());
    const [alice, bob] = await Promise.all([bridgeOn(r.url), bridgeOn(r.url)]);
    const carolHome = tempDir('roost-carol-');
    cleanups.push(carolHome.cleanup);
    const carol = await startRecordingAgent(carolHome.dir, [r.url]);
    cleanups.push(() => carol.agent.close());
    const a = await call<{ npub: string }>(alice.client, 'whoami');
    const b = await call<{ npub: string }>(bob.client, 'whoami');

    const { proposal } = await call<{ proposal: string }>(alice.client, 'decision_propose', {
      question: 'adopt the new schema?',
      options: ['yes', 'no'],
      voters: [a.npub, b.npub, carol.agent.npub],
      rule: '2/3',
      quorum: 3,
      deadline_s: 600,
    });
    // bob learns of it from his inbox
    await waitFor(async () => (await call<Inbox>(bob.client, 'inbox')).messages.some((m) => m.type === 'proposal' && m.proposal === proposal), 'in bob inbox');
    await call(alice.client, 'decision_vote', { proposal, choice: 'yes' });
    await call(bob.client, 'decision_vote', { proposal, choice: 'no' });
    await call(bob.client, 'decision_vote', { proposal, choice: 'yes' }); // replaces bob's "no"
    await carol.agent.decisions.vote(proposal, 'no');
    expect(await callError(bob.client, 'decision_vote', { proposal, choice: 'maybe' })).toMatch(/not an option; choose one of \["yes","no"\]/);
    expect(await callError(bob.client, 'decision_vote', { proposal, choice: 'veto' })).toMatch(/you hold no veto/);
    expect(await callError(alice.client, 'decision_propose', { question: 'q', options: ['a'], voters: [a.npub], deadline_s: 60 })).toMatch(
      /at least 2 options/,
    );

    const fromAlice = await call<{ outcome: string; winner: string; counts: object; turnout: number; counted: number }>(alice.client, 'decision_tally', {
      proposal,
    });
    const fromBob = await call(bob.client, 'decision_tally', { proposal });
    const fromCarol = await carol.agent.decisions.tally(proposal);
    expect(fromAlice).toMatchObject({ outcome: 'passed', winner: 'yes', counts: { yes: 2, no: 1 }, turnout: 3, counted: 3, final: false });
    expect(fromBob).toEqual(fromAlice);
    expect({ outcome: fromCarol.outcome, winner: fromCarol.winner, counts: fromCarol.counts, turnout: fromCarol.turnout }).toEqual({
      outcome: fromAlice.outcome,
      winner: fromAlice.winner,
      counts: fromAlice.counts,
      turnout: fromAlice.turnout,
    });
  });
});
