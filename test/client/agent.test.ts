import { afterEach, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { dmTexts, startRecordingAgent, tempDir } from './helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(): Promise<TestRelay> {
  const r = await startRelay();
  cleanups.push(() => r.close());
  return r;
}

function home(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

describe('two agents over one relay', () => {
  it('exchanges direct messages and answers requests', async () => {
    const r = await relay();
    const alice = await startRecordingAgent(home(), [r.url]);
    const bob = await startRecordingAgent(home(), [r.url]);
    cleanups.push(() => alice.agent.close(), () => bob.agent.close());
    bob.agent.onRequest((req) => `echo:${req.content}`);
    await alice.agent.whenConnected();
    await bob.agent.whenConnected();

    await alice.agent.send(bob.agent.npub, 'hello bob');
    await waitFor(() => dmTexts(bob.got).length === 1, 'bob gets the DM');
    const m = bob.got[0]!;
    expect(m.type === 'dm' && m.from).toBe(alice.agent.pubkey);

    const res = await alice.agent.request(bob.agent.pubkey, 'ping', { timeoutMs: 5000 });
    expect(res.content).toBe('echo:ping');
    expect(res.from).toBe(bob.agent.pubkey);
    expect(dmTexts(alice.got)).toEqual([]);
  });
});
