import { join } from 'node:path';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { Identity } from '../../client/node/index.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { spawnScript } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';
import { buildNodeFixture } from './fixtures/build.js';
import { dmTexts, startRecordingAgent, tempDir } from './helpers.js';

let childScript: string;
beforeAll(async () => {
  childScript = await buildNodeFixture(join(process.cwd(), 'test/client/fixtures/agent-child.ts'), 'agent-child');
});

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function runChild(env: Record<string, string>) {
  const proc = spawnScript(childScript, env);
  cleanups.push(() => proc.child.kill('SIGKILL'));
  return proc;
}

it('an agent killed with unacknowledged events in its outbox delivers them after restart, once and in order', async () => {
  const relayDir = tempDir();
  const senderHome = tempDir();
  const bobHome = tempDir();
  cleanups.push(relayDir.cleanup, senderHome.cleanup, bobHome.cleanup);
  let relay: TestRelay = await startRelay({ db: join(relayDir.dir, 'roost.db') }, {}, relayDir.dir);
  const port = relay.port;
  const url = relay.url;
  // The relay goes down: nothing the child sends can be acknowledged.
  await relay.close({ keep: true });

  const bob = Identity.generate();
  const texts = Array.from({ length: 5 }, (_, i) => `crash-${i}`);
  const env = { AGENT_HOME: senderHome.dir, RELAYS: url, TO: bob.pubkey };
  const first = runChild({ ...env, MODE: 'send', MESSAGES: texts.join('|') });
  await waitFor(() => first.output().includes(`queued ${texts.length}`), 'child queued its messages', 15_000);
  first.child.kill('SIGKILL');
  expect(await first.exited).toBe(null);

  relay = await startRelay({ port, db: join(relayDir.dir, 'roost.db') }, {}, relayDir.dir);
  cleanups.push(() => relay.close());
  const second = runChild({ ...env, MODE: 'drain' });
  await waitFor(() => second.output().includes('drained'), 'restarted child drained its outbox', 15_000);
  expect(second.output()).toContain(`restored ${texts.length}`);
  expect(await second.exited).toBe(0);

  const receiver = await startRecordingAgent(bobHome.dir, [url], { identity: bob });
  cleanups.push(() => receiver.agent.close());
  await waitFor(() => dmTexts(receiver.got).length >= texts.length, 'bob receives everything');
  await receiver.agent.inboxIdle();
  expect(dmTexts(receiver.got)).toEqual(texts);
});
