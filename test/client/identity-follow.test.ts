import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent, InboxMessage } from '../../client/agent.js';
import { wrapDirectMessage } from '../../client/dm.js';
import type { ClientError } from '../../client/errors.js';
import { Identity } from '../../client/identity.js';
import { join } from 'node:path';
import { migrateToIdentityDoc } from '../../client/identity-docs.js';
import { loadKeyFile } from '../../client/node/key-file.js';
import { openKeyRing, revokeKeyRing, rotateKeyRing } from '../../client/node/key-ring.js';
import type { WakeChannel } from '../../client/wake.js';
import type { SendOutcome, WakeSender, WakeTarget } from '../../relay/push/types.js';
import type { NostrEvent } from '../../shared/event.js';
import { type KeyEvent, type KeyLog, makeRotation } from '../../shared/identity-log.js';
import { makeTaskStep } from '../../shared/tasks.js';
import { makeKey, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { dmTexts, startRecordingAgent, tempDir } from './helpers.js';

/*
 * Everything that names a key follows a rotation (docs/identity.md), with real agents (key rings on
 * disk) through a real relay: cards and discovery, DMs in both directions, refusal of keys that no
 * longer speak, a thief holding only the current key, a revocation, and a fork.
 */

let relay: TestRelay;
const dirs: Array<{ cleanup: () => void }> = [];
const agents: Agent[] = [];
const home = () => {
  const d = tempDir();
  dirs.push(d);
  return d.dir;
};
async function agentIn(dir: string, relays = [relay.url]): Promise<{ agent: Agent; got: InboxMessage[]; errors: ClientError[] }> {
  const { agent, got } = await startRecordingAgent(dir, relays);
  const errors: ClientError[] = [];
  agent.on('error', (e) => errors.push(e as ClientError));
  agents.push(agent);
  return { agent, got, errors };
}
async function publishRaw(url: string, ev: NostrEvent): Promise<unknown[]> {
  const c = await RawClient.connect(url);
  try {
    return await c.publish(ev);
  } finally {
    c.close();
  }
}
const APNS: WakeChannel = { platform: 'apns', token: 'ab'.repeat(32), topic: 'org.example.agent', environment: 'sandbox', mode: 'background' };
const wrapTarget = (r: TestRelay, wrapId: string) => {
  const [stored] = r.relay.ctx.store.provides.syncReads!.query([{ ids: [wrapId] }]);
  return (JSON.parse(stored?.raw ?? '{"tags":[]}') as NostrEvent).tags.find((t) => t[0] === 'p')?.[1];
};

beforeAll(async () => {
  relay = await startRelay();
});
afterAll(async () => {
  for (const a of agents) await a.close();
  await relay.close();
  for (const d of dirs) d.cleanup();
});

describe('agent identity on a key ring', () => {
  it('createNodeAgent opens the key ring: the agent id outlives a rotation, and discovery names it with the key version', async () => {
    const dir = home();
    const first = await agentIn(dir);
    const aid = first.agent.aid as string;
    expect(aid).toBe(openKeyRing(dir).aid);
    expect(first.agent.keyLog?.head.seq).toBe(0);
    await first.agent.publishCard({ name: 'carol', description: '', capabilities: ['follow-card'], version: '1' });
    await first.agent.close();

    rotateKeyRing(dir);
    const second = await agentIn(dir);
    expect(second.agent.pubkey).not.toBe(first.agent.pubkey);
    expect(second.agent.aid).toBe(aid);
    await second.agent.publishCard({ name: 'carol', description: '', capabilities: ['follow-card'], version: '2' });

    const seeker = await agentIn(home());
    // The old key's card is superseded by the log: one agent, its current key, key version 1.
    const found = await seeker.agent.discover({ capabilities: ['follow-card'] });
    expect(found.map((f) => [f.pubkey, f.aid, f.keySeq, f.version])).toEqual([[second.agent.pubkey, aid, 1, '2']]);
  });
});

describe('DMs follow a rotation', () => {
  it('a rotation in the middle of a conversation loses no DM in either direction; the next message goes to the new key', async () => {
    const alice = await agentIn(home());
    const bobHome = home();
    let bob = await agentIn(bobHome);
    const bob0 = bob.agent.pubkey;
    const bobAid = bob.agent.aid;

    await alice.agent.send(bob0, 'a1');
    await waitFor(() => dmTexts(bob.got).length === 1, 'bob reads a1');
    await bob.agent.reply(bob.got[0] as never, 'b1');
    await waitFor(() => dmTexts(alice.got).length === 1, 'alice reads b1');
    await bob.agent.close();

    // Bob is away and rotates; Alice, who has not seen it yet, writes to the old key.
    await alice.agent.send(bob0, 'a2');
    const { ring } = rotateKeyRing(bobHome);
    const bob1 = ring.current.pubkey;
    const bobGot = bob.got;
    bob = await agentIn(bobHome);
    expect(bob.agent.pubkey).toBe(bob1);
    // Bob's start publishes the rotation; Alice's live watch on his log sees it.
    await waitFor(() => alice.agent.keyLogs.get(bob0)?.current === bob1, 'alice sees the rotation');
    const a3 = await alice.agent.send(bob0, 'a3');
    expect(wrapTarget(relay, a3.wrapId)).toBe(bob1);
    await waitFor(() => dmTexts(bob.got).length === 2, 'bob reads a2 (to his old key) and a3');
    expect([...dmTexts(bobGot), ...dmTexts(bob.got)]).toEqual(['a1', 'a2', 'a3']);

    await bob.agent.send(alice.agent.pubkey, 'b2');
    await waitFor(() => dmTexts(alice.got).length === 2, 'alice reads b2 from the new key');
    expect(alice.got.map((m) => m.type === 'dm' && [m.content, m.from, m.aid])).toEqual([
      ['b1', bob0, bobAid],
      ['b2', bob1, bobAid],
    ]);
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it('look-ups of many new peers at once share two queries (no subscription each, within the relay’s 50)', async () => {
    const alice = await agentIn(home());
    const peers = Array.from({ length: 80 }, () => Identity.generate().pubkey);
    const sent = await Promise.all(peers.map((p, i) => alice.agent.send(p, `hello ${i}`)));
    expect(sent.map((s) => wrapTarget(relay, s.wrapId))).toEqual(peers);
    expect(alice.errors).toEqual([]);
  });

  it('a key rotated out speaks until its grace period ends, and is refused after', async () => {
    const alice = await agentIn(home());
    const dir = home();
    let t = Math.floor(Date.now() / 1000) - 1000;
    const now = () => t;
    const r0 = openKeyRing(dir, { now, grace: 60 });
    t += 400;
    const { ring, event } = rotateKeyRing(dir, { now });
    for (const ev of ring.events) expect((await publishRaw(relay.url, ev))[2]).toBe(true);
    const old = r0.current;
    // Inside the grace period (a message in flight at the rotation): read. After it: refused.
    const inGrace = wrapDirectMessage(old, alice.agent.pubkey, 'in grace', { createdAt: event.created_at + 30 }).wrap;
    const late = wrapDirectMessage(old, alice.agent.pubkey, 'too late', { createdAt: event.created_at + 61 }).wrap;
    expect((await publishRaw(relay.url, inGrace))[2]).toBe(true);
    expect((await publishRaw(relay.url, late))[2]).toBe(true);
    await waitFor(() => alice.errors.length === 1 && dmTexts(alice.got).length === 1, 'one read, one refused');
    expect(dmTexts(alice.got)).toEqual(['in grace']);
    expect(alice.errors.map((e) => e.code)).toEqual(['ROOST_ERR_KEY_REFUSED']);
  });

  it('a thief holding only the current key cannot rotate: the relay refuses, clients ignore it and refuse his key', async () => {
    const alice = await agentIn(home());
    const dir = home();
    const ring = openKeyRing(dir);
    for (const ev of ring.events) expect((await publishRaw(relay.url, ev))[2]).toBe(true);
    const thief = Identity.generate();
    const forged = thief.sign(
      makeRotation(
        { head: ring.log.head as KeyEvent, currentSecretKey: ring.current.exportSecretKey(), newKey: thief.pubkey, nextKey: Identity.generate().pubkey },
        ring.log.head.created_at + 1,
      ),
    );
    const ok = await publishRaw(relay.url, forged);
    expect(ok[2]).toBe(false);
    expect(String(ok[3])).toMatch(/^invalid: /);

    // A relay that does not check chains (malicious, or an ordinary Nostr relay) takes it; the client ignores it.
    const lax = await startRelay();
    try {
      const hooks = lax.relay.ctx.hooks.rejectEvent;
      const at = hooks.findIndex((h) => h.name === 'rejectInvalidKeyEvents');
      expect(at).toBeGreaterThan(-1);
      hooks.splice(at, 1);
      for (const ev of [...ring.events, forged]) expect((await publishRaw(lax.url, ev))[2]).toBe(true);
      const reader = await agentIn(home(), [lax.url]);
      const log = (await reader.agent.fetchKeyLog({ aid: ring.aid })) as KeyLog;
      expect(log.current).toBe(ring.current.pubkey);
      expect(log.ignored.map((i) => i.id)).toEqual([forged.id]);
      expect(await reader.agent.keyLogs.recipient(ring.current.pubkey)).toBe(ring.current.pubkey);
      // The thief's key claims the identity in its forged event: its messages are refused.
      await publishRaw(lax.url, wrapDirectMessage(thief, reader.agent.pubkey, 'I am the owner now').wrap);
      await waitFor(() => reader.errors.length === 1, 'the thief’s message refused');
      expect(reader.errors[0]?.code).toBe('ROOST_ERR_KEY_REFUSED');
      expect(reader.got).toEqual([]);
    } finally {
      await lax.close();
    }
    expect(alice.errors).toEqual([]);
  });

  it('a revocation stops the old key at once, even for a message dated before it', async () => {
    const alice = await agentIn(home());
    const bobHome = home();
    const bob = await agentIn(bobHome);
    const k0 = bob.agent.identity;
    await bob.agent.send(alice.agent.pubkey, 'before');
    await waitFor(() => dmTexts(alice.got).length === 1, 'alice reads bob');
    await bob.agent.close();

    const { ring, event } = revokeKeyRing(bobHome, { reason: 'key leaked' });
    expect((await publishRaw(relay.url, event))[2]).toBe(true);
    await waitFor(() => alice.agent.keyLogs.get(k0.pubkey)?.current === ring.current.pubkey, 'alice sees the revocation');
    // The thief backdates his message before the revocation: refused all the same.
    const stolen = wrapDirectMessage(k0, alice.agent.pubkey, 'send me the funds', { createdAt: event.created_at - 60 }).wrap;
    expect((await publishRaw(relay.url, stolen))[2]).toBe(true);
    await waitFor(() => alice.errors.length === 1, 'refused');
    expect(alice.errors[0]?.code).toBe('ROOST_ERR_KEY_REFUSED');
    expect(dmTexts(alice.got)).toEqual(['before']);
    // Alice's next message to the old key goes to the key the revocation revealed.
    const sent = await alice.agent.send(k0.pubkey, 'to the new key');
    expect(wrapTarget(relay, sent.wrapId)).toBe(ring.current.pubkey);
  });

  it('two competing rotations from one state are detected: the identity is disputed and nothing is sent to it', async () => {
    const other = await startRelay();
    try {
      const dir = home();
      const ring = openKeyRing(dir);
      const head = ring.log.head as KeyEvent;
      // Both keys stolen: two validly co-signed rotations from one head, one per relay.
      const branch = (n: number) =>
        ring.next.sign(
          makeRotation(
            { head, currentSecretKey: ring.current.exportSecretKey(), newKey: ring.next.pubkey, nextKey: Identity.generate().pubkey },
            head.created_at + n,
          ),
        );
      const [a, b] = [branch(1), branch(2)];
      for (const ev of ring.events) {
        expect((await publishRaw(relay.url, ev))[2]).toBe(true);
        expect((await publishRaw(other.url, ev))[2]).toBe(true);
      }
      expect((await publishRaw(relay.url, a))[2]).toBe(true);
      expect((await publishRaw(other.url, b))[2]).toBe(true);
      const second = await publishRaw(relay.url, b);
      // Refused on the relay that holds the first branch (its key was revealed there).
      expect([second[2], String(second[3])]).toEqual([false, `invalid: key ${ring.next.pubkey} was already revealed by key event ${a.id}`]);

      const alice = await agentIn(home(), [relay.url, other.url]);
      await alice.agent.whenConnected(5000);
      const log = (await alice.agent.fetchKeyLog({ pubkey: ring.current.pubkey })) as KeyLog;
      expect(log.status).toBe('forked');
      expect(log.fork?.branches).toEqual([a.id, b.id].sort());
      await expect(alice.agent.send(ring.current.pubkey, 'hello?')).rejects.toMatchObject({ code: 'ROOST_ERR_IDENTITY_DISPUTED' });
      await expect(alice.agent.send(ring.next.pubkey, 'hello?')).rejects.toMatchObject({ code: 'ROOST_ERR_IDENTITY_DISPUTED' });
    } finally {
      await other.close();
    }
  });
});

describe('rotating a running agent in place', () => {
  it('agent.rotate() switches the key without a restart: DMs sent before, during and after arrive exactly once; the card and log follow', async () => {
    const bobHome = home();
    const bob = await agentIn(bobHome);
    const alice = await agentIn(home());
    const bob0 = bob.agent.pubkey;
    await bob.agent.publishCard({ name: 'bob', description: '', capabilities: ['in-place'], version: '1' });
    const sent: string[] = [];
    const send = async (text: string) => {
      sent.push(text);
      return alice.agent.send(bob0, text);
    };
    for (let i = 0; i < 5; i++) await send(`before-${i}`);
    // During: Alice keeps writing (to whichever key she knows) while Bob rotates.
    const rotating = bob.agent.rotate();
    const during = Array.from({ length: 10 }, (_, i) => send(`during-${i}`));
    const log = await rotating;
    await Promise.all(during);
    const bob1 = bob.agent.pubkey;
    expect(bob1).not.toBe(bob0);
    expect(log).toMatchObject({ aid: bob.agent.aid, current: bob1 });
    expect(bob.agent.keyLog?.head.seq).toBe(1);
    expect(openKeyRing(bobHome).current.pubkey).toBe(bob1);
    expect(bob.agent.readKeys).toEqual([bob1, bob0]);
    await waitFor(() => alice.agent.keyLogs.get(bob0)?.current === bob1, 'alice sees the rotation');
    const after = [];
    for (let i = 0; i < 5; i++) after.push(await send(`after-${i}`));
    expect(wrapTarget(relay, (after[4] as { wrapId: string }).wrapId)).toBe(bob1);
    // A peer that has not seen the rotation still writes to the old key during the grace period.
    const stranger = Identity.generate();
    expect((await publishRaw(relay.url, wrapDirectMessage(stranger, bob0, 'late-to-old').wrap))[2]).toBe(true);
    sent.push('late-to-old');
    await waitFor(() => dmTexts(bob.got).length >= sent.length, 'bob reads every message', 15_000);
    await bob.agent.inboxIdle();
    expect(dmTexts(bob.got).sort()).toEqual([...sent].sort());
    // Bob answers from the new key; Alice accepts it for the same identity.
    await bob.agent.send(alice.agent.pubkey, 'from-new');
    await waitFor(() => dmTexts(alice.got).includes('from-new'), 'alice reads the new key');
    expect(alice.got.find((m) => m.type === 'dm' && m.content === 'from-new')).toMatchObject({ from: bob1, aid: bob.agent.aid });
    // The card of the session is republished by the new key, naming key version 1.
    const seeker = await agentIn(home());
    await waitFor(async () => (await seeker.agent.discover({ capabilities: ['in-place'] }))[0]?.pubkey === bob1, 'discovery finds the new key');
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });
});

describe('push registrations follow a rotation', () => {
  it('an agent asleep when it is rotated is woken by mail to its new key and reads all its mail', async () => {
    const pushed: WakeTarget[] = [];
    const apns: WakeSender = {
      platform: 'apns',
      send: async (target): Promise<SendOutcome> => {
        pushed.push(target);
        return { kind: 'sent' };
      },
      close: async () => undefined,
    };
    const r = await startRelay({ pushMinIntervalSeconds: 0 }, { push: { senders: { apns } } });
    try {
      const bobHome = home();
      let bob = await agentIn(bobHome, [r.url]);
      const bob0 = bob.agent.pubkey;
      expect((await bob.agent.registerWake([APNS])).map((a) => a.accepted)).toEqual([true]);
      await bob.agent.close();

      const alice = await agentIn(home(), [r.url]);
      await alice.agent.send(bob0, 'asleep 1');
      await waitFor(() => pushed.length === 1, 'bob woken for his old key');
      // Rotated while asleep (`roost agent rotate` publishes the rotation); mail now goes to the new key.
      const { event, ring } = rotateKeyRing(bobHome);
      expect((await publishRaw(r.url, event))[2]).toBe(true);
      await waitFor(() => alice.agent.keyLogs.get(bob0)?.current === ring.current.pubkey, 'alice sees the rotation');
      const sent = await alice.agent.send(bob0, 'asleep 2');
      expect(wrapTarget(r, sent.wrapId)).toBe(ring.current.pubkey);
      await waitFor(() => pushed.length === 2, 'bob woken for his new key');
      expect(pushed.map((p) => p.token)).toEqual([APNS.token, APNS.token]);

      bob = await agentIn(bobHome, [r.url]);
      await waitFor(() => dmTexts(bob.got).length === 2, 'bob reads everything');
      expect(dmTexts(bob.got)).toEqual(['asleep 1', 'asleep 2']);
    } finally {
      await r.close();
    }
  });
});

describe('rotation interval', () => {
  it('an agent whose key is older than its rotation interval rotates when it starts; a younger one does not', async () => {
    const dir = home();
    const old = openKeyRing(dir, { now: () => Math.floor(Date.now() / 1000) - 10 * 86_400 });
    const fresh = await agentIn(dir, [relay.url]);
    expect(fresh.agent.pubkey).toBe(old.current.pubkey);
    await fresh.agent.close();

    const { agent } = await startRecordingAgent(dir, [relay.url], { rotationIntervalSeconds: 7 * 86_400 });
    agents.push(agent);
    expect(agent.pubkey).toBe(old.next.pubkey);
    expect([agent.aid, agent.keyLog?.head.seq, agent.keyLog?.head.type]).toEqual([old.aid, 1, 'rotation']);
    // The relay has the rotation (published on connect): a peer resolves the old key to the new one.
    const peer = await agentIn(home());
    expect(await peer.agent.keyLogs.recipient(old.current.pubkey)).toBe(agent.pubkey);
    await agent.close();
    const again = await agentIn(dir, [relay.url]);
    expect(again.agent.pubkey).toBe(agent.pubkey);
  });
});

describe('decision electorates follow a rotation', () => {
  it('a rotated voter votes with its new key: the relay takes the ballot and the tally counts it once, for the listed member', async () => {
    const alice = await agentIn(home());
    const carol = await agentIn(home());
    const bobHome = home();
    let bob = await agentIn(bobHome);
    const bob0 = bob.agent.pubkey;
    const proposal = await alice.agent.decisions.propose({
      question: 'ship it?',
      options: ['yes', 'no'],
      electorate: { type: 'pubkeys', pubkeys: [alice.agent.pubkey, bob0, carol.agent.pubkey] },
      rule: { type: 'majority' },
      deadline: Math.floor(Date.now() / 1000) + 600,
    });
    const first = await bob.agent.decisions.vote(proposal.id, 'no');
    await bob.agent.close();
    rotateKeyRing(bobHome);
    bob = await agentIn(bobHome);
    expect(bob.agent.pubkey).not.toBe(bob0);
    // A later second than the first ballot, so the new one replaces it whatever the ids.
    await waitFor(() => Math.floor(Date.now() / 1000) > proposal.createdAt, 'the next second');
    const second = await bob.agent.decisions.vote(proposal.id, 'yes');
    await alice.agent.decisions.vote(proposal.id, 'yes');
    await carol.agent.decisions.vote(proposal.id, 'no');
    const tally = await carol.agent.decisions.tally(proposal.id);
    expect([tally.outcome, tally.winner, tally.counts, tally.turnout]).toEqual(['passed', 'yes', { yes: 2, no: 1 }, 3]);
    expect(tally.counted).toContain(second);
    expect(tally.ignored).toEqual([{ id: first, why: 'replaced by a later ballot of the same voter' }]);
  });
});

describe('document membership follows a rotation', () => {
  it('a member rotated while away writes with its new key: the relay enforcing membership takes it, the owner applies it', async () => {
    const owner = await agentIn(home());
    const memberHome = home();
    let member = await agentIn(memberHome);
    const m0 = member.agent.pubkey;
    const od = await owner.agent.doc('plan', { members: [m0], enforce: true });
    let md = await member.agent.doc('plan', { owner: owner.agent.pubkey });
    await waitFor(() => md.canWrite, 'member sees the record');
    md.map('x').set('before', 1);
    await waitFor(() => od.map('x').get('before') === 1, 'owner reads the old key');
    await member.agent.close();

    rotateKeyRing(memberHome);
    member = await agentIn(memberHome);
    expect(member.agent.pubkey).not.toBe(m0);
    md = await member.agent.doc('plan', { owner: owner.agent.pubkey });
    expect(md.canWrite).toBe(true);
    md.map('x').set('after', 2);
    await waitFor(() => od.map('x').get('after') === 2, 'owner reads the new key');
    expect(od.isMember(member.agent.pubkey)).toBe(true);
    expect(od.membership.members).toEqual([m0]);
  });
});

describe('a document addressed by its owner identity outlives the owner’s keys', () => {
  it('the owner rotates mid-editing: its new key and the members keep converging on one document; a thief with the revoked key changes nothing', async () => {
    const ownerHome = home();
    let owner = await agentIn(ownerHome);
    const aid = owner.agent.aid as string;
    const member = await agentIn(home());
    let od = await owner.agent.doc('plan', { identity: true, members: [member.agent.pubkey], enforce: true });
    expect(od.address).toBe(`34339:${aid}:plan`);
    const md = await member.agent.doc('plan', { identity: aid });
    await waitFor(() => md.canWrite && md.enforced, 'member sees the record');
    od.map('x').set('k0', 0);
    md.map('x').set('m0', 0);
    await waitFor(() => md.map('x').get('k0') === 0 && od.map('x').get('m0') === 0, 'both edits converge before the rotation');

    // Planned rotation in the middle of the editing: the member keeps writing meanwhile.
    await owner.agent.close();
    const k0 = owner.agent.pubkey;
    rotateKeyRing(ownerHome);
    md.map('x').set('m1', 1);
    owner = await agentIn(ownerHome);
    const k1 = owner.agent.pubkey;
    expect(k1).not.toBe(k0);
    od = await owner.agent.doc('plan', { identity: true });
    expect(od.address).toBe(`34339:${aid}:plan`);
    expect(od.canWrite).toBe(true);
    od.map('x').set('k1', 1);
    md.map('x').set('m2', 2);
    await waitFor(
      () => md.map('x').get('k1') === 1 && od.map('x').get('m1') === 1 && od.map('x').get('m2') === 2,
      'edits by the new key and the member converge',
    );
    expect(md.isOwnerKey(k1)).toBe(true);
    // The new key changes the membership: the relay and the member take it.
    od.setMembers([member.agent.pubkey, Identity.generate().pubkey]);
    await waitFor(() => md.membership.members.length === 2, 'member applies the new key’s record');

    // The key is stolen; the owner revokes it. The thief holds only the revoked key.
    await owner.agent.close();
    const thief = loadKeyFile(join(ownerHome, 'agent.key'));
    expect(thief.pubkey).toBe(k1);
    revokeKeyRing(ownerHome);
    owner = await agentIn(ownerHome);
    od = await owner.agent.doc('plan', { identity: true });
    await waitFor(async () => typeof (await member.agent.keyLogs.fetchLog(aid)) !== 'string' && !md.isOwnerKey(k1), 'member learns the revocation');
    const takeover = thief.sign({
      kind: 34339,
      created_at: Math.floor(Date.now() / 1000) + 5,
      tags: [
        ['d', 'plan'],
        ['a', `34339:${aid}:plan`],
        ['p', thief.pubkey],
        ['enforce', 'members'],
      ],
      content: '',
    });
    const refused = await publishRaw(relay.url, takeover);
    expect(refused[2]).toBe(false);
    expect(refused[3]).toMatch(/^restricted: .* does not speak for identity/);
    // Nor does the relay take the thief's edits as the owner's.
    const delta = thief.sign({ kind: 4337, created_at: Math.floor(Date.now() / 1000), tags: [['a', `34339:${aid}:plan`]], content: 'AAA=' });
    expect((await publishRaw(relay.url, delta))[3]).toMatch(/^restricted: .* is not a member/);
    od.map('x').set('k2', 2);
    md.map('x').set('m3', 3);
    await waitFor(() => md.map('x').get('k2') === 2 && od.map('x').get('m3') === 3, 'the owner’s third key and the member still converge');
    expect(md.membership.members).toHaveLength(2);
    expect(md.membership.members).not.toContain(thief.pubkey);
    expect(od.toJSON()).toEqual(md.toJSON());
  });
});

describe('a document addressed by key moves to the owner identity', () => {
  it('migrateToIdentityDoc carries state and members over after the owner rotated; the old address stays readable', async () => {
    const ownerHome = home();
    let owner = await agentIn(ownerHome);
    const k0 = owner.agent.pubkey;
    const member = await agentIn(home());
    const old = await owner.agent.doc('notes', { members: [member.agent.pubkey] });
    old.map('n').set('a', 1);
    const mOld = await member.agent.doc('notes', { owner: k0 });
    await waitFor(() => mOld.canWrite, 'member sees the old record');
    mOld.map('n').set('b', 2);
    await waitFor(() => old.map('n').get('b') === 2, 'owner reads the member');
    await old.flush();
    await owner.agent.close();
    rotateKeyRing(ownerHome);
    owner = await agentIn(ownerHome);

    const doc = await migrateToIdentityDoc(owner.agent, 'notes', { from: k0 });
    expect(doc.address).toBe(`34339:${owner.agent.aid}:notes`);
    expect(doc.membership.members).toEqual([member.agent.pubkey]);
    const moved = await member.agent.doc('notes', { identity: owner.agent.aid as string });
    await waitFor(() => moved.map('n').get('a') === 1 && moved.map('n').get('b') === 2 && moved.canWrite, 'member reads the moved state');
    moved.map('n').set('c', 3);
    await waitFor(() => doc.map('n').get('c') === 3, 'the owner’s new key reads the member at the new address');
    // The old address is still readable.
    expect(mOld.map('n').get('a')).toBe(1);
  });
});

describe('task parties follow a rotation', () => {
  it('a worker rotated between acceptance and result completes the task with its new key; a stranger key is still refused', async () => {
    const requester = await agentIn(home());
    const workerHome = home();
    let worker = await agentIn(workerHome);
    const w0 = worker.agent.pubkey;
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    worker.agent.tasks.onRequest(['rotating-work'], async () => {
      await held;
      return 'never: the worker stops before it answers';
    });
    const { id } = await requester.agent.tasks.request({ capabilities: ['rotating-work'], input: 'x' });
    const offered = await requester.agent.tasks.waitFor(id, (c) => c.offers.length === 1, 10_000);
    await requester.agent.tasks.accept(id, offered.offers[0]!.id);
    await requester.agent.tasks.waitFor(id, (c) => c.steps.length === 2, 10_000);
    await worker.agent.close();
    release();

    rotateKeyRing(workerHome);
    worker = await agentIn(workerHome);
    const w1 = worker.agent.pubkey;
    expect(w1).not.toBe(w0);
    // A key with no part in the task still cannot post its result.
    const head = (await requester.agent.tasks.status(id)).head;
    const stranger = signEvent(
      makeKey(),
      makeTaskStep({ root: id, prev: head, state: 'completed', worker: w0, to: requester.agent.pubkey, content: 'fake' }, Math.floor(Date.now() / 1000)),
    );
    const refused = await publishRaw(relay.url, stranger);
    expect([refused[2], refused[3]]).toEqual([false, 'invalid: only the assigned worker moves the task to completed']);

    worker.agent.tasks.onRequest(['rotating-work'], (t) => `done for ${t.input}`);
    const { result, chain } = await requester.agent.tasks.result(id, { timeoutMs: 15_000 });
    expect(result).toBe('done for x');
    // The task keeps naming the key it was given to; its last step is signed by the successor.
    expect([chain.state, chain.worker, chain.steps.at(-1)?.author]).toEqual(['completed', w0, w1]);
    expect(chain.ignored).toEqual([]);
    // The completed task counts for the worker's identity, whichever key is asked about.
    const rep = await requester.agent.reputation([w1, w0]);
    expect([rep.get(w1)?.completed, rep.get(w0)?.completed]).toEqual([1, 1]);
  });

  it('a requester rotated mid-task cancels it with its new key; the worker sees it canceled', async () => {
    const requesterHome = home();
    let requester = await agentIn(requesterHome);
    const worker = await agentIn(home());
    const held = new Promise<string>(() => {});
    worker.agent.tasks.onRequest(['rotating-ask'], () => held);
    const { id } = await requester.agent.tasks.request({ capabilities: ['rotating-ask'], input: 'y' });
    const offered = await requester.agent.tasks.waitFor(id, (c) => c.offers.length === 1, 10_000);
    await requester.agent.tasks.accept(id, offered.offers[0]!.id);
    await requester.agent.close();
    rotateKeyRing(requesterHome);
    requester = await agentIn(requesterHome);
    const chain = await requester.agent.tasks.cancel(id, 'no longer needed');
    expect([chain.state, chain.steps.at(-1)?.author]).toEqual(['canceled', requester.agent.pubkey]);
    const seen = await worker.agent.tasks.waitFor(id, (c) => c.state === 'canceled', 10_000);
    expect(seen.request.requester).not.toBe(requester.agent.pubkey);
  });
});
