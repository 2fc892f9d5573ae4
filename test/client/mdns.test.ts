import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.js';

// Local discovery over mDNS, only ever inside a network namespace this test creates: `unshare -n`
// gives the scenario a loopback of its own (multicast on, 224.0.0.0/4 routed to it), so no packet
// reaches the machine's real interfaces. Needs root (CI runs as root); skipped otherwise.
const why = (() => {
  if (process.getuid?.() !== 0) return 'needs root to create a network namespace (unshare -n)';
  try {
    execFileSync('unshare', ['-n', 'true'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'unshare -n is not permitted here';
  }
})();

describe.skipIf(why !== undefined)(`local discovery over mDNS, in a network namespace${why ? ` (skipped: ${why})` : ''}`, () => {
  it('an agent finds the local relay and a local agent; spoofed relay answers are rejected; a DM prefers the LAN relay', () => {
    const script = join(ROOT, 'test/client/fixtures/mdns-scenario.mjs');
    const run = spawnSync(
      'unshare',
      ['-n', 'sh', '-c', `ip link set lo up multicast on && ip route add 224.0.0.0/4 dev lo && exec "${process.execPath}" "${script}"`],
      { cwd: ROOT, encoding: 'utf8', timeout: 50_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    const r = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
      error?: string;
      lan: { url: string; pubkey: string };
      wide: string;
      bob: string;
      relays: Array<{ url: string; pubkey: string; address: string }>;
      agents: Array<{ pubkey: string; relay?: string }>;
      rejected: Array<{ name: string; reason: string }>;
      relaysForBob: string[];
      sentVia: string[];
      delivered: boolean;
    };
    expect(r.error, r.error).toBeUndefined();
    // Only the real relay is used: found over mDNS and verified through its NIP-11.
    expect(r.relays).toEqual([{ url: r.lan.url, pubkey: r.lan.pubkey, address: '127.0.0.1' }]);
    expect(r.agents).toContainEqual({ pubkey: r.bob, relay: r.lan.url });
    const reasonOf = (name: string) => r.rejected.find((x) => x.name === name)?.reason;
    expect(reasonOf('spoof-other-address')).toMatch(/^invalid: .* is not at the address that answered/);
    expect(reasonOf('spoof-copied-key')).toMatch(/^invalid: advertisement not signed by the key it names/);
    expect(reasonOf('spoof-claims-pubkey')).toMatch(/^invalid: NIP-11 at .* names another pubkey/);
    expect(reasonOf('spoof-replay')).toMatch(/^invalid: .* is not the advertised port 7449/);
    expect(reasonOf('spoof-huge-info')).toMatch(/^invalid: no NIP-11 document at ws:\/\/127.0.0.1:7450/);
    expect(reasonOf('spoof-garbage')).toMatch(/^invalid: TXT record is not a relay advertisement/);
    // Bob advertised the LAN relay: Alice's DM to him went through it, not through the other relay.
    expect(r.relaysForBob).toEqual([r.lan.url]);
    expect(r.sentVia).toEqual([r.lan.url]);
    expect(r.delivered).toBe(true);
  }, 60_000);
});
