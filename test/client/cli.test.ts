import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { runCli as cli, tempDir } from './helpers.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('roost agent', () => {
  let relay: TestRelay;

  it('keygen, whoami, send, inbox (resuming from the cursor), discover, with --json and readable output', async () => {
    relay = await startRelay();
    cleanups.push(() => relay.close());
    const a = tempDir();
    const b = tempDir();
    cleanups.push(a.cleanup, b.cleanup);
    const env = { ROOST_RELAYS: relay.url };
    const asA = (...args: string[]) => cli(['--home', a.dir, ...args], env);
    const asB = (...args: string[]) => cli(['--home', b.dir, ...args], env);

    expect((await cli(['--help'])).stdout).toContain('roost agent keygen');
    const made = await asA('keygen', '--json');
    expect(made.code).toBe(0);
    const alice = made.json()[0];
    expect(alice.npub).toMatch(/^npub1/);
    expect(statSync(join(a.dir, 'agent.key')).mode & 0o777).toBe(0o600);
    expect((await asA('keygen')).code).toBe(2);
    await asB('keygen');
    const bob = (await asB('whoami', '--json')).json()[0];
    expect(bob.relays).toEqual([relay.url]);
    expect((await asB('whoami')).stdout).toContain(bob.npub);

    const sent = await asA('send', bob.npub, 'hello', 'from', 'the', 'cli', '--json');
    expect(sent.code).toBe(0);
    expect(sent.json()[0].relays[0].accepted).toBe(true);
    await asA('send', bob.pubkey, 'second');

    const first = await asB('inbox', '--json', '--limit', '1');
    expect(first.code).toBe(0);
    expect(first.json().map((m: { content: string }) => m.content)).toEqual(['hello from the cli']);
    expect(first.json()[0].from).toBe(alice.pubkey);
    const rest = await asB('inbox');
    expect(rest.code).toBe(0);
    expect(rest.stdout).toMatch(/dm from npub1.*: second\n$/);
    const none = await asB('inbox', '--json');
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('');

    // Four quick versions (within a second or two): the last one is the one stored (issue 17).
    for (const v of ['a', 'b', 'c']) expect((await asA('card', '--name', `alice-${v}`, '--capability', 'echo', '--version', '2')).code).toBe(0);
    expect((await asA('card', '--name', 'alice-cli', '--capability', 'echo', '--version', '2')).code).toBe(0);
    const found = await asB('discover', '--capability', 'echo', '--json');
    expect(found.json().map((x: { name: string }) => x.name)).toEqual(['alice-cli']);
    expect((await asB('discover', '--capability', 'echo')).stdout).toMatch(/alice-cli .*\[echo\] {2}v2/);
  });

  it('tail streams live messages; errors are coded and usage errors exit 2', async () => {
    relay = await startRelay();
    cleanups.push(() => relay.close());
    const a = tempDir();
    const b = tempDir();
    cleanups.push(a.cleanup, b.cleanup);
    const env = { ROOST_RELAYS: relay.url };
    await cli(['--home', a.dir, 'keygen'], env);
    const bob = (await cli(['--home', b.dir, 'keygen', '--json'], env)).json()[0];

    let finished = false;
    const tailing = cli(['--home', b.dir, 'tail', '--limit', '1', '--json'], env).finally(() => (finished = true));
    // The tail only sees what arrives after it subscribed: keep sending until it has printed one.
    await waitFor(async () => {
      await cli(['--home', a.dir, 'send', bob.npub, 'live one'], env);
      return finished;
    }, 'tail printed a message');
    const t = await tailing;
    expect(t.code).toBe(0);
    expect(t.json()[0]).toMatchObject({ type: 'dm', content: 'live one' });
    // The documented ready signal, on stderr even with --json.
    expect(t.stderr).toMatch(/^tailing ws:\/\/127\.0\.0\.1:\d+ \(Ctrl-C to stop\)$/m);

    expect((await cli(['--home', a.dir, 'send', 'npub1nope', 'x'], env)).code).toBe(1);
    expect((await cli(['--home', a.dir, 'send'], env)).code).toBe(2);
    expect((await cli(['--home', a.dir, 'bogus'], env)).code).toBe(2);
    expect((await cli(['--home', a.dir, 'send', bob.npub, 'x'], {})).stderr).toContain('no relay');
    const noKey = tempDir();
    cleanups.push(noKey.cleanup);
    // Without arguments, usage comes before the key check (issue 17: it said "no key in …").
    const bare = await cli(['--home', noKey.dir, 'send'], env);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('roost agent send <to> <message...>');
    expect((await cli(['--home', noKey.dir, 'inbox'], env)).stderr).toContain('keygen');
  });
});
