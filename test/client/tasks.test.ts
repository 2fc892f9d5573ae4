import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../client/node/index.js';
import { makeTaskStep } from '../../shared/tasks.js';
import { startFakeFcm, type FakeFcm } from '../helpers/fake-fcm.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { startRecordingAgent, tempDir } from './helpers.js';

const cleanups: Array<() => unknown> = [];
let fake: FakeFcm;
let relay: TestRelay;
const relayDir = tempDir('roost-tasks-relay-');

function pushConfig(port = 0) {
  return { port, pushFcmAccessToken: 'fixed-token', pushFcmProjectId: 'p', pushFcmEndpoint: fake.url, pushMinIntervalSeconds: 0, publicUrl: '' };
}

beforeAll(async () => {
  fake = await startFakeFcm({ accessToken: 'fixed-token' });
  relay = await startRelay(pushConfig(), {}, relayDir.dir);
});
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn();
  await relay.close();
  await fake.close();
  relayDir.cleanup();
});

async function agentIn(home: string): Promise<Agent> {
  const { agent } = await startRecordingAgent(home, [relay.url]);
  cleanups.push(() => agent.close());
  await agent.whenConnected();
  return agent;
}

async function newAgent(): Promise<{ agent: Agent; home: string }> {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return { agent: await agentIn(t.dir), home: t.dir };
}

function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((r) => {
    open = r;
  });
  return { wait, open };
}

