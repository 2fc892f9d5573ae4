import * as nip44 from 'nostr-tools/nip44';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { combineDiscovery, Identity, makeAgentCard, makeWakeRegistration, WAKE_REGISTRATION_KIND, type WakeChannel } from '../../client/node/index.js';
import { AGENT_CARD_D, AGENT_CARD_KIND, AGENT_HEARTBEAT_KIND, getHeartbeat, makeHeartbeat } from '../../shared/agent-card.js';
import type { NostrEvent } from '../../shared/event.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { startRecordingAgent, tempDir } from './helpers.js';

/** The relay side's payload schema (relay/push/registration.ts, issue 10), restated to check the client against it. */
const channelSchema = z.discriminatedUnion('platform', [
  z
    .object({
      platform: z.literal('apns'),
      token: z.string().regex(/^(?:[0-9a-fA-F]{2}){8,256}$/),
      topic: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/),
      environment: z.enum(['sandbox', 'production']),
      mode: z.enum(['background', 'alert']),
    })
    .strict(),
  z.object({ platform: z.literal('fcm'), token: z.string().regex(/^[A-Za-z0-9_:.-]{8,1024}$/), mode: z.enum(['background', 'alert']) }).strict(),
]);
const registrationSchema = z.object({ channels: z.array(channelSchema).max(10) }).strict();

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const APNS: WakeChannel = { platform: 'apns', token: 'ab'.repeat(32), topic: 'org.example.agent', environment: 'sandbox', mode: 'background' };
const FCM: WakeChannel = { platform: 'fcm', token: 'fcm-token:' + 'x'.repeat(40), mode: 'alert' };

/** A relay that takes wake registrations the way the push module does: a kind handler and a NIP-11 pubkey. */
async function wakeRelay(dir: string, sk: Uint8Array, port = 0): Promise<{ relay: TestRelay; seen: Array<{ author: string; payload: unknown }> }> {
  const relay = await startRelay({ port, db: `${dir}/roost.db` }, {}, dir);
  const seen: Array<{ author: string; payload: unknown }> = [];
  relay.relay.infoContributors.push(() => ({ pubkey: getPublicKey(sk) }));
  relay.relay.ctx.hooks.kindHandlers.set(WAKE_REGISTRATION_KIND, async (ev) => {
    const text = nip44.v2.decrypt(ev.content, nip44.v2.utils.getConversationKey(sk, ev.pubkey));
    const parsed = registrationSchema.safeParse(JSON.parse(text));
    if (!parsed.success) return { accepted: false, reason: 'invalid: bad registration' };
    seen.push({ author: ev.pubkey, payload: parsed.data });
    return { accepted: true, reason: '' };
  });
  return { relay, seen };
}

describe('push wake registration', () => {
  it('encrypts the exact payload to the relay pubkey and re-registers on every connect', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    // The relay keeps its identity across restarts (a key file beside its database).
    const relaySk = generateSecretKey();
    let { relay, seen } = await wakeRelay(t.dir, relaySk);
    const port = relay.port;
    cleanups.push(() => relay.close());
    const home = tempDir();
    cleanups.push(home.cleanup);
    const { agent } = await startRecordingAgent(home.dir, [relay.url]);
    cleanups.push(() => agent.close());
    await agent.whenConnected();
    const answers = await agent.registerWake([APNS, FCM]);
    expect(answers.map((a) => a.accepted)).toEqual([true]);
    expect(seen).toEqual([{ author: agent.pubkey, payload: { channels: [APNS, FCM] } }]);
    // Never stored: the relay intercepts it.
    expect(relay.relay.ctx.store.provides.syncReads!.query([{ kinds: [WAKE_REGISTRATION_KIND] }])).toEqual([]);

    await relay.close({ keep: true });
    const again = await wakeRelay(t.dir, relaySk, port);
    relay = again.relay;
    cleanups.push(() => again.relay.close());
    await waitFor(() => again.seen.length === 1, 're-registered after reconnect');
    expect(again.seen[0]!.payload).toEqual({ channels: [APNS, FCM] });

    await agent.removeWake();
    expect(again.seen[1]!.payload).toEqual({ channels: [] });
    void seen;
  });

  it('refuses malformed channels before anything is sent, without echoing the token', () => {
    const id = Identity.generate();
    const relayPk = getPublicKey(generateSecretKey());
    const bad = { ...APNS, token: 'not-hex-secret' };
    const err = (() => {
      try {
        makeWakeRegistration(id, relayPk, [bad], 1);
      } catch (e) {
        return e as Error & { code: string };
      }
    })();
    expect(err?.code).toBe('ROOST_ERR_BAD_INPUT');
    expect(err?.message).not.toContain('not-hex-secret');
    expect(() => makeWakeRegistration(id, relayPk, Array(11).fill(FCM), 1)).toThrow(expect.objectContaining({ code: 'ROOST_ERR_BAD_INPUT' }));
  });
});

