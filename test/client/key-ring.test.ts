import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadKeyFile } from '../../client/node/key-file.js';
import { openKeyRing, revokeKeyRing, rotateKeyRing } from '../../client/node/key-ring.js';
import { DEFAULT_GRACE_SECONDS, getNextKeyDigest, isKeyValidAt, verifyKeyLog } from '../../shared/identity-log.js';

const homes: string[] = [];
afterEach(() => {
  for (const h of homes.splice(0)) rmSync(h, { recursive: true, force: true });
});
function home(): string {
  const h = mkdtempSync(join(tmpdir(), 'roost-keyring-'));
  homes.push(h);
  return h;
}

let t = 1_700_000_000;
const now = () => t;

describe('key ring on disk', () => {
  it('creates the current key, the next key in its own file and the inception; reopening changes nothing', () => {
    const h = home();
    const ring = openKeyRing(h, { now });
    expect(ring.log).toMatchObject({ status: 'active', current: ring.current.pubkey });
    expect(ring.aid).toBe(ring.events[0]?.id);
    expect(ring.log.head.next).toBe(getNextKeyDigest(ring.next.pubkey));
    for (const f of ['agent.key', 'agent.next.key', 'agent.kel.jsonl']) expect(statSync(join(h, f)).mode & 0o077).toBe(0);
    expect(readFileSync(join(h, 'agent.kel.jsonl'), 'utf8')).not.toContain(ring.next.pubkey);
    const again = openKeyRing(h, { now });
    expect([again.aid, again.current.pubkey, again.next.pubkey, again.events.length]).toEqual([ring.aid, ring.current.pubkey, ring.next.pubkey, 1]);
  });

  it('rotates and revokes: the next key becomes current, old keys are retired, the log verifies', () => {
    const h = home();
    const r0 = openKeyRing(h, { now });
    t += 100;
    const { ring: r1, event: rot } = rotateKeyRing(h, { now });
    expect(r1.current.pubkey).toBe(r0.next.pubkey);
    expect(rot.pubkey).toBe(r0.next.pubkey);
    expect(loadKeyFile(join(h, 'retired', `${r0.current.pubkey}.key`)).pubkey).toBe(r0.current.pubkey);
    t += 100;
    const { ring: r2 } = revokeKeyRing(h, { now, reason: 'key leaked' });
    expect(r2.current.pubkey).toBe(r1.next.pubkey);
    expect(r2.aid).toBe(r0.aid);
    const log = verifyKeyLog(r0.aid, r2.events.slice().reverse());
    if (typeof log === 'string') throw new Error(log);
    expect(log.keys.map((k) => k.end)).toEqual(['rotated', 'revoked', undefined]);
    expect(isKeyValidAt(log, r0.current.pubkey, t - 200 + DEFAULT_GRACE_SECONDS - 100)).toBe(true);
    expect(isKeyValidAt(log, r1.current.pubkey, t)).toBe(false);
    expect(existsSync(join(h, 'agent.after.key'))).toBe(false);
  });

  it('finishes a rotation interrupted after the log append (before or between the renames)', () => {
    const h = home();
    const r0 = openKeyRing(h, { now });
    t += 10;
    const { ring: r1 } = rotateKeyRing(h, { now });
    // put the files back as they were right after the append: key = k0, next = k1, after = k2
    renameSync(join(h, 'agent.next.key'), join(h, 'agent.after.key'));
    renameSync(join(h, 'agent.key'), join(h, 'agent.next.key'));
    copyFileSync(join(h, 'retired', `${r0.current.pubkey}.key`), join(h, 'agent.key'));
    const healed = openKeyRing(h, { now });
    expect([healed.current.pubkey, healed.next.pubkey]).toEqual([r1.current.pubkey, r1.next.pubkey]);
    // between the renames: key = k1, next missing, after = k2
    renameSync(join(h, 'agent.next.key'), join(h, 'agent.after.key'));
    expect(openKeyRing(h, { now }).next.pubkey).toBe(r1.next.pubkey);
  });

  it('refuses key files that disagree with the log (ROOST_ERR_KEY_FILE)', () => {
    const h = home();
    openKeyRing(h, { now });
    rmSync(join(h, 'agent.next.key'));
    expect(() => openKeyRing(h, { now })).toThrow(
      expect.objectContaining({ code: 'ROOST_ERR_KEY_FILE', message: expect.stringMatching(/agent\.next\.key is missing/) }),
    );
    const h2 = home();
    openKeyRing(h2, { now });
    copyFileSync(join(h2, 'agent.key'), join(h2, 'swap'));
    rmSync(join(h2, 'agent.key'));
    copyFileSync(join(h2, 'agent.next.key'), join(h2, 'agent.key'));
    rmSync(join(h2, 'agent.next.key'));
    copyFileSync(join(h2, 'swap'), join(h2, 'agent.next.key'));
    const swapped = [readFileSync(join(h2, 'agent.key'), 'utf8'), readFileSync(join(h2, 'agent.next.key'), 'utf8')];
    expect(() => openKeyRing(h2, { now })).toThrow(
      expect.objectContaining({ code: 'ROOST_ERR_KEY_FILE', message: expect.stringMatching(/^agent\.key holds/) }),
    );
    expect([readFileSync(join(h2, 'agent.key'), 'utf8'), readFileSync(join(h2, 'agent.next.key'), 'utf8')]).toEqual(swapped);
    expect(existsSync(join(h2, 'retired'))).toBe(false);
  });
});
