import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../../shared/event.js';
import { makeApnsSigningKey, makeSelfSignedCert, startFakeApns, type FakeApns } from '../../helpers/fake-apns.js';
import { makeKey, signEvent, type Key } from '../../helpers/events.js';
import { freePort, spawnRelay, type RelayProcess } from '../../helpers/process.js';
import { RawClient } from '../../helpers/raw-client.js';
import { waitFor } from '../../helpers/wait.js';
import { makeApnsToken, makeRegistrationEvent, makeTempDir } from './support.js';

// Push wake through a real relay process configured only by its environment, against a fake
// APNs (HTTP/2, TLS, provider-token checks) on 127.0.0.1.
const tmp = makeTempDir();
afterAll(() => tmp.remove());

async function authed(url: string, key: Key): Promise<RawClient> {
  const c = await RawClient.connect(url);
  const challenge = await c.challenge();
  const auth = signEvent(key, {
    kind: 22242,
    tags: [
      ['relay', url],
      ['challenge', challenge],
    ],
  });
  c.send(['AUTH', auth]);
  expect((await c.ok(auth.id))[2]).toBe(true);
  return c;
}

describe('push wake through the relay process', () => {
  const tls = makeSelfSignedCert();
  const signing = makeApnsSigningKey();
  let apns: FakeApns;
  let env: Record<string, string>;
  beforeAll(async () => {
    apns = await startFakeApns({ tls, publicKey: signing.publicKey, keyId: 'KEY1234567', teamId: 'TEAM123456' });
    writeFileSync(join(tmp.dir, 'AuthKey.p8'), signing.p8);
    writeFileSync(join(tmp.dir, 'ca.pem'), tls.cert);
    env = {
      ROOST_PUSH_APNS_KEY_FILE: join(tmp.dir, 'AuthKey.p8'),
      ROOST_PUSH_APNS_KEY_ID: 'KEY1234567',
      ROOST_PUSH_APNS_TEAM_ID: 'TEAM123456',
      ROOST_PUSH_APNS_HOST: '127.0.0.1',
      ROOST_PUSH_APNS_PORT: String(apns.port),
      ROOST_PUSH_APNS_CA_FILE: join(tmp.dir, 'ca.pem'),
      ROOST_PUSH_MIN_INTERVAL_SECONDS: '30',
      ROOST_PUSH_RETRY_BASE_MS: '100',
    };
  });
  afterAll(async () => apns.close());

  async function register(relay: RelayProcess, agent: Key, token: string): Promise<void> {
    const info = (await (await fetch(relay.url.replace('ws', 'http'), { headers: { accept: 'application/nostr+json' } })).json()) as {
      pubkey: string;
      wake: { enabled: boolean };
    };
    expect(info.wake.enabled).toBe(true);
    const c = await RawClient.connect(relay.url);
    const reg = makeRegistrationEvent({ secretKey: agent.sk }, info.pubkey, {
      channels: [{ platform: 'apns', token, topic: 'org.example.agent', environment: 'sandbox', mode: 'background' }],
    });
    expect(await c.publish(reg)).toEqual(['OK', reg.id, true, '']);
    c.close();
  }

  it('wakes a sleeping agent once, content-free, and the agent backfills the message from its cursor', async () => {
    const relay = await spawnRelay({ ...env, ROOST_DB: join(tmp.dir, 'e2e.db') });
    const agent = makeKey();
    const peer = makeKey();
    const token = makeApnsToken();
    await register(relay, agent, token);
    // The agent reads its inbox, notes its cursor, then sleeps.
    const before = await authed(relay.url, agent);
    before.send(['REQ', 'inbox', { '#p': [agent.pk], seq_after: 0 }]);
    const cursor = ((await before.eose('inbox'))[2] as { cursor: number }).cursor;
    // While it is connected, messages do not wake it.
    const p = await RawClient.connect(relay.url);
    await p.publish(signEvent(peer, { tags: [['p', agent.pk]], content: 'while awake' }));
    await new Promise((r) => setTimeout(r, 300));
    expect(apns.requests.filter((r) => r.deviceToken === token)).toHaveLength(0);
    before.close();
    await new Promise((r) => setTimeout(r, 100));
    // Asleep: fifty messages give one wake.
    const sent: NostrEvent[] = [];
    for (let i = 0; i < 50; i++) {
      const e = signEvent(peer, { kind: 1059, tags: [['p', agent.pk]], content: `sealed ${i}` });
      sent.push(e);
      p.send(['EVENT', e]);
    }
    await Promise.all(sent.map((e) => p.ok(e.id)));
    await waitFor(() => apns.requests.some((r) => r.deviceToken === token), 'wake pushed');
    await new Promise((r) => setTimeout(r, 500));
    const wakes = apns.requests.filter((r) => r.deviceToken === token);
    expect(wakes).toHaveLength(1);
    const w = wakes[0]!;
    expect(w.authorized).toBe(true);
    expect(w.headers['apns-push-type']).toBe('background');
    expect(w.headers['apns-priority']).toBe('5');
    expect(w.headers['apns-topic']).toBe('org.example.agent');
    expect(w.headers['apns-collapse-id']).toBeTruthy();
    const body = JSON.stringify(w.body);
    expect(body).not.toContain('sealed');
    expect(body).not.toContain(peer.pk);
    expect((w.body as { aps: Record<string, unknown> }).aps['content-available']).toBe(1);
    // Woken, the agent backfills from its cursor and reads exactly what it missed.
    const after = await authed(relay.url, agent);
    after.send(['REQ', 'inbox', { '#p': [agent.pk], seq_after: cursor }]);
    await after.eose('inbox');
    const got = after.of('EVENT', 'inbox').map((f) => (f[2] as NostrEvent).content);
    expect(got).toEqual(['while awake', ...sent.map((e) => e.content)]);
    after.close();
    p.close();
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  });

  it('still sends a wake queued before a SIGKILL, after restart', async () => {
    // APNs is unreachable at first, so the wake cannot leave before the crash.
    const downPort = await freePort();
    const db = join(tmp.dir, 'crash.db');
    const crashEnv = { ...env, ROOST_DB: db, ROOST_PUSH_APNS_PORT: String(downPort) };
    const relay = await spawnRelay(crashEnv);
    const agent = makeKey();
    const token = makeApnsToken();
    await register(relay, agent, token);
    const p = await RawClient.connect(relay.url);
    expect((await p.publish(signEvent(makeKey(), { tags: [['p', agent.pk]], content: 'urgent' })))[2]).toBe(true);
    // Let the first attempt fail and its retry be recorded; a crash in the middle of a send would
    // instead hold the wake for its lease (twice the request timeout) before it is sent again.
    await waitFor(() => relay.output().includes('wake will be retried'), 'first attempt failed');
    await new Promise((r) => setTimeout(r, 300));
    relay.child.kill('SIGKILL');
    await relay.exited;
    // A fake APNs comes up on that port; the restarted relay sends the wake it had queued.
    const revived = await startFakeApns({ tls, publicKey: signing.publicKey, keyId: 'KEY1234567', teamId: 'TEAM123456', port: downPort });
    const again = await spawnRelay(crashEnv);
    await waitFor(() => revived.requests.some((r) => r.deviceToken === token), 'wake after restart', 15_000);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
    await revived.close();
  });
});
