import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../client/agent.js';
import { Identity } from '../../client/identity.js';
import { openKeyRing, rotateKeyRing } from '../../client/node/key-ring.js';
import { makeAgentCard } from '../../shared/agent-card.js';
import type { NostrEvent } from '../../shared/event.js';
import { type KeyLog, verifyKeyLog } from '../../shared/identity-log.js';
import { ATTESTATION_CAP, computeReputation, makeAttestation } from '../../shared/reputation.js';
import { getTaskChain, getTaskRequest, makeTaskOffer, makeTaskRequest, makeTaskStep } from '../../shared/tasks.js';
import { createRng } from '../helpers/prng.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { runCli, startRecordingAgent, tempDir } from './helpers.js';

/*
 * Reputation from signed history only (shared/reputation.ts) with real agents through a real relay: a
 * seeded history of task chains and attestations, one worker rotating in the middle of it; three agents
 * compute the same scores, equal to the pure function over the events published; a hundred sybil keys
 * attesting each other move nobody; discovery filters by minReputation.
 */

let relay: TestRelay;
let pub: RawClient;
const dirs: Array<{ cleanup: () => void }> = [];
const agents: Agent[] = [];
const published: NostrEvent[] = [];
const logs: KeyLog[] = [];
let w1k0: Identity;
let w1k1: Identity;
let w1aid: string;
let workers: Identity[];

async function put(ev: NostrEvent): Promise<void> {
  const ok = await pub.publish(ev);
  expect([ok[2], ok[3]]).toEqual([true, '']);
  published.push(ev);
}

function oracle(): ReturnType<typeof computeReputation> {
  const requests = published.flatMap((e) => getTaskRequest(e) ?? []);
  const tasks = requests.map((r) => getTaskChain(r, published));
  return computeReputation({ tasks, attestations: published.filter((e) => e.kind === 4349), logs });
}

beforeAll(async () => {
  relay = await startRelay();
  pub = await RawClient.connect(relay.url);
  const rng = createRng(2323);
  const base = Math.floor(Date.now() / 1000) - 3600;
  let t = base;
  const w1home = tempDir();
  dirs.push(w1home);
  const r0 = openKeyRing(w1home.dir, { now: () => base });
  w1k0 = r0.current;
  w1aid = r0.aid;
  const requesters = [Identity.generate(), Identity.generate(), Identity.generate()];
  const w2 = Identity.generate();
  const w3 = Identity.generate();
  workers = [w1k0, w2, w3];
  const task = async (requester: Identity, worker: Identity, outcome: 'completed' | 'failed') => {
    const req = requester.sign(makeTaskRequest({ capabilities: ['rep'], input: `task ${t}` }, ++t));
    await put(req);
    const offer = worker.sign(makeTaskOffer({ id: req.id, requester: requester.pubkey }, {}, ++t));
    await put(offer);
    const accept = requester.sign(
      makeTaskStep({ root: req.id, prev: req.id, state: 'working', worker: worker.pubkey, offer: offer.id, to: worker.pubkey }, ++t),
    );
    await put(accept);
    await put(worker.sign(makeTaskStep({ root: req.id, prev: accept.id, state: outcome, worker: worker.pubkey, to: requester.pubkey }, ++t)));
  };
  for (let i = 0; i < 30; i++) {
    if (i === 15) {
      // W1 rotates in the middle of its history: its later tasks are done with its new key.
      const { ring } = rotateKeyRing(w1home.dir, { now: () => ++t });
      w1k1 = ring.current;
      workers = [w1k1, w2, w3];
      for (const ev of ring.events) expect((await pub.publish(ev))[2]).toBe(true);
      const log = verifyKeyLog(w1aid, ring.events);
      if (typeof log === 'string') throw new Error(log);
      logs.push(log);
    }
    await task(rng.pick(requesters), rng.pick(workers), rng.chance(0.75) ? 'completed' : 'failed');
  }
  // Workers attest one another (their own task standing gives the weight); requesters attest too (weight 0).
  for (const a of [...workers, ...requesters]) {
    for (const s of [w1k1, w2, w3]) if (a !== s) await put(a.sign(makeAttestation({ subject: s.pubkey, rating: Math.round(rng.next() * 100) / 100 }, ++t)));
  }
  for (const [i, w] of [w1k1, w2, w3].entries()) {
    await put(w.sign(makeAgentCard({ name: `w${i + 1}`, description: '', capabilities: ['rep'], version: '1', relays: [relay.url] }, ++t)));
  }
  for (let i = 0; i < 3; i++) {
    const home = tempDir();
    dirs.push(home);
    agents.push((await startRecordingAgent(home.dir, [relay.url], { inbox: false })).agent);
  }
});
afterAll(async () => {
  pub.close();
  for (const a of agents) await a.close();
  await relay.close();
  for (const d of dirs) d.cleanup();
});

