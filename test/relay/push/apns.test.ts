import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { loadConfig, type RelayConfig } from '../../../relay/config.js';
import { loadOrCreateRelayIdentity, type RelayIdentity } from '../../../relay/identity.js';
import { createPushWake, type PushWake } from '../../../relay/push/wake.js';
import { makeApnsSigningKey, makeSelfSignedCert, startFakeApns, type ApnsReply, type FakeApns } from '../../helpers/fake-apns.js';
import { makeAddressedEvent, makeAgent, makeApnsToken, makeLogger, makeRegistrationEvent, makeTempDir, ManualClock, openPushDb } from './support.js';

const TOPIC = 'org.example.roost';
const tmp = makeTempDir();
let fake: FakeApns;
let config: RelayConfig;

beforeAll(async () => {
  const tls = makeSelfSignedCert();
  const signing = makeApnsSigningKey();
  fake = await startFakeApns({ tls, publicKey: signing.publicKey, keyId: 'KEYID12345', teamId: 'TEAMID1234' });
  writeFileSync(join(tmp.dir, 'AuthKey.p8'), signing.p8);
  writeFileSync(join(tmp.dir, 'ca.pem'), tls.cert);
  config = loadConfig({
    publicUrl: 'wss://relay.example',
    pushApnsKeyFile: join(tmp.dir, 'AuthKey.p8'),
    pushApnsKeyId: 'KEYID12345',
    pushApnsTeamId: 'TEAMID1234',
    pushApnsHost: '127.0.0.1',
    pushApnsPort: String(fake.port),
    pushApnsCaFile: join(tmp.dir, 'ca.pem'),
    pushMinIntervalSeconds: '0',
    pushMaxAttempts: '3',
  });
});

afterAll(async () => {
  await fake.close();
  tmp.remove();
});

let n = 0;
let db: Database.Database;
let identity: RelayIdentity;
let clock: ManualClock;
let wake: PushWake;
let logs: ReturnType<typeof makeLogger>;

beforeEach(() => {
  const file = join(tmp.dir, `apns-${++n}.db`);
  db = openPushDb(file);
  identity = loadOrCreateRelayIdentity(file);
  clock = new ManualClock();
  logs = makeLogger();
  wake = createPushWake({ db, identity, config, log: logs.log, isOnline: () => false, clock, random: () => 0.5 });
  fake.requests.length = 0;
  fake.reply(() => ({ status: 200 }));
});

afterEach(async () => {
  await wake.close();
  db.close();
  // Every request in these tests carried a valid provider token, so no answer below was the fake's 403.
  expect(fake.requests.every((r) => r.authorized)).toBe(true);
});

function register(agent: ReturnType<typeof makeAgent>, token: string, mode: 'background' | 'alert' = 'background', environment = 'sandbox') {
  const ev = makeRegistrationEvent(agent, identity.pubkey, { channels: [{ platform: 'apns', token, topic: TOPIC, environment, mode }] });
  expect(wake.handleWakeRegistration(ev)).toEqual({ ok: true });
}

function channelCount(): number {
  return (db.prepare('SELECT count(*) AS n FROM push_channels').get() as { n: number }).n;
}

