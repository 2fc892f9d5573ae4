import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApnsSigningKey, makeSelfSignedCert, startFakeApns, type FakeApns } from '../helpers/fake-apns.js';
import { makeKey, signEvent, type Key } from '../helpers/events.js';
import { fcmError, startFakeFcm, type FakeFcm } from '../helpers/fake-fcm.js';
import { spawnRelay, type RelayProcess } from '../helpers/process.js';
import { RawClient } from '../helpers/raw-client.js';
import { waitFor } from '../helpers/wait.js';
import { makeApnsToken, makeFcmToken, makeRegistrationEvent, makeTempDir } from '../relay/push/support.js';

// Issue 14.3: a stranger registers the victim's device token under the stranger's own key with a wrong topic.
// APNs refuses that send for good (DeviceTokenNotForTopic); the refusal must prune the stranger's registration only.
const tmp = makeTempDir();
afterAll(() => tmp.remove());

const TOPIC = 'org.example.agent';

describe('a refused push prunes only the registration that was sent', () => {
  const tls = makeSelfSignedCert();
  const signing = makeApnsSigningKey();
  let apns: FakeApns;
  let relay: RelayProcess;
  let relayPubkey: string;
  beforeAll(async () => {
    apns = await startFakeApns({ tls, publicKey: signing.publicKey, keyId: 'KEY1234567', teamId: 'TEAM123456' });
    // Apple's answers: a token belongs to one app (topic); any other topic is refused for good.
    apns.reply((req) => (req.headers['apns-topic'] === TOPIC ? { status: 200 } : { status: 400, body: { reason: 'DeviceTokenNotForTopic' } }));
    writeFileSync(join(tmp.dir, 'AuthKey.p8'), signing.p8);
    writeFileSync(join(tmp.dir, 'ca.pem'), tls.cert);
    relay = await spawnRelay({
      ROOST_DB: join(tmp.dir, 'push.db'),
      ROOST_PUSH_APNS_KEY_FILE: join(tmp.dir, 'AuthKey.p8'),
      ROOST_PUSH_APNS_KEY_ID: 'KEY1234567',
      ROOST_PUSH_APNS_TEAM_ID: 'TEAM123456',
      ROOST_PUSH_APNS_HOST: '127.0.0.1',
      ROOST_PUSH_APNS_PORT: String(apns.port),
      ROOST_PUSH_APNS_CA_FILE: join(tmp.dir, 'ca.pem'),
      ROOST_PUSH_MIN_INTERVAL_SECONDS: '0',
    });
    const info = await fetch(relay.url.replace('ws', 'http'), { headers: { accept: 'application/nostr+json' } });
    relayPubkey = ((await info.json()) as { pubkey: string }).pubkey;
  });
  afterAll(async () => {
    relay.child.kill('SIGTERM');
    await relay.exited;
    await apns.close();
  });

  async function register(agent: Key, token: string, topic: string): Promise<void> {
    const c = await RawClient.connect(relay.url);
    const reg = makeRegistrationEvent({ secretKey: agent.sk }, relayPubkey, {
      channels: [{ platform: 'apns', token, topic, environment: 'sandbox', mode: 'background' }],
    });
    expect(await c.publish(reg)).toEqual(['OK', reg.id, true, '']);
    c.close();
  }

  async function mail(to: Key): Promise<void> {
    const c = await RawClient.connect(relay.url);
    expect((await c.publish(signEvent(makeKey(), { kind: 1059, tags: [['p', to.pk]], content: 'sealed' })))[2]).toBe(true);
    c.close();
  }

  const sendsTo = (token: string, topic: string) => apns.requests.filter((r) => r.deviceToken === token && r.headers['apns-topic'] === topic).length;

  it("a stranger's wrong-topic registration of the victim's token does not stop the victim's wakes", async () => {
    const victim = makeKey();
    const stranger = makeKey();
    const token = makeApnsToken();
    await register(victim, token, TOPIC);
    await register(stranger, token, 'org.attacker.other');

    // The stranger gets mail: its wake goes to the victim's token with the wrong topic and is refused for good.
    await mail(stranger);
    await waitFor(() => sendsTo(token, 'org.attacker.other') === 1, "stranger's wake refused");
    await waitFor(() => relay.output().includes('pruned'), 'the refused registration pruned');

    // The victim's registration is untouched: its next mail still wakes its device.
    await mail(victim);
    await waitFor(() => sendsTo(token, TOPIC) === 1, "victim's wake sent", 10_000);

    // The stranger's own registration is gone: more mail to it sends nothing more.
    await mail(stranger);
    await new Promise((r) => setTimeout(r, 500));
    expect(sendsTo(token, 'org.attacker.other')).toBe(1);
  });
});

describe('FCM UNREGISTERED prunes only the registration that was sent', () => {
  let fcm: FakeFcm;
  let relay: RelayProcess;
  let relayPubkey: string;
  beforeAll(async () => {
    fcm = await startFakeFcm({ accessToken: 'fixed-token' });
    relay = await spawnRelay({
      ROOST_DB: join(tmp.dir, 'fcm.db'),
      ROOST_PUSH_FCM_ACCESS_TOKEN: 'fixed-token',
      ROOST_PUSH_FCM_PROJECT_ID: 'roost-test',
      ROOST_PUSH_FCM_ENDPOINT: fcm.url,
      ROOST_PUSH_MIN_INTERVAL_SECONDS: '0',
    });
    const info = await fetch(relay.url.replace('ws', 'http'), { headers: { accept: 'application/nostr+json' } });
    relayPubkey = ((await info.json()) as { pubkey: string }).pubkey;
  });
  afterAll(async () => {
    relay.child.kill('SIGTERM');
    await relay.exited;
    await fcm.close();
  });

  it("one owner's UNREGISTERED answer leaves another owner's registration of the same token to its own sends", async () => {
    const victim = makeKey();
    const stranger = makeKey();
    const token = makeFcmToken();
    for (const agent of [victim, stranger]) {
      const c = await RawClient.connect(relay.url);
      const reg = makeRegistrationEvent({ secretKey: agent.sk }, relayPubkey, { channels: [{ platform: 'fcm', token, mode: 'background' }] });
      expect(await c.publish(reg)).toEqual(['OK', reg.id, true, '']);
      c.close();
    }
    // The first send (the stranger's wake) is answered UNREGISTERED; later ones succeed.
    fcm.reply((req, i) =>
      i === 0
        ? fcmError(404, 'NOT_FOUND', 'Requested entity was not found.', 'UNREGISTERED')
        : { status: 200, body: { name: `projects/${req.projectId}/messages/${i}` } },
    );
    const mail = async (to: Key) => {
      const c = await RawClient.connect(relay.url);
      expect((await c.publish(signEvent(makeKey(), { kind: 1059, tags: [['p', to.pk]], content: 'sealed' })))[2]).toBe(true);
      c.close();
    };
    await mail(stranger);
    await waitFor(() => relay.output().includes('pruned'), 'the refused registration pruned');
    await mail(victim);
    await waitFor(() => fcm.requests.length === 2, "victim's wake sent", 10_000);
    await mail(stranger);
    await new Promise((r) => setTimeout(r, 500));
    expect(fcm.requests.filter((r) => r.message.token === token)).toHaveLength(2);
  });
});
