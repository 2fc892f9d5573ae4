import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKey, signEvent } from '../helpers/events.js';
import { authenticate } from '../helpers/mailbox.js';
import { spawnRelay, type RelayProcess } from '../helpers/process.js';
import { RawClient } from '../helpers/raw-client.js';

// Issue 14.4: strangers with throwaway keys fill an agent's mailbox; a contact's DM must still get through.
const QUOTA = 20;
const dir = mkdtempSync(join(tmpdir(), 'roost-flood-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a crowd of fresh keys cannot lock a contact out of a mailbox', () => {
  let relay: RelayProcess;
  beforeAll(async () => {
    relay = await spawnRelay({ ROOST_DB: join(dir, 'flood.db'), ROOST_MAILBOX_QUOTA: String(QUOTA) });
  });
  afterAll(async () => {
    relay.child.kill('SIGTERM');
    await relay.exited;
  });

  it("a full mailbox refuses strangers but takes the agent's contacts, up to a reserve of its own", async () => {
    const agent = makeKey();
    const friend = makeKey();
    const c = await RawClient.connect(relay.url);
    // The agent's contact list names its friend.
    const contacts = signEvent(agent, { kind: 3, tags: [['p', friend.pk]], content: '' });
    expect((await c.publish(contacts))[2]).toBe(true);

    // Ten throwaway keys, two events each, fill half the mailbox; past half, fresh keys are refused.
    let accepted = 0;
    for (let k = 0; k < 10; k++) {
      const stranger = makeKey();
      for (let i = 0; i < QUOTA / 10; i++)
        if ((await c.publish(signEvent(stranger, { kind: 4, tags: [['p', agent.pk]], content: `spam ${i}` })))[2]) accepted++;
    }
    expect(accepted).toBe(QUOTA / 2);
    const late = await c.publish(signEvent(makeKey(), { kind: 4, tags: [['p', agent.pk]], content: 'one more' }));
    expect(late[2]).toBe(false);
    expect(late[3]).toMatch(/^rate-limited: mailbox .* is half full and takes no more mail from keys new to this relay$/);

    // The friend still gets through, up to a reserve as large as the quota; more fresh keys change nothing.
    let friendAccepted = 0;
    for (let i = 0; i < 2 * QUOTA; i++) {
      if ((await c.publish(signEvent(makeKey(), { kind: 4, tags: [['p', agent.pk]], content: `crowd ${i}` })))[2]) accepted++;
      const r = await c.publish(signEvent(friend, { kind: 4, tags: [['p', agent.pk]], content: `hello ${i}` }));
      if (r[2]) friendAccepted++;
      else expect(r[3]).toMatch(/^rate-limited: mailbox .* is full/);
    }
    expect(accepted).toBe(QUOTA / 2);
    expect(friendAccepted).toBe(2 * QUOTA - QUOTA / 2);
    c.close();

    // The agent is told, when it authenticates, how much mail was refused: 10 + 1 + 40 fresh keys, 10 over the reserve.
    const a = await RawClient.connect(relay.url);
    await authenticate(a, agent, relay.url);
    const notice = await a.next((f) => f[0] === 'NOTICE', 'refusal notice');
    expect(notice[1]).toMatch(/^mailbox: 61 events addressed to you were refused since \S+: your mailbox was full/);
    a.close();
    // Told once.
    const b = await RawClient.connect(relay.url);
    await authenticate(b, agent, relay.url);
    await new Promise((r) => setTimeout(r, 200));
    expect(b.of('NOTICE')).toEqual([]);
    b.close();
  });
});

describe('one stranger cannot take the mailbox from other strangers, and refusals survive a restart', () => {
  it('a stranger holds at most half the mailbox, then its share; another established stranger still gets in, a fresh key not; the count outlives a restart', async () => {
    // Keys count as established one second after their first stored event (a day by default).
    const env = { ROOST_DB: join(dir, 'share.db'), ROOST_MAILBOX_QUOTA: String(QUOTA), ROOST_MAILBOX_FRESH_SECONDS: '1' };
    let relay = await spawnRelay(env);
    const agent = makeKey();
    const spammer = makeKey();
    const other = makeKey();
    const c = await RawClient.connect(relay.url);
    for (const k of [spammer, other]) expect((await c.publish(signEvent(k, { content: 'hello, relay' })))[2]).toBe(true);
    // Marks are written every second; two of them later, both keys are older than a second here.
    await new Promise((r) => setTimeout(r, 3500));
    let spam = 0;
    let refusedShare = 0;
    for (let i = 0; i < QUOTA; i++) {
      const r = await c.publish(signEvent(spammer, { kind: 4, tags: [['p', agent.pk]], content: `spam ${i}` }));
      if (r[2]) spam++;
      else {
        expect(r[3]).toMatch(/^rate-limited: mailbox .* holds this sender's share/);
        refusedShare++;
      }
    }
    // Half the strangers' part (10 of 20), never the whole mailbox (main accepted all 20).
    expect(spam).toBe(QUOTA / 2);
    expect(refusedShare).toBe(QUOTA / 2);
    // Another established stranger gets its share (2) in; a fresh key does not.
    const oks = [];
    for (let i = 0; i < 3; i++) oks.push((await c.publish(signEvent(other, { kind: 4, tags: [['p', agent.pk]], content: `hi ${i}` })))[2]);
    expect(oks).toEqual([true, true, false]);
    const fresh = await c.publish(signEvent(makeKey(), { kind: 4, tags: [['p', agent.pk]], content: 'new here' }));
    expect(fresh[3]).toMatch(/^rate-limited: mailbox .* is half full and takes no more mail from keys new to this relay$/);
    c.close();

    // A restart (SIGTERM: the flush on close; the periodic flush covers a crash) keeps the refusal count.
    relay.child.kill('SIGTERM');
    await relay.exited;
    relay = await spawnRelay(env);
    const a = await RawClient.connect(relay.url);
    await authenticate(a, agent, relay.url);
    const notice = await a.next((f) => f[0] === 'NOTICE', 'refusal notice after restart');
    expect(notice[1]).toMatch(/^mailbox: 12 events addressed to you were refused since /);
    a.close();
    relay.child.kill('SIGTERM');
    await relay.exited;
  });
});