describe('agent.tasks through a real relay', () => {
  it('request → two offers → accept → the asleep worker is woken, reports progress and a result across a relay restart', async () => {
    const { agent: requester } = await newAgent();
    const { agent: alice, home: aliceHome } = await newAgent();
    const { agent: bob } = await newAgent();
    const { agent: eve } = await newAgent();
    for (const [a, name] of [
      [alice, 'alice'],
      [bob, 'bob'],
    ] as const) {
      await a.publishCard({ name, description: 'summaries', capabilities: ['summarise'], version: '1' });
    }
    let bobRan = 0;
    alice.tasks.onRequest(['summarise'], () => 'never: alice sleeps before the acceptance', { offer: () => ({ note: 'alice can' }) });
    bob.tasks.onRequest(['summarise'], () => {
      bobRan++;
      return 'bob';
    });
    await alice.registerWake([{ platform: 'fcm', token: `fcm-token:${'a'.repeat(40)}`, mode: 'background' }]);

    const ranked = await requester.tasks.discover(['summarise']);
    expect(ranked.map((r) => r.pubkey).sort()).toEqual([alice.pubkey, bob.pubkey].sort());
    expect(ranked.every((r) => r.completed === 0 && r.presence === 'online')).toBe(true);

    const { id } = await requester.tasks.request({ capabilities: ['summarise'], input: 'the paper', deadline: Math.floor(Date.now() / 1000) + 600 });
    await waitFor(async () => (await requester.tasks.status(id)).offers.length === 2, 'two offers');
    const chain = await requester.tasks.status(id);
    const aliceOffer = chain.offers.find((o) => o.worker === alice.pubkey)!;
    const bobOffer = chain.offers.find((o) => o.worker === bob.pubkey)!;

    // Forged: bob accepts his own offer → refused by the relay, and the chain does not move.
    const selfAccept = bob.identity.sign(
      makeTaskStep({ root: id, prev: id, state: 'working', worker: bob.pubkey, offer: bobOffer.id, to: requester.pubkey }, Math.floor(Date.now() / 1000)),
    );
    await expect(bob.publishSigned(selfAccept)).rejects.toMatchObject({ code: 'ROOST_ERR_REFUSED', prefix: 'invalid' });
    expect((await requester.tasks.status(id)).state).toBe('submitted');

    // Alice goes to sleep (wake channel registered), then is accepted: the relay pushes a wake.
    await alice.close();
    const pushesBefore = fake.requests.length;
    await requester.tasks.accept(id, aliceOffer.id);
    await waitFor(() => fake.requests.length > pushesBefore, 'wake push for alice');
    expect(fake.requests.at(-1)!.message.token).toBe(`fcm-token:${'a'.repeat(40)}`);

    // Woken: alice starts again from her home; her handler finds the acceptance in the signed history.
    const release = gate();
    const progressed = gate();
    const alice2 = await agentIn(aliceHome);
    alice2.tasks.onRequest(['summarise'], async (task) => {
      await task.progress('read half of it');
      progressed.open();
      await release.wait;
      return `summary of ${task.input}`;
    });
    const result = requester.tasks.result(id, { timeoutMs: 30_000 });
    await progressed.wait;

    // Forged: a third party posts a result → refused.
    const head = (await requester.tasks.status(id)).head;
    const fakeResult = eve.identity.sign(
      makeTaskStep({ root: id, prev: head, state: 'completed', worker: alice.pubkey, to: requester.pubkey, content: 'fake' }, Math.floor(Date.now() / 1000)),
    );
    await expect(eve.publishSigned(fakeResult)).rejects.toMatchObject({ code: 'ROOST_ERR_REFUSED', prefix: 'invalid' });

    // The relay restarts mid-way (same database and port); the result still arrives.
    const port = relay.port;
    await relay.close({ keep: true });
    relay = await startRelay(pushConfig(port), {}, relayDir.dir);
    release.open();
    const done = await result;
    expect(done.result).toBe('summary of the paper');
    expect(done.chain.steps.map((s) => [s.author === requester.pubkey ? 'requester' : 'alice', s.state, s.content])).toEqual([
      ['requester', 'working', ''],
      ['alice', 'working', 'started'],
      ['alice', 'working', 'read half of it'],
      ['alice', 'completed', 'summary of the paper'],
    ]);
    expect(bobRan).toBe(0);
    // Every party derives the same chain from the signed events.
    expect((await bob.tasks.status(id)).steps.map((s) => s.id)).toEqual(done.chain.steps.map((s) => s.id));
    // Discovery now ranks alice first: one completed task counted from the chain, not self-reported.
    const after = await requester.tasks.discover(['summarise']);
    expect(after.find((r) => r.pubkey === alice.pubkey)).toMatchObject({ completed: 1, failed: 0 });
  }, 60_000);

  it('a private task travels in gift-wrapped DMs; a forged step from a third party is ignored by the client', async () => {
    const { agent: requester } = await newAgent();
    const { agent: worker } = await newAgent();
    const { agent: eve } = await newAgent();
    const release = gate();
    worker.tasks.onRequest(['translate'], async (t) => {
      await release.wait;
      return t.input.toUpperCase();
    });
    const { id } = await requester.tasks.request({ capabilities: ['translate'], input: 'bonjour', worker: worker.pubkey, private: true });
    const pending = requester.tasks.result(id, { timeoutMs: 20_000 });
    await waitFor(async () => (await requester.tasks.status(id)).state === 'working', 'worker took the private task');
    // Eve signs a "completed" step and sends it in a DM: valid signature, wrong party.
    const head = (await requester.tasks.status(id)).head;
    const forged = eve.identity.sign(
      makeTaskStep({ root: id, prev: head, state: 'completed', worker: worker.pubkey, to: requester.pubkey, content: 'FORGED' }, Math.floor(Date.now() / 1000)),
    );
    await eve.send(requester.pubkey, JSON.stringify(forged), { tags: [['roost-task', id]] });
    await waitFor(async () => (await requester.tasks.status(id)).ignored.some((i) => i.id === forged.id), 'forged step seen and ignored');
    expect((await requester.tasks.status(id)).state).toBe('working');
    release.open();
    const { result } = await pending;
    expect(result).toBe('BONJOUR');
    // Nothing of it is on the relay in the clear.
    expect(relay.relay.ctx.store.provides.syncReads!.query([{ kinds: [4340, 4341, 4342], '#e': [id] }])).toEqual([]);
  }, 30_000);
  it('on a relay that does not check tasks, forged steps are stored but every client ignores them', async () => {
    const plain = await startRelay();
    cleanups.push(() => plain.close());
    // Any other Nostr relay: the same relay without the task policy.
    const hooks = plain.relay.ctx.hooks.rejectEvent;
    hooks.splice(
      hooks.findIndex((h) => h.name === 'rejectInvalidTaskEvents'),
      1,
    );
    const on = async () => {
      const t = tempDir();
      cleanups.push(t.cleanup);
      const { agent } = await startRecordingAgent(t.dir, [plain.url]);
      cleanups.push(() => agent.close());
      await agent.whenConnected();
      return agent;
    };
    const requester = await on();
    const worker = await on();
    const eve = await on();
    const now = () => Math.floor(Date.now() / 1000);
    const { id } = await requester.tasks.request({ capabilities: ['summarise'], input: 'x' });
    const eveOffer = await eve.tasks.offer(id);
    const workerOffer = await worker.tasks.offer(id);
    // Eve accepts her own offer and posts a result: stored here, since nothing checks.
    const selfAccept = eve.identity.sign(
      makeTaskStep({ root: id, prev: id, state: 'working', worker: eve.pubkey, offer: eveOffer, to: requester.pubkey }, now()),
    );
    await eve.publishSigned(selfAccept);
    const fakeResult = eve.identity.sign(
      makeTaskStep({ root: id, prev: selfAccept.id, state: 'completed', worker: eve.pubkey, to: requester.pubkey, content: 'fake' }, now()),
    );
    await eve.publishSigned(fakeResult);
    for (const a of [requester, worker, eve]) {
      const c = await a.tasks.status(id);
      expect(c.state).toBe('submitted');
      expect(c.ignored.map((i) => i.id).sort()).toEqual([selfAccept.id, fakeResult.id].sort());
    }
    // The real acceptance still works, and a forged result after it is ignored too.
    await requester.tasks.accept(id, workerOffer);
    const head = (await requester.tasks.status(id)).head;
    const thirdParty = eve.identity.sign(
      makeTaskStep({ root: id, prev: head, state: 'completed', worker: worker.pubkey, to: requester.pubkey, content: 'fake' }, now()),
    );
    await eve.publishSigned(thirdParty);
    await worker.tasks.update(id, 'completed', 'real');
    expect((await requester.tasks.result(id, { timeoutMs: 10_000 })).result).toBe('real');
  }, 30_000);
});
