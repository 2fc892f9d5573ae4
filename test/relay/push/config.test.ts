import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { describeConfig, loadConfig, readConfigSources, RoostError } from '../../../relay/config.js';
import { loadOrCreateRelayIdentity } from '../../../relay/identity.js';
import { createWakeSenders } from '../../../relay/push/senders.js';
import { createPushWake } from '../../../relay/push/wake.js';
import { makeApnsSigningKey, makeSelfSignedCert, startFakeApns } from '../../helpers/fake-apns.js';
import { makeServiceAccount, startFakeFcm } from '../../helpers/fake-fcm.js';
import { makeAddressedEvent, makeAgent, makeApnsToken, makeFcmToken, makeLogger, makeRegistrationEvent, makeTempDir, openPushDb } from './support.js';

const tmp = makeTempDir();
afterAll(() => tmp.remove());

describe('push wake configured like the relay process (ROOST_* environment)', () => {
  test('every push key has a default, a description and a ROOST_PUSH_* variable', () => {
    const keys = describeConfig().filter((k) => k.key.startsWith('push'));
    expect(keys.length).toBeGreaterThan(10);
    for (const k of keys) {
      expect(k.env).toMatch(/^ROOST_PUSH_[A-Z0-9_]+$/);
      expect(k.description.length).toBeGreaterThan(10);
      expect(k.default).not.toBeUndefined();
    }
  });

  test('delivers real pushes to local APNs and FCM servers, on the real clock', async () => {
    const tls = makeSelfSignedCert();
    const signing = makeApnsSigningKey();
    const apns = await startFakeApns({ tls, publicKey: signing.publicKey, keyId: 'ABC123DEFG', teamId: 'TEAM456789' });
    const account = makeServiceAccount('roost-e2e', 'http://127.0.0.1:1/token');
    const fcm = await startFakeFcm({ serviceAccount: { publicKey: account.publicKey, clientEmail: account.json.client_email! }, tls });
    writeFileSync(join(tmp.dir, 'AuthKey_ABC123DEFG.p8'), signing.p8);
    writeFileSync(join(tmp.dir, 'ca.pem'), tls.cert);
    writeFileSync(join(tmp.dir, 'firebase.json'), JSON.stringify({ ...account.json, token_uri: `${fcm.url}/token` }));
    const env = {
      ROOST_DB: join(tmp.dir, 'relay.db'),
      ROOST_PUBLIC_URL: 'wss://relay.example',
      ROOST_PUSH_APNS_KEY_FILE: join(tmp.dir, 'AuthKey_ABC123DEFG.p8'),
      ROOST_PUSH_APNS_KEY_ID: 'ABC123DEFG',
      ROOST_PUSH_APNS_TEAM_ID: 'TEAM456789',
      ROOST_PUSH_APNS_HOST: '127.0.0.1',
      ROOST_PUSH_APNS_PORT: String(apns.port),
      ROOST_PUSH_APNS_CA_FILE: join(tmp.dir, 'ca.pem'),
      ROOST_PUSH_FCM_SERVICE_ACCOUNT_FILE: join(tmp.dir, 'firebase.json'),
      ROOST_PUSH_FCM_ENDPOINT: fcm.url,
      ROOST_PUSH_FCM_CA_FILE: join(tmp.dir, 'ca.pem'),
    };
    const config = loadConfig(readConfigSources(env, []));
    const db = openPushDb(config.db);
    const identity = loadOrCreateRelayIdentity(config.db);
    const logs = makeLogger();
    const wake = createPushWake({ db, identity, config, log: logs.log, isOnline: () => false });
    try {
      expect(wake.describeWake()).toEqual({ enabled: true, kind: 29059, platforms: ['apns', 'fcm'] });
      wake.start();
      const agent = makeAgent();
      const apnsToken = makeApnsToken();
      const fcmToken = makeFcmToken();
      const reg = makeRegistrationEvent(agent, identity.pubkey, {
        channels: [
          { platform: 'apns', token: apnsToken, topic: 'org.example.roost', environment: 'production', mode: 'background' },
          { platform: 'fcm', token: fcmToken, mode: 'background' },
        ],
      });
      expect(wake.handleWakeRegistration(reg)).toEqual({ ok: true });
      wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 12);
      const deadline = Date.now() + 10_000;
      while (wake.stats().sent < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(apns.requests).toHaveLength(1);
      expect(apns.requests[0]).toMatchObject({ authorized: true, deviceToken: apnsToken });
      expect(fcm.requests).toHaveLength(1);
      expect(fcm.requests[0]!.message.token).toBe(fcmToken);
      expect(fcm.requests[0]!.headers.authorization).toBe(`Bearer ${fcm.issuedTokens[0]}`);
      expect(wake.stats()).toMatchObject({ queued: 1, sent: 2 });
      const text = logs.lines.join('');
      expect(text).not.toContain(apnsToken);
      expect(text).not.toContain(fcmToken);
    } finally {
      await wake.close();
      db.close();
      await apns.close();
      await fcm.close();
    }
  });

  test('bad push settings stop start-up with ROOST_ERR_PUSH_CONFIG', () => {
    const { log } = makeLogger();
    writeFileSync(join(tmp.dir, 'not-a-key.p8'), 'hello');
    const rsa = makeServiceAccount('x', 'http://127.0.0.1:1/token');
    writeFileSync(join(tmp.dir, 'rsa.p8'), rsa.json.private_key!);
    const cases = [
      { pushApnsKeyFile: join(tmp.dir, 'missing.p8'), pushApnsKeyId: 'K', pushApnsTeamId: 'T' },
      { pushApnsKeyFile: join(tmp.dir, 'not-a-key.p8'), pushApnsKeyId: 'K', pushApnsTeamId: 'T' },
      { pushApnsKeyFile: join(tmp.dir, 'rsa.p8'), pushApnsKeyId: 'K', pushApnsTeamId: 'T' },
      { pushApnsKeyFile: join(tmp.dir, 'rsa.p8') },
      { pushFcmAccessToken: 'x' },
      { pushFcmAccessToken: 'x', pushFcmProjectId: 'p', pushFcmEndpoint: 'ftp://127.0.0.1' },
      { pushFcmAccessToken: 'x', pushFcmProjectId: 'p', pushFcmEndpoint: 'http://127.0.0.1:9/v1' },
      { pushFcmServiceAccountFile: join(tmp.dir, 'not-a-key.p8') },
    ];
    for (const c of cases) {
      let code: string | undefined;
      try {
        createWakeSenders(loadConfig(c), log);
      } catch (err) {
        code = err instanceof RoostError ? err.code : String(err);
      }
      expect(code, JSON.stringify(c)).toBe('ROOST_ERR_PUSH_CONFIG');
    }
  });
});