describe('reputation from signed history', () => {
  it('three agents compute the same reputation from a seeded history, the pure function’s, across a rotation', async () => {
    const keys = [w1k0.pubkey, w1k1.pubkey, ...workers.slice(1).map((w) => w.pubkey)];
    const seen = await Promise.all(agents.map((a) => a.reputation(keys)));
    const expected = oracle();
    for (const got of seen) {
      expect(got.get(keys[0]!)).toEqual(expected.get(w1aid));
      expect(got.get(keys[1]!)).toEqual(expected.get(w1aid));
      expect(got.get(keys[2]!)).toEqual(expected.get(keys[2]!));
      expect(got.get(keys[3]!)).toEqual(expected.get(keys[3]!));
    }
    // Both keys' tasks count for the one identity.
    const w1 = expected.get(w1aid)!;
    expect(w1.completed + w1.failed).toBeGreaterThan(0);
    expect(expected.get(w1k0.pubkey)).toBeUndefined();
    expect(expected.get(w1k1.pubkey)).toBeUndefined();
    expect([...expected.values()].some((r) => r.support > 0)).toBe(true);
  });

  it('a hundred sybil keys with no history attesting each other (and a worker) move nobody', async () => {
    const target = workers[2]!;
    const before = (await agents[0]!.reputation([target.pubkey])).get(target.pubkey);
    const sybils = Array.from({ length: 100 }, () => Identity.generate());
    const t = Math.floor(Date.now() / 1000);
    for (const [i, s] of sybils.entries()) {
      await put(s.sign(makeAttestation({ subject: target.pubkey, rating: 1 }, t)));
      for (const k of [1, 2]) await put(s.sign(makeAttestation({ subject: sybils[(i + k) % 100]!.pubkey, rating: 1 }, t)));
    }
    const after = await agents[1]!.reputation([target.pubkey, ...sybils.map((s) => s.pubkey)]);
    expect(after.get(target.pubkey)).toEqual(before);
    expect(Math.max(...sybils.map((s) => after.get(s.pubkey)!.score))).toBe(0);
    expect(Math.max(...[...oracle().values()].map((r) => r.support))).toBeLessThan(Number.POSITIVE_INFINITY);
    for (const r of oracle().values()) expect(r.score - (1 - ATTESTATION_CAP) * r.taskStanding).toBeLessThanOrEqual(ATTESTATION_CAP + 1e-12);
  });

  it('discover({ capability, minReputation }) keeps only the agents whose history scores it', async () => {
    const expected = oracle();
    const scores = [w1aid, workers[1]!.pubkey, workers[2]!.pubkey].map((id) => expected.get(id)?.score ?? 0);
    const sorted = [...scores].sort((a, b) => a - b);
    const min = (sorted[1]! + sorted[2]!) / 2;
    expect(sorted[2]).toBeGreaterThan(sorted[1]!);
    const found = await agents[2]!.discover({ capabilities: ['rep'], minReputation: min });
    const best = [w1k1, workers[1]!, workers[2]!][scores.indexOf(sorted[2]!)]!;
    expect(found.map((f) => [f.pubkey, f.reputation])).toEqual([[best.pubkey, sorted[2]]]);
    expect(await agents[2]!.discover({ capabilities: ['rep'], minReputation: 0 })).toHaveLength(3);
    // The CLI equivalent.
    const home = tempDir();
    dirs.push(home);
    expect((await runCli(['--home', home.dir, 'keygen'])).code).toBe(0);
    const out = await runCli(['--home', home.dir, 'discover', '--capability', 'rep', '--min-reputation', String(min), '--json'], { ROOST_RELAYS: relay.url });
    expect([out.code, out.stderr]).toEqual([0, '']);
    expect(out.json().map((f: { pubkey: string; reputation: number }) => [f.pubkey, f.reputation])).toEqual([[best.pubkey, sorted[2]]]);
    expect((await runCli(['--home', home.dir, 'discover', '--min-reputation', '2'], { ROOST_RELAYS: relay.url })).code).not.toBe(0);
  });
});
