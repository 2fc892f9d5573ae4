import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { finalizeEvent } from 'nostr-tools/pure';
import * as nip44 from 'nostr-tools/nip44';
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'vitest';
import { loadConfig } from '../../../relay/config.js';
import { loadOrCreateRelayIdentity, type RelayIdentity } from '../../../relay/identity.js';
import { ConversationKeyCache, getConversationKey, parseWakeRegistration, parseWakeRegistrationPayload } from '../../../relay/push/registration.js';
import type { SendOutcome, WakeSender, WakeTarget } from '../../../relay/push/types.js';
import { createPushWake, type PushWake } from '../../../relay/push/wake.js';
import { getReasonPrefix } from '../../../shared/reason.js';
import {
  makeAddressedEvent,
  makeAgent,
  makeApnsToken,
  makeFcmToken,
  makeLogger,
  makeRegistrationEvent,
  makeTempDir,
  ManualClock,
  openPushDb,
} from './support.js';

const tmp = makeTempDir();
afterAll(() => tmp.remove());

/** A sender that records what the queue hands it; the real senders are tested against fake servers. */
function makeRecordingSender(platform: 'apns' | 'fcm'): WakeSender & { sent: WakeTarget[] } {
  const sent: WakeTarget[] = [];
  return {
    platform,
    sent,
    send: async (target): Promise<SendOutcome> => {
      sent.push(target);
      return { kind: 'sent' };
    },
    close: async () => undefined,
  };
}

let n = 0;
let db: Database.Database;
let identity: RelayIdentity;
let wake: PushWake;
let clock: ManualClock;
let apns: ReturnType<typeof makeRecordingSender>;
let fcm: ReturnType<typeof makeRecordingSender>;
let logs: ReturnType<typeof makeLogger>;

beforeEach(() => {
  const file = join(tmp.dir, `reg-${++n}.db`);
  db = openPushDb(file);
  identity = loadOrCreateRelayIdentity(file);
  clock = new ManualClock();
  apns = makeRecordingSender('apns');
  fcm = makeRecordingSender('fcm');
  logs = makeLogger();
  wake = createPushWake({
    db,
    identity,
    config: loadConfig({ pushMinIntervalSeconds: '0' }),
    log: logs.log,
    isOnline: () => false,
    senders: { apns, fcm },
    clock,
  });
});

afterEach(async () => {
  await wake.close();
  db.close();
});

const apnsChannel = (token = makeApnsToken()) => ({ platform: 'apns', token, topic: 'org.example.roost', environment: 'production', mode: 'background' });
const fcmChannel = (token = makeFcmToken()) => ({ platform: 'fcm', token, mode: 'alert' });

function tokensOf(owner: string): string[] {
  return (db.prepare('SELECT token FROM push_channels WHERE owner = ? ORDER BY token').all(owner) as Array<{ token: string }>).map((r) => r.token);
}

async function wakeAgent(pubkey: string): Promise<string[]> {
  apns.sent.length = 0;
  fcm.sent.length = 0;
  wake.onEventStored(makeAddressedEvent(makeAgent(), [pubkey]), 1);
  await wake.runDue();
  clock.advance(1000);
  return [...apns.sent, ...fcm.sent].map((t) => t.token).sort();
}

