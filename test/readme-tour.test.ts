import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnRelay, type RelayProcess } from './helpers/process.js';

// The README's five-minute tour, run as written against a relay process: the nostr-tools program
// and the `roost agent` commands. Only the relay address is changed (the tour uses port 7447).
const run = promisify(execFile);
const README = readFileSync('README.md', 'utf8');
const TOUR_URL = 'ws://127.0.0.1:7447';

/** The fenced block of `lang` in the tour section that contains `marker`. */
function tourBlock(lang: string, marker: string): string {
  const tour = README.slice(README.indexOf('## A five-minute tour'));
  for (const m of tour.matchAll(/```(\w*)\n([\s\S]*?)```/g)) if (m[1] === lang && m[2]!.includes(marker)) return m[2]!;
  throw new Error(`README tour has no ${lang} block with ${marker}`);
}

describe('README five-minute tour', () => {
  let relay: RelayProcess;
  const dir = mkdtempSync(join(tmpdir(), 'roost-tour-'));
  beforeAll(async () => {
    relay = await spawnRelay({ ROOST_DB: join(dir, 'roost.db') });
  });
  afterAll(async () => {
    relay.child.kill('SIGTERM');
    await relay.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  it('the nostr-tools program publishes and reads its note back', async () => {
    const program = tourBlock('js', 'tour.mjs');
    expect(program).toContain(TOUR_URL);
    // Written beside package.json so its imports resolve from this repository's node_modules.
    const file = join(process.cwd(), `.tour-${process.pid}.mjs`);
    writeFileSync(file, program.replaceAll(TOUR_URL, relay.url));
    try {
      const { stdout } = await run(process.execPath, [file], { timeout: 20_000 });
      expect(stdout.trim()).toBe('got hello, roost');
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('the agent commands deliver one encrypted message, once', async () => {
    const script = tourBlock('sh', 'roost agent send');
    expect(script).toContain(`ROOST_RELAYS=${TOUR_URL}`);
    // `roost` is dist/cli/main.js (npm link puts it on PATH); the script runs as written otherwise.
    const shim = `roost() { "${process.execPath}" "${join(process.cwd(), 'dist/cli/main.js')}" "$@"; }\n`;
    const body = script.replaceAll(TOUR_URL, relay.url);
    const { stdout, stderr } = await run('bash', ['-euc', `${shim}${body}\nroost agent inbox --home ./bob`], { cwd: dir, timeout: 60_000 });
    const received = stdout.split('\n').filter((l) => l.includes('hello bob'));
    expect(received).toHaveLength(1);
    expect(received[0]).toMatch(/dm from npub1\w+…\w+: hello bob$/);
    expect(`${stdout}${stderr}`).toContain('no new messages');
    expect(stdout).toMatch(/^sent [0-9a-f]{12}… to npub1/m);
  });
});
