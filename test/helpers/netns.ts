import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private network namespace for browser tests: Chromium gathers no ICE candidates on a
 * loopback-only machine, so it runs inside a namespace joined to this one by two veth pairs
 * (addresses we create in 10.200.0.0/16, traffic never leaves the machine):
 * - S, for the relay (signalling and the fallback path);
 * - D, for the direct WebRTC path, which a test can cut without touching S.
 * A third veth pair, both ends inside the namespace, carries its default route into nowhere:
 * Chromium enumerates interfaces only when a default route exists, and packets sent along it
 * are dropped inside the namespace.
 */
export interface TestNetns {
  name: string;
  /** Our end of S (the relay listens here) and the namespace's end. */
  hostS: string;
  nsS: string;
  /** Our end of D (the Node agent binds ICE here) and the namespace's end. */
  hostD: string;
  nsD: string;
  /** An executable that runs Chromium inside the namespace. */
  chromium: string;
  /** Cuts the direct path (both ends of D go down): silent, nothing is closed. */
  cutDirect(): void;
  /** Deletes the namespace, its links and the wrapper; safe to call twice. */
  close(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

function usedAddresses(): string {
  return execFileSync('ip', ['-o', '-4', 'addr'], { encoding: 'utf8', timeout: 10_000 });
}

/** Creates the namespace and links; throws (after undoing what it made) when `ip netns` is not permitted. */
export function createTestNetns(chromiumPath: string): TestNetns {
  const sfx = randomBytes(3).toString('hex').slice(0, 5);
  const name = `roost-${sfx}`;
  const used = usedAddresses();
  let n = 0;
  for (let i = 0; i < 20 && n === 0; i++) {
    const c = 16 + 2 * Math.floor(Math.random() * 110);
    if (!used.includes(`10.200.${c}.`) && !used.includes(`10.200.${c + 1}.`)) n = c;
  }
  if (n === 0) throw new Error('no free 10.200.x.0/24 pair');
  const [s, d] = [`10.200.${n}`, `10.200.${n + 1}`];
  const links = { sh: `rs${sfx}h`, sn: `rs${sfx}n`, dh: `rd${sfx}h`, dn: `rd${sfx}n`, ka: `rk${sfx}a`, kb: `rk${sfx}b` };
  const dir = mkdtempSync(join(tmpdir(), 'roost-netns-'));
  const chromium = join(dir, 'chromium-in-netns.sh');
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    // Deleting the namespace destroys the veth ends inside it, and with them their peers here.
    for (const args of [
      ['netns', 'del', name],
      ['link', 'del', links.sh],
      ['link', 'del', links.dh],
    ]) {
      try {
        ip(...args);
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
    process.removeListener('exit', close);
  };
  process.on('exit', close);
  try {
    ip('netns', 'add', name);
    ip('-n', name, 'link', 'set', 'lo', 'up');
    for (const [h, ns, net] of [
      [links.sh, links.sn, s],
      [links.dh, links.dn, d],
    ] as const) {
      ip('link', 'add', h, 'type', 'veth', 'peer', 'name', ns);
      ip('link', 'set', ns, 'netns', name);
      ip('addr', 'add', `${net}.1/24`, 'dev', h);
      ip('link', 'set', h, 'up');
      ip('-n', name, 'addr', 'add', `${net}.2/24`, 'dev', ns);
      ip('-n', name, 'link', 'set', ns, 'up');
    }
    ip('link', 'add', links.ka, 'type', 'veth', 'peer', 'name', links.kb);
    ip('link', 'set', links.ka, 'netns', name);
    ip('link', 'set', links.kb, 'netns', name);
    ip('-n', name, 'link', 'set', links.ka, 'up');
    ip('-n', name, 'link', 'set', links.kb, 'up');
    ip('-n', name, 'route', 'add', 'default', 'dev', links.ka);
    writeFileSync(chromium, `#!/bin/sh\nexec ip netns exec ${name} ${chromiumPath} "$@"\n`);
    chmodSync(chromium, 0o755);
  } catch (err) {
    close();
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`cannot set up a network namespace: ${stderr || (err as Error).message}`);
  }
  return {
    name,
    hostS: `${s}.1`,
    nsS: `${s}.2`,
    hostD: `${d}.1`,
    nsD: `${d}.2`,
    chromium,
    cutDirect() {
      ip('link', 'set', links.dh, 'down');
      ip('-n', name, 'link', 'set', links.dn, 'down');
    },
    close,
  };
}
