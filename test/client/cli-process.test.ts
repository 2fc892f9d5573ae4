import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { tempDir } from './helpers.js';
import { wrapDirectMessage } from '../../client/dm.js';
import { Identity } from '../../client/identity.js';
import { RawClient } from '../helpers/raw-client.js';
import { waitFor } from '../helpers/wait.js';

const BIN = join(ROOT, 'dist/cli/main.js');

/** Runs the built `roost` binary (or a shell line using it as $ROOST) and collects its exit code and output. */
function run(args: string[], opts: { shell?: string; env?: Record<string, string> } = {}) {
  const [file, argv] = opts.shell ? ['/bin/sh', ['-c', opts.shell]] : [process.execPath, [BIN, ...args]];
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(file, argv, { env: { ...process.env, ROOST_RELAYS: '', ...opts.env, ROOST: `${process.execPath} ${BIN}` } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('the roost binary: a newcomer’s mistakes get clear answers', () => {
  let relay: TestRelay;
  const dirs: Array<{ dir: string; cleanup: () => void }> = [];
  beforeAll(async () => {
    relay = await startRelay();
  });
  afterAll(async () => {
    await relay.close();
    for (const d of dirs) d.cleanup();
  });
  const home = () => {
    const d = tempDir();
    dirs.push(d);
    return d.dir;
  };

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await run(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `roost ${version}\n` });
  });

  it('`roost agent` without a command and with an unknown option exit 2 with a clean message', async () => {
    const bare = await run(['agent']);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/^roost agent: missing command\n/);
    const unknown = await run(['agent', 'whoami', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('roost agent: unknown option --bogus\n(roost agent --help lists the options)\n');
    const missing = await run(['agent', 'whoami', '--home']);
    expect(missing.stderr).toMatch(/^roost agent: option --home needs a value\n/);
  });

  it('a missing key suggests keygen with the --home that was passed', async () => {
    const dir = join(home(), 'my agent');
    const r = await run(['agent', 'whoami', '--home', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`run \`roost agent keygen --home '${dir}'\` first`);
  });

  it('`roost admin pubkey | head -1` ends quietly (no EPIPE), every time', async () => {
    const key = join(home(), 'admin.key');
    expect((await run(['admin', 'keygen', '--out', key])).code).toBe(0);
    for (let i = 0; i < 8; i++) {
      const r = await run([], { shell: `$ROOST admin pubkey --key '${key}' | head -1` });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^[0-9a-f]{64}/);
    }
  });

  it('nostr:npub… URIs are accepted and discover does not list the caller', async () => {
    const env = { ROOST_RELAYS: relay.url };
    const [a, b] = [home(), home()];
    await run(['agent', 'keygen', '--home', a], { env });
    await run(['agent', 'keygen', '--home', b], { env });
    const bob = JSON.parse((await run(['agent', 'whoami', '--json', '--home', b], { env })).stdout) as { npub: string };
    for (const [dir, name] of [
      [a, 'alice-p'],
      [b, 'bob-p'],
    ] as const) {
      expect((await run(['agent', 'card', '--home', dir, '--name', name, '--capability', 'newcomer'], { env })).code).toBe(0);
    }
    const found = await run(['agent', 'discover', '--home', a, '--capability', 'newcomer', '--json'], { env });
    expect(found.code).toBe(0);
    const names = found.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { name: string }).name);
    expect(names).toEqual(['bob-p']);
    const sent = await run(['agent', 'send', '--home', a, `nostr:${bob.npub}`, 'hello via a NIP-21 URI'], { env });
    expect(sent.stderr).toBe('');
    expect(sent.code).toBe(0);
    const inbox = await run(['agent', 'inbox', '--home', b, '--timeout', '5'], { env });
    expect(inbox.stdout).toContain('hello via a NIP-21 URI');
  });

  it('an unreachable relay: the cause is printed and the command exits within seconds (refused, DNS, TLS against a plain port), the event stays in the outbox', async () => {
    const dir = home();
    await run(['agent', 'keygen', '--home', dir]);
    const me = (await run(['agent', 'whoami', '--home', dir])).stdout.split('\n')[0]!;
    const cases: Array<[string, RegExp]> = [
      ['ws://127.0.0.1:9', /ws:\/\/127\.0\.0\.1:9: connect ECONNREFUSED 127\.0\.0\.1:9 \(retrying; unacknowledged events stay in the outbox\)/],
      ['ws://no-such-host.invalid:7447', /getaddrinfo ENOTFOUND no-such-host\.invalid/],
      [relay.url.replace(/^ws:/, 'wss:'), /wss:\/\/127\.0\.0\.1:\d+: .*(SSL|TLS|EPROTO|wrong version)/i],
    ];
    for (const [url, cause] of cases) {
      // the default --timeout (30 s): an unreachable relay must not make the user wait it out
      const started = Date.now();
      const r = await run(['agent', 'send', '--home', dir, '--relay', url, me, 'hi']);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(cause);
      expect(r.stderr).toMatch(/no relay reachable \(.*\); the message is still in the outbox \(roost agent outbox\) \(ROOST_ERR_UNREACHABLE\)/);
    }
    const listed = await run(['agent', 'outbox', '--home', dir, '--json']);
    expect(
      listed.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { relays: string[] }).relays[0]),
    ).toEqual(cases.map(([url]) => url));
    const one = await run(['agent', 'outbox', '--home', dir, '--purge', '--relay', 'ws://127.0.0.1:9']);
    expect(one.stdout).toBe('purged 1 pending delivery\n');
    expect((await run(['agent', 'outbox', '--home', dir])).stdout.trim().split('\n')).toHaveLength(2);
    expect((await run(['agent', 'outbox', '--home', dir, '--purge'])).stdout).toBe('purged 2 pending deliveries\n');
    expect((await run(['agent', 'outbox', '--home', dir])).stdout).toBe('outbox empty\n');
  });
});