describe('discovery presence rules', () => {
  const now = 1_800_000_000;
  const agent = Identity.generate();
  const card = agent.sign(makeAgentCard({ name: 'a', description: '', capabilities: ['x'], version: '1', relays: [] }, now - 1000));
  const beat = (status: 'online' | 'asleep' | 'offline', wake: boolean, age: number): NostrEvent =>
    agent.sign(makeHeartbeat({ status, interval: 60, wake }, now - age));
  const rows: Array<
    [name: string, beats: NostrEvent[], presence: Array<{ relay: string; online: Record<string, boolean> }>, expected: string, lastSeen: number]
  > = [
    ['relay says online', [beat('online', false, 5000)], [{ relay: 'r', online: { [agent.pubkey]: true } }], 'online', now],
    ['relay says offline beats a fresh heartbeat', [beat('online', false, 10)], [{ relay: 'r', online: { [agent.pubkey]: false } }], 'offline', now - 10],
    ['no relay answer, fresh heartbeat', [beat('online', false, 100)], [], 'online', now],
    ['no relay answer, stale heartbeat', [beat('online', false, 121)], [], 'offline', now - 121],
    ['asleep and wakeable', [beat('asleep', true, 3000)], [{ relay: 'r', online: { [agent.pubkey]: false } }], 'asleep', now - 3000],
    ['wake channel but signed off', [beat('offline', true, 3000)], [], 'offline', now - 3000],
    ['newest heartbeat wins', [beat('asleep', true, 50), beat('offline', false, 10)], [], 'offline', now - 10],
    ['no heartbeat: last seen is the card', [], [], 'offline', now - 1000],
  ];
  it.each(rows)('%s', (_name, beats, presence, expected, lastSeen) => {
    const [info] = combineDiscovery([card], beats, presence, ['x'], now);
    expect(info!.presence).toBe(expected);
    expect(info!.lastSeen).toBe(lastSeen);
  });

  it('needs every capability asked for', () => {
    expect(combineDiscovery([card], [], [], ['x', 'y'], now)).toEqual([]);
    expect(combineDiscovery([card], [], [], [], now)).toHaveLength(1);
  });
});

describe('replaceable versions the agent publishes (issue 17)', () => {
  it('start → registerWake → close, five times in a row: the stored heartbeat is the last one (asleep, wakeable)', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const { relay } = await wakeRelay(t.dir, generateSecretKey());
    cleanups.push(() => relay.close());
    const home = tempDir();
    cleanups.push(home.cleanup);
    for (let i = 0; i < 5; i++) {
      const { agent } = await startRecordingAgent(home.dir, [relay.url], { heartbeatSeconds: 60 });
      await agent.whenConnected();
      expect((await agent.registerWake([FCM])).map((a) => a.accepted)).toEqual([true]);
      await agent.close();
      const stored = relay.relay.ctx.store.provides.syncReads!.query([{ kinds: [AGENT_HEARTBEAT_KIND], authors: [agent.pubkey] }]);
      expect(stored.length).toBe(1);
      expect(getHeartbeat(JSON.parse(stored[0]!.raw) as NostrEvent)).toMatchObject({ status: 'asleep', wake: true });
    }
  });

  it('card updates in quick succession (and across a restart) store the last; a stale version is refused, a resend is not', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const relay = await startRelay({ port: 0, db: `${t.dir}/roost.db` }, {}, t.dir);
    cleanups.push(() => relay.close());
    const home = tempDir();
    cleanups.push(home.cleanup);
    const storedName = (pubkey: string) =>
      (
        JSON.parse(
          (JSON.parse(relay.relay.ctx.store.provides.syncReads!.query([{ kinds: [AGENT_CARD_KIND], authors: [pubkey] }])[0]!.raw) as NostrEvent).content,
        ) as {
          name: string;
        }
      ).name;
    let { agent } = await startRecordingAgent(home.dir, [relay.url]);
    await agent.whenConnected();
    for (let i = 0; i < 8; i++) {
      await agent.publishCard({ name: `v${i}`, description: 'd', capabilities: ['x'], version: '1' });
      expect(storedName(agent.pubkey)).toBe(`v${i}`);
    }
    await agent.close();
    ({ agent } = await startRecordingAgent(home.dir, [relay.url]));
    cleanups.push(() => agent.close());
    await agent.whenConnected();
    const res = await agent.publishCard({ name: 'after-restart', description: 'd', capabilities: ['x'], version: '1' });
    expect(storedName(agent.pubkey)).toBe('after-restart');
    // The same event again is a true duplicate: success.
    const sent = JSON.parse(relay.relay.ctx.store.provides.syncReads!.query([{ ids: [res.id] }])[0]!.raw) as NostrEvent;
    await expect(agent.publishSigned(sent)).resolves.toMatchObject({ id: res.id });
    // An older version is not the one stored: publish rejects, durable or not.
    const stale = { kind: AGENT_CARD_KIND, created_at: Math.floor(Date.now() / 1000) - 100, tags: [['d', AGENT_CARD_D]], content: '{}' };
    await expect(agent.publish(stale)).rejects.toMatchObject({ code: 'ROOST_ERR_REFUSED' });
    await expect(agent.publish(stale, { durable: false })).rejects.toMatchObject({ code: 'ROOST_ERR_REFUSED' });
    expect(storedName(agent.pubkey)).toBe('after-restart');
  });
});
