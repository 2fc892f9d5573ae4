import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAgentCli } from '../../cli/agent.js';
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

/** Runs `roost agent …` in-process and captures its output. */
export async function runCli(args: string[], env: Record<string, string> = {}, interrupted?: Promise<void>) {
  let stdout = '';
  let stderr = '';
  const code = await runAgentCli(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env,
    interrupted,
  });
  return {
    code,
    stdout,
    stderr,
    json: () =>
      stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
  };
}