describe('roost agent tail after a rotation (the binary)', () => {
  let relay: TestRelay;
  let peer: RawClient;
  const home = tempDir();
  beforeAll(async () => {
    relay = await startRelay();
    peer = await RawClient.connect(relay.url);
  });
  afterAll(async () => {
    peer.close();
    await relay.close();
    home.cleanup();
  });

  it('follows mail to the retired key live during its grace period, and whoami lists that key with its grace end', async () => {
    const env = { ROOST_RELAYS: relay.url };
    const old = JSON.parse((await run(['agent', 'keygen', '--home', home.dir, '--json'], { env })).stdout) as { pubkey: string };
    expect((await run(['agent', 'identity', '--home', home.dir], { env })).code).toBe(0);
    const rotated = JSON.parse((await run(['agent', 'rotate', '--home', home.dir, '--json'], { env })).stdout) as { pubkey: string; aid: string };
    expect(rotated.pubkey).not.toBe(old.pubkey);

    const who = JSON.parse((await run(['agent', 'whoami', '--home', home.dir, '--json'], { env })).stdout);
    expect(who).toMatchObject({ aid: rotated.aid, pubkey: rotated.pubkey, seq: 1, nextKeyDigest: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(who.retired).toEqual([{ pubkey: old.pubkey, end: 'rotated', until: expect.any(Number), read: true }]);

    const child = spawn(process.execPath, [BIN, 'agent', 'tail', '--home', home.dir, '--limit', '2', '--json'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(() => stderr.includes('tailing '), 'the tail subscribed', 15_000);
      const sender = Identity.generate();
      // One peer still writes to the retired key (it has not seen the rotation), one to the current key.
      expect((await peer.publish(wrapDirectMessage(sender, old.pubkey, 'to the retired key').wrap))[2]).toBe(true);
      expect((await peer.publish(wrapDirectMessage(sender, rotated.pubkey, 'to the current key').wrap))[2]).toBe(true);
      // Both printed: the tail exits by itself (--limit 2); without the retired key it waits for ever.
      await waitFor(() => stdout.trim().split('\n').length >= 2, 'the tail printed both messages', 15_000).catch(() => undefined);
      expect(stdout).toContain('to the retired key');
      expect(await exited).toBe(0);
      const got = stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; content: string });
      expect(got.map((m) => [m.type, m.content]).sort()).toEqual([
        ['dm', 'to the current key'],
        ['dm', 'to the retired key'],
      ]);
    } finally {
      child.kill();
    }
  });
});
