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

    // Five throwaway keys fill the mailbox; a sixth is refused.
    let accepted = 0;
    for (let k = 0; k < 5; k++) {
      const stranger = makeKey();
      for (let i = 0; i < QUOTA / 5; i++) if ((await c.publish(signEvent(stranger, { kind: 4, tags: [['p', agent.pk]], content: `spam ${i}` })))[2]) accepted++;
    }
    expect(accepted).toBe(QUOTA);
    const late = await c.publish(signEvent(makeKey(), { kind: 4, tags: [['p', agent.pk]], content: 'one more' }));
    expect(late[2]).toBe(false);
    expect(late[3]).toMatch(/^rate-limited: mailbox .* is full/);

    // The friend still gets through, up to a reserve as large as the quota; more fresh keys change nothing.
    let friendAccepted = 0;
    for (let i = 0; i < QUOTA + 5; i++) {
      if ((await c.publish(signEvent(makeKey(), { kind: 4, tags: [['p', agent.pk]], content: `crowd ${i}` })))[2]) accepted++;
      const r = await c.publish(signEvent(friend, { kind: 4, tags: [['p', agent.pk]], content: `hello ${i}` }));
      if (r[2]) friendAccepted++;
      else expect(r[3]).toMatch(/^rate-limited: mailbox .* is full/);
    }
    expect(accepted).toBe(QUOTA);
    expect(friendAccepted).toBe(QUOTA);
    c.close();

    // The agent is told, when it authenticates, how much mail was refused: 1 + 25 strangers, 5 over the reserve.
    const a = await RawClient.connect(relay.url);
    await authenticate(a, agent, relay.url);
    const notice = await a.next((f) => f[0] === 'NOTICE', 'refusal notice');
    expect(notice[1]).toMatch(/^mailbox: 31 events addressed to you were refused since \S+: your mailbox was full$/);
    a.close();
    // Told once.
    const b = await RawClient.connect(relay.url);
    await authenticate(b, agent, relay.url);
    await new Promise((r) => setTimeout(r, 200));
    expect(b.of('NOTICE')).toEqual([]);
    b.close();
  });
});
