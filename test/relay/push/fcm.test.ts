import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { loadConfig, type RelayConfig } from '../../../relay/config.js';
import { loadOrCreateRelayIdentity, type RelayIdentity } from '../../../relay/identity.js';
import { createPushWake, type PushWake } from '../../../relay/push/wake.js';
import { makeSelfSignedCert } from '../../helpers/fake-apns.js';
import { fcmError, makeServiceAccount, startFakeFcm, type FakeFcm, type FcmReply } from '../../helpers/fake-fcm.js';
import { makeAddressedEvent, makeAgent, makeFcmToken, makeLogger, makeRegistrationEvent, makeTempDir, ManualClock, openPushDb } from './support.js';

const PROJECT = 'roost-test-project';
const tmp = makeTempDir();
let fake: FakeFcm;
let config: RelayConfig;

beforeAll(async () => {
  // The fake learns the service account's public key; the relay gets the file, whose token_uri points at the fake.
  const placeholder = makeServiceAccount(PROJECT, 'http://127.0.0.1:1/token');
  fake = await startFakeFcm({ serviceAccount: { publicKey: placeholder.publicKey, clientEmail: placeholder.json.client_email! } });
  writeFileSync(join(tmp.dir, 'service-account.json'), JSON.stringify({ ...placeholder.json, token_uri: `${fake.url}/token` }));
  config = loadConfig({
    publicUrl: 'wss://relay.example',
    pushFcmServiceAccountFile: join(tmp.dir, 'service-account.json'),
    pushFcmEndpoint: fake.url,
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

function open(cfg: RelayConfig = config): void {
  const file = join(tmp.dir, `fcm-${++n}.db`);
  db = openPushDb(file);
  identity = loadOrCreateRelayIdentity(file);
  clock = new ManualClock();
  logs = makeLogger();
  wake = createPushWake({ db, identity, config: cfg, log: logs.log, isOnline: () => false, clock, random: () => 0.5 });
}

beforeEach(() => {
  open();
  fake.requests.length = 0;
  fake.reply((req) => ({ status: 200, body: { name: `projects/${req.projectId}/messages/1` } }));
});

afterEach(async () => {
  await wake.close();
  db.close();
});

function register(agent: ReturnType<typeof makeAgent>, token: string, mode: 'background' | 'alert' = 'background') {
  const ev = makeRegistrationEvent(agent, identity.pubkey, { channels: [{ platform: 'fcm', token, mode }] });
  expect(wake.handleWakeRegistration(ev)).toEqual({ ok: true });
}

function channelCount(): number {
  return (db.prepare('SELECT count(*) AS n FROM push_channels').get() as { n: number }).n;
}

describe('FCM wake through firebase-admin against a local HTTP server', () => {
  test('a wake is a data-only message with normal priority, a collapse key and a TTL, authorized via token_uri', async () => {
    const agent = makeAgent();
    const sender = makeAgent();
    const token = makeFcmToken();
    register(agent, token);
    const event = makeAddressedEvent(sender, [agent.pubkey], 'the secret plan');
    wake.onEventStored(event, 42);
    await wake.runDue();

    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0]!;
    expect(req.projectId).toBe(PROJECT);
    expect(fake.issuedTokens.length).toBeGreaterThan(0);
    expect(req.headers.authorization).toBe(`Bearer ${fake.issuedTokens.at(-1)}`);
    expect(req.message).toEqual({
      token,
      data: { roost: '1', seq: '42', mode: 'background', relay: 'wss://relay.example' },
      android: { priority: 'normal', ttl: `${config.pushWakeTtlSeconds}s`, collapse_key: expect.stringMatching(/^roost-[0-9a-f]{32}$/) },
    });
    const raw = JSON.stringify(req.message);
    for (const secret of ['the secret plan', event.id, sender.pubkey]) expect(raw).not.toContain(secret);
    expect(wake.stats()).toMatchObject({ queued: 1, sent: 1, retried: 0, failed: 0, pruned: 0 });
    expect(logs.lines.join('')).not.toContain(token);
  });

  test('an alert wake carries the generic notification (ROOST_PUSH_ALERT_TITLE/BODY) and high Android priority, nothing of the event', async () => {
    const cfg = loadConfig({ ...config, pushAlertTitle: 'Agent mail', pushAlertBody: 'Something arrived' });
    await wake.close();
    db.close();
    open(cfg);
    const agent = makeAgent();
    const sender = makeAgent();
    const token = makeFcmToken();
    register(agent, token, 'alert');
    const event = makeAddressedEvent(sender, [agent.pubkey], 'the secret plan');
    wake.onEventStored(event, 3);
    await wake.runDue();
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.message).toEqual({
      token,
      data: { roost: '1', seq: '3', mode: 'alert', relay: 'wss://relay.example' },
      notification: { title: 'Agent mail', body: 'Something arrived' },
      android: { priority: 'high', ttl: `${cfg.pushWakeTtlSeconds}s`, collapse_key: expect.stringMatching(/^roost-[0-9a-f]{32}$/) },
    });
    const raw = JSON.stringify(fake.requests[0]!.message);
    for (const secret of ['the secret plan', event.id, sender.pubkey]) expect(raw).not.toContain(secret);
  });

  test('a background wake has no notification block', async () => {
    const agent = makeAgent();
    register(agent, makeFcmToken(), 'background');
    wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 4);
    await wake.runDue();
    expect(fake.requests[0]!.message).not.toHaveProperty('notification');
  });

  const permanent: Array<{ name: string; reply: FcmReply; pruned: boolean }> = [
    { name: '404 UNREGISTERED', reply: fcmError(404, 'NOT_FOUND', 'Requested entity was not found.', 'UNREGISTERED'), pruned: true },
    {
      name: '400 INVALID_ARGUMENT naming the token',
      reply: fcmError(400, 'INVALID_ARGUMENT', 'The registration token is not a valid FCM registration token', 'INVALID_ARGUMENT'),
      pruned: true,
    },
    {
      name: '400 INVALID_ARGUMENT naming another field',
      reply: fcmError(400, 'INVALID_ARGUMENT', "Invalid value at 'message.android.ttl'", 'INVALID_ARGUMENT'),
      pruned: false,
    },
    { name: '403 SENDER_ID_MISMATCH', reply: fcmError(403, 'PERMISSION_DENIED', 'SenderId mismatch', 'SENDER_ID_MISMATCH'), pruned: false },
  ];
  for (const c of permanent) {
    test(`${c.name}: token ${c.pruned ? 'pruned' : 'kept'}, no retry`, async () => {
      const agent = makeAgent();
      register(agent, makeFcmToken());
      fake.reply(() => c.reply);
      wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
      await wake.runDue();
      clock.advance(3_600_000);
      await wake.runDue();
      expect(fake.requests).toHaveLength(1);
      expect(channelCount()).toBe(c.pruned ? 0 : 1);
      expect(wake.stats()).toMatchObject(c.pruned ? { pruned: 1, failed: 0, retried: 0 } : { pruned: 0, failed: 1, retried: 0 });
      expect(wake.stats().pendingDeliveries).toBe(0);
    });
  }

  test('429 with Retry-After waits for the server, not for the (shorter) backoff', async () => {
    const agent = makeAgent();
    register(agent, makeFcmToken());
    fake.reply((_req, i) =>
      i === 0
        ? { ...fcmError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded.', 'QUOTA_EXCEEDED'), headers: { 'retry-after': '120' } }
        : { status: 200, body: { name: 'm' } },
    );
    wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    await wake.runDue();
    expect(fake.requests).toHaveLength(1);
    expect(wake.stats()).toMatchObject({ retried: 1, pendingDeliveries: 1 });
    clock.advance(119_999);
    await wake.runDue();
    expect(fake.requests).toHaveLength(1);
    clock.advance(1);
    await wake.runDue();
    expect(fake.requests).toHaveLength(2);
    expect(wake.stats()).toMatchObject({ retried: 1, sent: 1, pendingDeliveries: 0 });
    expect(channelCount()).toBe(1);
  });

  test('under concurrency each send gets its own status and Retry-After', async () => {
    const agents = Array.from({ length: 8 }, () => makeAgent());
    const limited = new Set<string>();
    agents.forEach((a, i) => {
      const token = makeFcmToken();
      if (i % 2 === 0) limited.add(token);
      register(a, token);
    });
    fake.reply((req, i) =>
      limited.has(req.message.token!) && i < 8
        ? { ...fcmError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded.', 'QUOTA_EXCEEDED'), headers: { 'retry-after': '60' }, delayMs: 5 * (i % 3) }
        : { status: 200, body: { name: 'm' }, delayMs: 5 * (i % 3) },
    );
    for (const a of agents) wake.onEventStored(makeAddressedEvent(makeAgent(), [a.pubkey]), 1);
    await wake.runDue();
    expect(fake.requests).toHaveLength(8);
    expect(wake.stats()).toMatchObject({ sent: 4, retried: 4 });
    clock.advance(59_999);
    await wake.runDue();
    expect(fake.requests).toHaveLength(8);
    clock.advance(1);
    await wake.runDue();
    expect(
      fake.requests
        .slice(8)
        .map((r) => r.message.token)
        .sort(),
    ).toEqual([...limited].sort());
    expect(wake.stats()).toMatchObject({ sent: 8, retried: 4 });
  });

  for (const reply of [
    fcmError(500, 'INTERNAL', 'Internal error.', 'INTERNAL'),
    fcmError(503, 'UNAVAILABLE', 'The service is unavailable.', 'UNAVAILABLE'),
    fcmError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.'),
  ]) {
    test(`${reply.status} is retried by the relay only (firebase-admin's own retry is off)`, async () => {
      const agent = makeAgent();
      register(agent, makeFcmToken());
      fake.reply((_req, i) => (i === 0 ? reply : { status: 200, body: { name: 'm' } }));
      wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
      await wake.runDue();
      expect(fake.requests).toHaveLength(1);
      clock.advance(499);
      await wake.runDue();
      expect(fake.requests).toHaveLength(1);
      clock.advance(1);
      await wake.runDue();
      expect(fake.requests).toHaveLength(2);
      expect(wake.stats()).toMatchObject({ retried: 1, sent: 1, failed: 0 });
      expect(channelCount()).toBe(1);
    });
  }

  test('a fixed access token over HTTPS with the configured CA', async () => {
    const tls = makeSelfSignedCert();
    writeFileSync(join(tmp.dir, 'fcm-ca.pem'), tls.cert);
    const secure = await startFakeFcm({ accessToken: 'fixed-token', tls });
    try {
      await wake.close();
      db.close();
      open(
        loadConfig({
          publicUrl: '',
          pushFcmAccessToken: 'fixed-token',
          pushFcmProjectId: 'p2',
          pushFcmEndpoint: secure.url,
          pushFcmCaFile: join(tmp.dir, 'fcm-ca.pem'),
        }),
      );
      const agent = makeAgent();
      const token = makeFcmToken();
      register(agent, token);
      wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 5);
      await wake.runDue();
      expect(secure.requests).toHaveLength(1);
      expect(secure.requests[0]!.projectId).toBe('p2');
      expect(secure.requests[0]!.headers.authorization).toBe('Bearer fixed-token');
      expect(secure.requests[0]!.message.data).toEqual({ roost: '1', seq: '5', mode: 'background' });
    } finally {
      await secure.close();
    }
  });

  test('a service account the token endpoint refuses: retried, then given up, nothing sent', async () => {
    const other = makeServiceAccount(PROJECT, `${fake.url}/token`);
    writeFileSync(join(tmp.dir, 'wrong-account.json'), JSON.stringify(other.json));
    await wake.close();
    db.close();
    open(loadConfig({ ...config, pushFcmServiceAccountFile: join(tmp.dir, 'wrong-account.json') }));
    const agent = makeAgent();
    register(agent, makeFcmToken());
    wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    for (let i = 0; i < 4; i++) {
      await wake.runDue();
      clock.advance(config.pushRetryMaxMs);
    }
    expect(fake.requests).toHaveLength(0);
    expect(wake.stats()).toMatchObject({ sent: 0, retried: config.pushMaxAttempts - 1, failed: 1 });
    expect(channelCount()).toBe(1);
  });
});
