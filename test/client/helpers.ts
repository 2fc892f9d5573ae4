import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeAgent, type Agent, type InboxMessage, type NodeAgentOptions } from '../../client/node/index.js';

/** A temp folder removed by `cleanup`. */
export function tempDir(prefix = 'roost-agent-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Fast link tunables for tests on loopback. */
export const FAST_LINK = { reconnectBaseMs: 50, reconnectMaxMs: 400, authWaitMs: 300, okTimeoutMs: 3000 } as const;

/** A started Node agent in `home` that records everything its inbox hands it. */
export async function startRecordingAgent(
  home: string,
  relays: string[],
  opts: Partial<NodeAgentOptions> = {},
): Promise<{ agent: Agent; got: InboxMessage[] }> {
  const got: InboxMessage[] = [];
  const agent = createNodeAgent({ home, relays, heartbeatSeconds: 0, link: FAST_LINK, outbox: { retryBaseMs: 50, retryMaxMs: 500 }, ...opts });
  agent.onMessage((m) => {
    got.push(m);
  });
  await agent.start();
  return { agent, got };
}

/** Contents of the direct messages among `got`, in the order handed over. */
export function dmTexts(got: readonly InboxMessage[]): string[] {
  return got.flatMap((m) => (m.type === 'dm' ? [m.content] : []));
}