describe('APNs wake through @parse/node-apn against a local HTTP/2 server', () => {
  test('a background wake carries the right headers and a content-free body', async () => {
    const agent = makeAgent();
    const sender = makeAgent();
    const token = makeApnsToken();
    register(agent, token);
    const event = makeAddressedEvent(sender, [agent.pubkey], 'the secret plan');
    wake.onEventStored(event, 42);
    await wake.runDue();
    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0]!;
    expect(req.authorized).toBe(true);
    expect(req.deviceToken).toBe(token);
    expect(req.headers['apns-push-type']).toBe('background');
    expect(req.headers['apns-priority']).toBe('5');
    expect(req.headers['apns-topic']).toBe(TOPIC);
    expect(req.headers['apns-collapse-id']).toMatch(/^roost-[0-9a-f]{32}$/);
    expect(req.headers['apns-expiration']).toBe(String(Math.floor((clock.now() + config.pushWakeTtlSeconds * 1000) / 1000)));
    expect(req.body).toEqual({ aps: { 'content-available': 1 }, roost: { relay: 'wss://relay.example', seq: 42 } });
    const raw = JSON.stringify(req);
    for (const secret of ['the secret plan', event.id, sender.pubkey]) expect(raw).not.toContain(secret);
    expect(wake.stats()).toMatchObject({ queued: 1, sent: 1, retried: 0, failed: 0, pruned: 0, pendingWakes: 0, pendingDeliveries: 0 });
    expect(logs.lines.join('')).not.toContain(token);
  });

  test('an alert wake is a generic visible notification at priority 10', async () => {
    const agent = makeAgent();
    register(agent, makeApnsToken(), 'alert', 'production');
    wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 7);
    await wake.runDue();
    const req = fake.requests[0]!;
    expect(req.headers['apns-push-type']).toBe('alert');
    expect(req.headers['apns-priority']).toBe('10');
    expect(req.body).toEqual({ aps: { alert: { title: config.pushAlertTitle, body: config.pushAlertBody } }, roost: { relay: 'wss://relay.example', seq: 7 } });
  });

  test('a newer wake replaces an older one on the device: both carry the same collapse id', async () => {
    const agent = makeAgent();
    register(agent, makeApnsToken());
    wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    await wake.runDue();
    wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 2);
    await wake.runDue();
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[0]!.headers['apns-collapse-id']).toBe(fake.requests[1]!.headers['apns-collapse-id']);
    // Another agent on the same relay gets another collapse id.
    const other = makeAgent();
    register(other, makeApnsToken());
    wake.onEventStored(makeAddressedEvent(makeAgent(), [other.pubkey]), 3);
    await wake.runDue();
    expect(fake.requests[2]!.headers['apns-collapse-id']).not.toBe(fake.requests[0]!.headers['apns-collapse-id']);
  });

  const permanent: Array<{ name: string; reply: (now: number) => ApnsReply; pruned: boolean }> = [
    { name: '400 BadDeviceToken', reply: () => ({ status: 400, body: { reason: 'BadDeviceToken' } }), pruned: true },
    { name: '400 DeviceTokenNotForTopic', reply: () => ({ status: 400, body: { reason: 'DeviceTokenNotForTopic' } }), pruned: true },
    {
      name: '410 Unregistered after the registration',
      reply: (now) => ({ status: 410, body: { reason: 'Unregistered', timestamp: now + 1000 } }),
      pruned: true,
    },
    {
      name: '410 Unregistered before the registration',
      reply: (now) => ({ status: 410, body: { reason: 'Unregistered', timestamp: now - 1000 } }),
      pruned: false,
    },
    { name: '400 BadTopic', reply: () => ({ status: 400, body: { reason: 'BadTopic' } }), pruned: false },
    { name: '413 PayloadTooLarge', reply: () => ({ status: 413, body: { reason: 'PayloadTooLarge' } }), pruned: false },
  ];
  for (const c of permanent) {
    test(`${c.name}: token ${c.pruned ? 'pruned' : 'kept'}, no retry`, async () => {
      const agent = makeAgent();
      register(agent, makeApnsToken());
      const registeredAt = clock.now();
      fake.reply(() => c.reply(registeredAt));
      clock.advance(5000);
      wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
      await wake.runDue();
      clock.advance(3_600_000);
      await wake.runDue();
      expect(fake.requests).toHaveLength(1);
      expect(channelCount()).toBe(c.pruned ? 0 : 1);
      expect(wake.stats()).toMatchObject(c.pruned ? { pruned: 1, failed: 0, retried: 0 } : { pruned: 0, failed: 1, retried: 0 });
      expect(wake.stats().pendingDeliveries).toBe(0);
      // A pruned agent is no longer woken; a kept one is.
      fake.reply(() => ({ status: 200 }));
      wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 2);
      await wake.runDue();
      expect(fake.requests).toHaveLength(c.pruned ? 1 : 2);
    });
  }

  for (const status of [429, 500, 503]) {
    test(`${status} is retried after a jittered backoff, and the token kept`, async () => {
      const agent = makeAgent();
      register(agent, makeApnsToken());
      fake.reply((_req, i) => (i === 0 ? { status, body: { reason: status === 429 ? 'TooManyRequests' : 'InternalServerError' } } : { status: 200 }));
      wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
      await wake.runDue();
      expect(fake.requests).toHaveLength(1); // node-apn did not retry on its own
      expect(wake.stats()).toMatchObject({ retried: 1, sent: 0, pendingDeliveries: 1 });
      // random() = 0.5 and base 1000 ms: the first retry waits 500 ms.
      clock.advance(499);
      await wake.runDue();
      expect(fake.requests).toHaveLength(1);
      clock.advance(1);
      await wake.runDue();
      expect(fake.requests).toHaveLength(2);
      expect(wake.stats()).toMatchObject({ retried: 1, sent: 1, failed: 0, pendingDeliveries: 0 });
      expect(channelCount()).toBe(1);
    });
  }

  test('a wake that keeps failing is given up after pushMaxAttempts, the token kept', async () => {
    const agent = makeAgent();
    register(agent, makeApnsToken());
    fake.reply(() => ({ status: 503, body: { reason: 'ServiceUnavailable' } }));
    wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    for (let i = 0; i < 6; i++) {
      await wake.runDue();
      clock.advance(config.pushRetryMaxMs);
    }
    expect(fake.requests).toHaveLength(config.pushMaxAttempts);
    expect(wake.stats()).toMatchObject({ retried: config.pushMaxAttempts - 1, failed: 1, pendingDeliveries: 0 });
    expect(channelCount()).toBe(1);
  });

  test('a network failure (nothing listening) is retried', async () => {
    const closed = makeLogger();
    const deadConfig = loadConfig({ ...config, pushApnsPort: '1' });
    const w = createPushWake({ db, identity, config: deadConfig, log: closed.log, isOnline: () => false, clock, random: () => 0.5 });
    const agent = makeAgent();
    const ev = makeRegistrationEvent(agent, identity.pubkey, {
      channels: [{ platform: 'apns', token: makeApnsToken(), topic: TOPIC, environment: 'sandbox', mode: 'background' }],
    });
    expect(w.handleWakeRegistration(ev)).toEqual({ ok: true });
    w.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    await w.runDue();
    expect(w.stats()).toMatchObject({ retried: 1, sent: 0, failed: 0, pendingDeliveries: 1 });
    await w.close();
  });
});
