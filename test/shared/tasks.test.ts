import { describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../shared/event.js';
import {
  checkTaskStep,
  countWorkerOutcomes,
  getTaskChain,
  getTaskOffer,
  getTaskRequest,
  getTaskStep,
  makeTaskOffer,
  makeTaskRequest,
  makeTaskStep,
  rankWorkers,
  type TaskRequest,
  type TaskState,
  type TaskStepInput,
} from '../../shared/tasks.js';
import { makeKey, signEvent, type Key } from '../helpers/events.js';

const requester = makeKey();
const alice = makeKey(); // worker
const bob = makeKey(); // another worker
const eve = makeKey(); // third party
let t = 1_700_000_000;

function sign(key: Key, tpl: { kind: number; tags: string[][]; content: string; created_at: number }): NostrEvent {
  return signEvent(key, tpl);
}

function setup(worker?: string) {
  const reqEv = sign(requester, makeTaskRequest({ capabilities: ['summarise'], input: 'the paper', deadline: t + 3600, worker }, t));
  const request = getTaskRequest(reqEv) as TaskRequest;
  const offerA = sign(alice, makeTaskOffer(request, { note: 'I can', price: { amount: '5', unit: 'sat' } }, ++t));
  const offerB = sign(bob, makeTaskOffer(request, { note: 'me too' }, ++t));
  return { reqEv, request, offerA, offerB };
}

function step(key: Key, s: TaskStepInput): NostrEvent {
  return sign(key, makeTaskStep(s, ++t));
}

describe('task events', () => {
  it('round-trips request, offer and step through their tags', () => {
    const { request, offerA } = setup();
    expect(request).toMatchObject({ requester: requester.pk, capabilities: ['summarise'], input: 'the paper', deadline: expect.any(Number) });
    expect(getTaskOffer(offerA)).toMatchObject({ worker: alice.pk, requestId: request.id, price: { amount: '5', unit: 'sat' } });
    const acc = step(requester, { root: request.id, prev: request.id, state: 'working', worker: alice.pk, offer: offerA.id, to: alice.pk });
    expect(getTaskStep(acc)).toMatchObject({ author: requester.pk, root: request.id, prev: request.id, state: 'working', worker: alice.pk, offer: offerA.id });
  });

  it('refuses malformed events', () => {
    const { request } = setup();
    expect(getTaskRequest(sign(requester, { kind: 4340, tags: [], content: 'x', created_at: t }))).toBeUndefined(); // no capability
    expect(
      getTaskStep(
        sign(alice, {
          kind: 4342,
          tags: [
            ['e', request.id, '', 'root'],
            ['status', 'working'],
          ],
          content: '',
          created_at: t,
        }),
      ),
    ).toBeUndefined();
    expect(getTaskStep(sign(alice, makeTaskStep({ root: request.id, prev: request.id, state: 'done' as TaskState, to: requester.pk }, t)))).toBeUndefined();
  });
});

describe('checkTaskStep: who may make each transition', () => {
  const { request, offerA } = setup();
  const offer = getTaskOffer(offerA)!;
  const at = (state: TaskState, worker: string | undefined = alice.pk) => ({ state, worker });
  const open = (state: TaskState) => ({ state, worker: undefined });
  const s = (key: Key, state: TaskState, extra: Partial<TaskStepInput> = {}) =>
    getTaskStep(step(key, { root: request.id, prev: request.id, state, worker: alice.pk, to: requester.pk, ...extra }))!;
  const cases: Array<[string, { state: TaskState; worker: string | undefined }, ReturnType<typeof s>, boolean]> = [
    ['requester accepts an offer', open('submitted'), s(requester, 'working', { offer: offer.id }), true],
    ['worker accepts its own offer', open('submitted'), s(alice, 'working', { offer: offer.id }), false],
    ['acceptance without an offer', open('submitted'), s(requester, 'working'), false],
    ['acceptance naming another worker than the offer', open('submitted'), s(requester, 'working', { offer: offer.id, worker: bob.pk }), false],
    ['worker reports progress', at('working'), s(alice, 'working'), true],
    ['third party reports progress', at('working'), s(eve, 'working'), false],
    ['worker completes', at('working'), s(alice, 'completed'), true],
    ['third party posts a result', at('working'), s(eve, 'completed'), false],
    ['requester posts a result', at('working'), s(requester, 'completed'), false],
    ['worker asks for input', at('working'), s(alice, 'input-required'), true],
    ['requester answers', at('input-required'), s(requester, 'working'), true],
    ['worker answers itself', at('input-required'), s(alice, 'working'), false],
    ['worker fails', at('input-required'), s(alice, 'failed'), true],
    ['requester cancels', at('working'), s(requester, 'canceled'), true],
    ['worker cancels', at('working'), s(alice, 'canceled'), false],
    ['step after completion', at('completed'), s(alice, 'working'), false],
    ['worker changes the worker', at('working'), s(alice, 'working', { worker: bob.pk }), false],
    ['worker rejects after acceptance', at('working'), s(alice, 'rejected'), true],
    ['completion straight from submitted', open('submitted'), s(alice, 'completed'), false],
  ];
  it.each(cases)('%s', (_name, position, st, ok) => {
    const why = checkTaskStep(request, position, st, st.offer ? offer : undefined);
    if (ok) expect(why).toBeUndefined();
    else expect(why).toEqual(expect.any(String));
  });

  it('a directed request is taken or rejected by its worker, never accepted by the requester', () => {
    const d = setup(alice.pk);
    const take = getTaskStep(step(alice, { root: d.request.id, prev: d.request.id, state: 'working', worker: alice.pk, to: requester.pk }))!;
    expect(checkTaskStep(d.request, { state: 'submitted', worker: alice.pk }, take)).toBeUndefined();
    const stranger = getTaskStep(step(bob, { root: d.request.id, prev: d.request.id, state: 'working', worker: bob.pk, to: requester.pk }))!;
    expect(checkTaskStep(d.request, { state: 'submitted', worker: alice.pk }, stranger)).toEqual(expect.any(String));
  });
});

describe('getTaskChain', () => {
  it('follows the valid steps, skips forged ones and is the same in any order', () => {
    const { reqEv, request, offerA, offerB } = setup();
    const accept = step(requester, { root: request.id, prev: request.id, state: 'working', worker: alice.pk, offer: offerA.id, to: alice.pk });
    const forgedAccept = step(bob, { root: request.id, prev: request.id, state: 'working', worker: bob.pk, offer: offerB.id, to: requester.pk });
    const progress = step(alice, { root: request.id, prev: accept.id, state: 'working', worker: alice.pk, to: requester.pk, content: '50%' });
    const forgedResult = step(eve, { root: request.id, prev: progress.id, state: 'completed', worker: alice.pk, to: requester.pk, content: 'fake' });
    const result = step(alice, { root: request.id, prev: progress.id, state: 'completed', worker: alice.pk, to: requester.pk, content: 'summary' });
    const late = step(alice, { root: request.id, prev: result.id, state: 'working', worker: alice.pk, to: requester.pk });
    const all = [reqEv, offerA, offerB, accept, forgedAccept, progress, forgedResult, result, late];
    const chain = getTaskChain(request, all);
    expect(chain.state).toBe('completed');
    expect(chain.worker).toBe(alice.pk);
    expect(chain.steps.map((x) => x.id)).toEqual([accept.id, progress.id, result.id]);
    expect(chain.head).toBe(result.id);
    expect(chain.offers.map((o) => o.id)).toEqual([offerA.id, offerB.id]);
    expect(chain.ignored.map((i) => i.id).sort()).toEqual([forgedAccept.id, forgedResult.id, late.id].sort());
    const reversed = getTaskChain(request, [...all].reverse().concat(all));
    expect(reversed).toEqual(chain);
  });

  it('a rotated requester or worker continues with its successor key; a stranger key does not', () => {
    const { reqEv, request, offerA } = setup();
    const alice1 = makeKey();
    const requester1 = makeKey();
    // The earlier keys of each successor key (what a key event log says), only from the rotation on.
    const rotatedAt = t + 2;
    const priorKeys = (pk: string, at: number) => (at < rotatedAt ? [] : pk === alice1.pk ? [alice.pk] : pk === requester1.pk ? [requester.pk] : []);
    const accept = step(requester, { root: request.id, prev: request.id, state: 'working', worker: alice.pk, offer: offerA.id, to: alice.pk });
    const ask = step(alice, { root: request.id, prev: accept.id, state: 'input-required', worker: alice.pk, to: requester.pk });
    const answer = step(requester1, { root: request.id, prev: ask.id, state: 'working', worker: alice.pk, to: alice.pk, content: 'more' });
    const strangerResult = step(eve, { root: request.id, prev: answer.id, state: 'completed', worker: alice.pk, to: requester.pk, content: 'fake' });
    const result = step(alice1, { root: request.id, prev: answer.id, state: 'completed', worker: alice.pk, to: requester.pk, content: 'summary' });
    const all = [reqEv, offerA, accept, ask, answer, strangerResult, result];
    const chain = getTaskChain(request, all, priorKeys);
    expect([chain.state, chain.worker, chain.steps.map((x) => x.id)]).toEqual(['completed', alice.pk, [accept.id, ask.id, answer.id, result.id]]);
    expect(chain.ignored.map((i) => i.id)).toEqual([strangerResult.id]);
    // Without the logs the successor keys are strangers too.
    expect(getTaskChain(request, all).steps.map((x) => x.id)).toEqual([accept.id, ask.id]);
    // A successor key dated before its rotation is not yet the party.
    const early = getTaskStep(
      sign(alice1, makeTaskStep({ root: request.id, prev: answer.id, state: 'completed', worker: alice.pk, to: requester.pk }, rotatedAt - 1)),
    )!;
    expect(checkTaskStep(request, { state: 'working', worker: alice.pk }, early, undefined, priorKeys)).toBe(
      'only the assigned worker moves the task to completed',
    );
  });

  it('of two valid successors of one step the earlier (then lower id) wins', () => {
    const { request, offerA } = setup();
    const accept = step(requester, { root: request.id, prev: request.id, state: 'working', worker: alice.pk, offer: offerA.id, to: alice.pk });
    const cancel = sign(requester, makeTaskStep({ root: request.id, prev: accept.id, state: 'canceled', worker: alice.pk, to: alice.pk }, t + 10));
    const done = sign(alice, makeTaskStep({ root: request.id, prev: accept.id, state: 'completed', worker: alice.pk, to: requester.pk }, t + 5));
    expect(getTaskChain(request, [offerA, accept, cancel, done]).state).toBe('completed');
  });

  it('counts outcomes from chains and ranks workers by match, presence, then record', () => {
    const { reqEv, request, offerA } = setup();
    const accept = step(requester, { root: request.id, prev: request.id, state: 'working', worker: alice.pk, offer: offerA.id, to: alice.pk });
    const fail = step(alice, { root: request.id, prev: accept.id, state: 'failed', worker: alice.pk, to: requester.pk });
    const records = countWorkerOutcomes([getTaskChain(request, [reqEv, offerA, accept, fail])]);
    expect(records.get(alice.pk)).toEqual({ completed: 0, failed: 1 });
    const ranked = rankWorkers(
      [
        { pubkey: alice.pk, capabilities: ['summarise'], presence: 'online' },
        { pubkey: bob.pk, capabilities: ['summarise'], presence: 'online' },
        { pubkey: eve.pk, capabilities: ['summarise', 'translate'], presence: 'asleep' },
        { pubkey: requester.pk, capabilities: ['other'], presence: 'online' },
      ],
      ['summarise', 'translate'],
      records,
    );
    expect(ranked.map((r) => r.pubkey)).toEqual([eve.pk, bob.pk, alice.pk, requester.pk]);
    // Turnaround: median seconds from acceptance to completion, from the signed steps; faster ranks first among equals.
    const fast = new Map([
      [alice.pk, { completed: 2, failed: 0, turnaround: 30 }],
      [bob.pk, { completed: 2, failed: 0, turnaround: 300 }],
    ]);
    const byTurnaround = rankWorkers(
      [
        { pubkey: bob.pk, capabilities: ['summarise'], presence: 'online' },
        { pubkey: alice.pk, capabilities: ['summarise'], presence: 'online' },
      ],
      ['summarise'],
      fast,
    );
    expect(byTurnaround.map((r) => r.pubkey)).toEqual([alice.pk, bob.pk]);
    const { reqEv: r2, request: q2, offerA: o2 } = setup();
    const acc2 = sign(requester, makeTaskStep({ root: q2.id, prev: q2.id, state: 'working', worker: alice.pk, offer: o2.id, to: alice.pk }, 1000));
    const done2 = sign(alice, makeTaskStep({ root: q2.id, prev: acc2.id, state: 'completed', worker: alice.pk, to: requester.pk }, 1042));
    expect(countWorkerOutcomes([getTaskChain(q2, [r2, o2, acc2, done2])]).get(alice.pk)).toEqual({ completed: 1, failed: 0, turnaround: 42 });
  });
});
