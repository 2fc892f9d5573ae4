import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../client/agent.js';
import { openKeyRing, revokeKeyRing, rotateKeyRing } from '../../client/node/key-ring.js';
import type { KeyLog } from '../../shared/identity-log.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { startRecordingAgent, tempDir } from './helpers.js';

let relay: TestRelay;
let reader: Agent;
const dirs: Array<{ cleanup: () => void }> = [];
beforeAll(async () => {
  relay = await startRelay();
  const home = tempDir();
  dirs.push(home);
  reader = (await startRecordingAgent(home.dir, [relay.url], { inbox: false })).agent;
  await reader.whenConnected(5000, 1);
});
afterAll(async () => {
  await reader.close();
  await relay.close();
  for (const d of dirs) d.cleanup();
});

describe('agent.fetchKeyLog', () => {
  it('finds a peer’s log from any of its keys and verifies it: rotations and a revocation are followed', async () => {
    const peer = tempDir();
    dirs.push(peer);
    let t = Math.floor(Date.now() / 1000) - 600;
    const now = () => t;
    const r0 = openKeyRing(peer.dir, { now });
    t += 60;
    rotateKeyRing(peer.dir, { now });
    t += 60;
    const { ring } = revokeKeyRing(peer.dir, { now });
    const c = await RawClient.connect(relay.url);
    for (const ev of ring.events) expect((await c.publish(ev))[2]).toBe(true);
    c.close();

    const byOldKey = (await reader.fetchKeyLog({ pubkey: r0.current.pubkey })) as KeyLog;
    expect(byOldKey).toMatchObject({ aid: r0.aid, status: 'active', current: ring.current.pubkey });
    expect(byOldKey.keys.map((k) => k.end)).toEqual(['rotated', 'revoked', undefined]);
    const byAid = (await reader.fetchKeyLog({ aid: r0.aid })) as KeyLog;
    expect(byAid.chain.map((e) => e.id)).toEqual(ring.events.map((e) => e.id));
    const byNewKey = (await reader.fetchKeyLog({ pubkey: ring.current.pubkey })) as KeyLog;
    expect(byNewKey.aid).toBe(r0.aid);
    expect(await reader.fetchKeyLog({ pubkey: 'a'.repeat(64) })).toBe(`no key event by ${'a'.repeat(64)} on the connected relays`);
  });
});
