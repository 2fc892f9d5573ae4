import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wrapDirectMessage } from '../../client/dm.js';
import { Identity } from '../../client/identity.js';
import type { NostrEvent } from '../../shared/event.js';
import { getNextKeyDigest, IdentityKind, verifyKeyLog } from '../../shared/identity-log.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { openKeyRing, readRotationInterval, saveRotationInterval } from '../../client/node/key-ring.js';
import { runCli as cli, startRecordingAgent, tempDir } from './helpers.js';

let relay: TestRelay;
let reader: RawClient;
beforeAll(async () => {
  relay = await startRelay();
  reader = await RawClient.connect(relay.url);
});
afterAll(async () => {
  reader.close();
  await relay.close();
});

async function relayLog(aid: string, sub: string) {
  const got = (await reader.req(sub, { ids: [aid] }, { kinds: [IdentityKind.Rotation, IdentityKind.Revocation], '#e': [aid] })) as unknown as NostrEvent[];
  const log = verifyKeyLog(aid, got);
  if (typeof log === 'string') throw new Error(log);
  return log;
}

describe('roost agent identity / rotate / revoke', () => {
  it('publishes the log, rotates to the pre-committed key, revokes, and the relay serves a log that verifies', async () => {
    const a = tempDir();
    try {
      const as = (...args: string[]) => cli(['--home', a.dir, '--json', ...args], { ROOST_RELAYS: relay.url });
      expect((await as('rotate')).code).toBe(2); // no key yet: a usage mistake
      const first = (await as('keygen')).json()[0];
      const made = await as('identity');
      expect(made.code).toBe(0);
      const id = made.json()[0];
      expect(id).toMatchObject({ pubkey: first.pubkey, seq: 0 });
      expect(id.published[0].relays[0]).toMatchObject({ accepted: true });
      expect(await relayLog(id.aid, 's0')).toMatchObject({ status: 'active', current: first.pubkey });

      const backup = (await as('identity', '--print-next')).json()[0];
      expect(backup.nextNsec).toMatch(/^nsec1/);
      const printedPk = Identity.fromSecretKey(backup.nextNsec as string).pubkey;
      expect(getNextKeyDigest(printedPk)).toBe((await relayLog(id.aid, 'sb')).head.next);
      expect(made.stdout).not.toContain('nsec1');

      const clobber = await cli(['--home', a.dir, 'keygen', '--force']);
      expect([clobber.code, clobber.stderr]).toEqual([2, expect.stringMatching(/has a key event log: replace the key with `roost agent rotate`/)]);

      const rotated = await as('rotate');
      expect(rotated.code).toBe(0);
      const r = rotated.json()[0];
      expect(r).toMatchObject({ aid: id.aid, seq: 1 });
      expect(r.pubkey).toBe(printedPk);
      expect((await as('whoami')).json()[0].pubkey).toBe(r.pubkey);
      expect(existsSync(join(a.dir, 'retired', `${first.pubkey}.key`))).toBe(true);
      const afterRotate = await relayLog(id.aid, 's1');
      expect(afterRotate).toMatchObject({ status: 'active', current: r.pubkey });
      expect(afterRotate.chain[0]?.next).toBe(getNextKeyDigest(r.pubkey));

      // Mail a peer sent to the old key is read by `inbox` after the rotation (the grace period).
      const peer = Identity.generate();
      const { wrap } = wrapDirectMessage(peer, first.pubkey, 'to the old key');
      expect((await reader.publish(wrap))[2]).toBe(true);
      const inbox = await as('inbox', '--limit', '1', '--timeout', '10');
      expect([inbox.code, inbox.json().map((m: { content: string; to?: string }) => m.content)]).toEqual([0, ['to the old key']]);

      const revoked = await as('revoke', '--reason', 'laptop lost');
      expect(revoked.code).toBe(0);
      const v = revoked.json()[0];
      const afterRevoke = await relayLog(id.aid, 's2');
      expect(afterRevoke).toMatchObject({ status: 'active', current: v.pubkey });
      expect(afterRevoke.keys.map((k) => k.end)).toEqual(['rotated', 'revoked', undefined]);
    } finally {
      a.cleanup();
    }
  });
});

describe('roost agent rotate --every', () => {
  it('keeps a validated interval in the home, rotates now only when due, and createNodeAgent rotates by it at start', async () => {
    const a = tempDir();
    const b = tempDir();
    try {
      const as = (...args: string[]) => cli(['--home', a.dir, '--json', ...args], { ROOST_RELAYS: relay.url });
      // A log whose head is ten days old.
      const old = openKeyRing(a.dir, { now: () => Math.floor(Date.now() / 1000) - 10 * 86_400 });
      for (const bad of ['2m', 'banana', '400d', '0.5d', '']) {
        const r = await as('rotate', '--every', bad);
        expect([bad, r.code, r.stderr]).toEqual([bad, 2, expect.stringMatching(/rotation interval .*1h to 365d/)]);
      }
      expect((await as('identity', '--every', '30d')).code).toBe(2);
      expect(readRotationInterval(a.dir)).toBeUndefined();

      const notDue = await as('rotate', '--every', '30d');
      expect(notDue.code).toBe(0);
      expect(notDue.json()[0]).toMatchObject({ pubkey: old.current.pubkey, seq: 0, rotationIntervalSeconds: 30 * 86_400, rotated: false });
      const due = await as('rotate', '--every', '1w');
      expect(due.json()[0]).toMatchObject({ pubkey: old.next.pubkey, seq: 1, rotationIntervalSeconds: 7 * 86_400, rotated: true });
      expect(due.json()[0].published).toHaveLength(2);
      expect(readRotationInterval(a.dir)).toBe(7 * 86_400);
      expect((await as('rotate', '--every', 'off')).json()[0]).toMatchObject({ seq: 1, rotationIntervalSeconds: 0, rotated: false });
      expect(readRotationInterval(a.dir)).toBe(0);

      // The interval kept in the home is what an agent started there without the option rotates by.
      const ten = openKeyRing(b.dir, { now: () => Math.floor(Date.now() / 1000) - 10 * 86_400 });
      saveRotationInterval(b.dir, 7 * 86_400);
      const { agent } = await startRecordingAgent(b.dir, [relay.url]);
      try {
        expect([agent.pubkey, agent.keyLog?.head.seq]).toEqual([ten.next.pubkey, 1]);
      } finally {
        await agent.close();
      }
    } finally {
      a.cleanup();
      b.cleanup();
    }
  });
});