describe('wake registration (kind 29059)', () => {
  test('registers, replaces and removes the owner’s channels; re-registering is idempotent', async () => {
    const agent = makeAgent();
    const t1 = makeApnsToken();
    const t2 = makeFcmToken();
    const t = Math.floor(clock.now() / 1000);
    expect(wake.handleWakeRegistration(makeRegistrationEvent(agent, identity.pubkey, { channels: [apnsChannel(t1), fcmChannel(t2)] }, t))).toEqual({
      ok: true,
    });
    expect(tokensOf(agent.pubkey)).toEqual([t1, t2].sort());
    expect(await wakeAgent(agent.pubkey)).toEqual([t1, t2].sort());

    const writes = () => (db.prepare('SELECT total_changes() AS n').get() as { n: number }).n;
    const before = writes();
    for (let i = 1; i <= 3; i++) {
      expect(wake.handleWakeRegistration(makeRegistrationEvent(agent, identity.pubkey, { channels: [apnsChannel(t1), fcmChannel(t2)] }, t + i))).toEqual({
        ok: true,
      });
    }
    expect(tokensOf(agent.pubkey)).toEqual([t1, t2].sort());
    expect(writes()).toBe(before); // unchanged and recent: no commit
    clock.advance(3_600_000);
    expect(wake.handleWakeRegistration(makeRegistrationEvent(agent, identity.pubkey, { channels: [apnsChannel(t1), fcmChannel(t2)] }, t + 4))).toEqual({
      ok: true,
    });
    expect(writes()).toBeGreaterThan(before); // an hour later the registration time is refreshed

    expect(wake.handleWakeRegistration(makeRegistrationEvent(agent, identity.pubkey, { channels: [fcmChannel(t2)] }, t + 10))).toEqual({ ok: true });
    expect(tokensOf(agent.pubkey)).toEqual([t2]);
    expect(await wakeAgent(agent.pubkey)).toEqual([t2]);

    expect(wake.handleWakeRegistration(makeRegistrationEvent(agent, identity.pubkey, { channels: [] }, t + 20))).toEqual({ ok: true });
    expect(tokensOf(agent.pubkey)).toEqual([]);
    expect(await wakeAgent(agent.pubkey)).toEqual([]);
    expect(wake.stats().queued).toBe(2);
  });

  test('another key’s event cannot touch a registration', async () => {
    const owner = makeAgent();
    const intruder = makeAgent();
    const token = makeApnsToken();
    expect(wake.handleWakeRegistration(makeRegistrationEvent(owner, identity.pubkey, { channels: [apnsChannel(token)] }))).toEqual({ ok: true });

    // The intruder's own (empty) registration concerns only the intruder.
    expect(wake.handleWakeRegistration(makeRegistrationEvent(intruder, identity.pubkey, { channels: [] }))).toEqual({ ok: true });
    // Re-signing the owner's ciphertext does not help: it decrypts only with the owner's key.
    const copied = makeRegistrationEvent(owner, identity.pubkey, { channels: [] });
    const forged = finalizeEvent({ kind: 29059, created_at: copied.created_at + 5, tags: [], content: copied.content }, intruder.secretKey);
    const r = wake.handleWakeRegistration(forged);
    expect(r.ok).toBe(false);
    expect(!r.ok && getReasonPrefix(r.reason)).toBe('invalid');

    expect(tokensOf(owner.pubkey)).toEqual([token]);
    expect(await wakeAgent(owner.pubkey)).toEqual([token]);
    expect(tokensOf(intruder.pubkey)).toEqual([]);
  });

  test('two agents may name the same device; each keeps its own registration', async () => {
    const a = makeAgent();
    const b = makeAgent();
    const token = makeFcmToken();
    wake.handleWakeRegistration(makeRegistrationEvent(a, identity.pubkey, { channels: [fcmChannel(token)] }));
    wake.handleWakeRegistration(makeRegistrationEvent(b, identity.pubkey, { channels: [fcmChannel(token)] }));
    wake.handleWakeRegistration(makeRegistrationEvent(b, identity.pubkey, { channels: [] }, Math.floor(Date.now() / 1000) + 1));
    expect(tokensOf(a.pubkey)).toEqual([token]);
    expect(tokensOf(b.pubkey)).toEqual([]);
  });

  test('an older registration cannot be replayed over a newer one', () => {
    const agent = makeAgent();
    const t = Math.floor(clock.now() / 1000);
    const old = makeRegistrationEvent(agent, identity.pubkey, { channels: [apnsChannel()] }, t);
    const newer = makeRegistrationEvent(agent, identity.pubkey, { channels: [] }, t + 60);
    expect(wake.handleWakeRegistration(old)).toEqual({ ok: true });
    expect(wake.handleWakeRegistration(newer)).toEqual({ ok: true });
    const r = wake.handleWakeRegistration(old);
    expect(r).toEqual({ ok: false, reason: 'invalid: a newer wake registration is already in force' });
    expect(tokensOf(agent.pubkey)).toEqual([]);
  });

  const bad: Array<{ name: string; payload: unknown; prefix: string }> = [
    { name: 'not an object', payload: 'hello', prefix: 'invalid' },
    { name: 'unknown platform', payload: { channels: [{ platform: 'webpush', token: makeFcmToken(), mode: 'background' }] }, prefix: 'invalid' },
    { name: 'APNs token not hex', payload: { channels: [{ ...apnsChannel(), token: 'zz'.repeat(32) }] }, prefix: 'invalid' },
    { name: 'APNs without environment', payload: { channels: [{ platform: 'apns', token: makeApnsToken(), topic: 'a.b', mode: 'alert' }] }, prefix: 'invalid' },
    { name: 'bad wake mode', payload: { channels: [{ ...fcmChannel(), mode: 'loud' }] }, prefix: 'invalid' },
    { name: 'too many channels', payload: { channels: Array.from({ length: 11 }, () => fcmChannel()) }, prefix: 'invalid' },
  ];
  for (const c of bad) {
    test(`refuses a payload with ${c.name}, echoing no token`, () => {
      const agent = makeAgent();
      const r = wake.handleWakeRegistration(makeRegistrationEvent(agent, identity.pubkey, c.payload));
      expect(r.ok).toBe(false);
      expect(!r.ok && getReasonPrefix(r.reason)).toBe(c.prefix);
      const text = JSON.stringify(c.payload);
      for (const m of text.matchAll(/"token":"([^"]+)"/g)) expect(!r.ok && r.reason).not.toContain(m[1]);
      expect(tokensOf(agent.pubkey)).toEqual([]);
    });
  }

  test('refuses plaintext content, content encrypted to another key, and other kinds', () => {
    const agent = makeAgent();
    const other = makeAgent();
    const plain = finalizeEvent({ kind: 29059, created_at: 1, tags: [], content: JSON.stringify({ channels: [] }) }, agent.secretKey);
    const toOther = makeRegistrationEvent(agent, other.pubkey, { channels: [fcmChannel()] });
    const wrongKind = { ...makeRegistrationEvent(agent, identity.pubkey, { channels: [] }), kind: 29058 };
    for (const ev of [plain, toOther, wrongKind]) expect(getReasonPrefix((wake.handleWakeRegistration(ev) as { reason: string }).reason)).toBe('invalid');
  });

  test('a platform the relay has no credentials for is refused as restricted', async () => {
    const only = createPushWake({ db, identity, config: loadConfig({}), log: logs.log, isOnline: () => false, senders: { fcm } });
    const r = only.handleWakeRegistration(makeRegistrationEvent(makeAgent(), identity.pubkey, { channels: [fcmChannel(), apnsChannel()] }));
    expect(r).toEqual({ ok: false, reason: 'restricted: apns wake is not configured on this relay' });
    await only.close();
  });

  test('registrations and tokens never reach the logs', () => {
    const token = makeApnsToken();
    wake.handleWakeRegistration(makeRegistrationEvent(makeAgent(), identity.pubkey, { channels: [apnsChannel(token)] }));
    wake.handleWakeRegistration(makeRegistrationEvent(makeAgent(), identity.pubkey, { channels: [{ ...apnsChannel(token), mode: 'nope' }] }));
    expect(logs.lines.length).toBeGreaterThan(1);
    expect(logs.lines.join('')).not.toContain(token);
  });

  test('the exported schema and parser agree with what agents send', () => {
    const agent = makeAgent();
    const payload = { channels: [apnsChannel(), fcmChannel()], future: 'ignored' };
    const key = nip44.v2.utils.getConversationKey(agent.secretKey, identity.pubkey);
    const r = parseWakeRegistration({ kind: 29059, pubkey: agent.pubkey, content: nip44.v2.encrypt(JSON.stringify(payload), key) }, identity.secretKey);
    expect(r).toEqual(parseWakeRegistrationPayload(payload));
    expect(r.ok && r.registration.channels).toHaveLength(2);
    expect(r.ok && r.registration).not.toHaveProperty('future');
  });
});

describe('NIP-44 conversation key', () => {
  test('matches nostr-tools for random keypairs, directly and through the cache', () => {
    const relay = makeAgent();
    const cache = new ConversationKeyCache(relay.secretKey, 8);
    for (let i = 0; i < 40; i++) {
      const agent = makeAgent();
      const expected = Buffer.from(nip44.v2.utils.getConversationKey(relay.secretKey, agent.pubkey));
      expect(Buffer.from(getConversationKey(relay.secretKey, agent.pubkey))).toEqual(expected);
      expect(Buffer.from(cache.get(agent.pubkey))).toEqual(expected);
      expect(Buffer.from(cache.get(agent.pubkey))).toEqual(expected);
    }
  });

  test('refuses a pubkey that is not on the curve', () => {
    const relay = makeAgent();
    expect(() => getConversationKey(relay.secretKey, 'ff'.repeat(32))).toThrow();
    expect(() => getConversationKey(relay.secretKey, 'abc')).toThrow();
  });
});
