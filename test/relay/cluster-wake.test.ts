import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WakeHint, WakeSender, WakeTarget } from '../../relay/push/types.js';
import { createPgDatabase } from '../helpers/backends.js';
import { makeKey, signEvent } from '../helpers/events.js';
import { getKeyEvent, type KeyEvent, makeInception, makeRotation } from '../../shared/identity-log.js';
import { authenticate } from '../helpers/mailbox.js';
import { postgresSkipReason } from '../helpers/postgres.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { ManualClock, makeAgent, makeFcmToken, makeRegistrationEvent } from './push/support.js';

// Push wake across instances: the wake is queued in the transaction that stores the event, so it
// outlives every instance that saw it; three instances pump the one queue and it is sent once.
const skip = postgresSkipReason();
if (skip) console.warn(skip);

describe.skipIf(skip !== undefined)('cluster: push wake sent once by one instance', () => {
  let db: string;
  const relays: TestRelay[] = [];
  const sent: Array<{ instance: number; target: WakeTarget; hint: WakeHint }> = [];
  // The pumps run only when the test moves this clock (it starts at the real time: presence rows use it too).
  const clock = new ManualClock(Date.now());
  const senderOf = (instance: number): WakeSender => ({
    platform: 'fcm',
    async send(target, hint) {
      sent.push({ instance, target, hint });
      return { kind: 'sent' };
    },
    async close() {},
  });
  const start = async (instance: number) => {
    const r = await startRelay({ db, pushMinIntervalSeconds: 0 }, { push: { senders: { fcm: senderOf(instance) }, clock } });
    relays.push(r);
    return r;
  };
  /** Lets every instance pump a few times. */
  const pumpAll = async () => {
    for (let i = 0; i < 4; i++) {
      clock.advance(600);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  beforeAll(async () => {
    db = await createPgDatabase();
  }, 60_000);
  afterAll(async () => {
    for (const r of relays) await r.close();
  });

  it('wakes queued through A survive every instance; the next three send each exactly once', async () => {
    const [a, b, c] = [await start(0), await start(1), await start(2)];
    const info = async (t: TestRelay) =>
      (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { pubkey: string; wake: { enabled: boolean } };
    const relayKey = (await info(a)).pubkey;
    // One identity for the cluster: a registration encrypted to it is readable on every instance.
    expect((await info(b)).pubkey).toBe(relayKey);
    expect((await info(c)).wake.enabled).toBe(true);
    // Twenty sleeping agents, registered through B; one event through A addresses them all.
    const agents = Array.from({ length: 20 }, () => makeAgent());
    const cb = await RawClient.connect(b.url);
    for (const agent of agents) {
      const reg = makeRegistrationEvent(agent, relayKey, { channels: [{ platform: 'fcm', token: makeFcmToken(), mode: 'background' }] });
      expect((await cb.publish(reg))[2]).toBe(true);
    }
    cb.close();
    const agent = agents[0]!;
    const ca = await RawClient.connect(a.url);
    const dm = signEvent(makeKey(), { content: 'wake up', tags: agents.map((x) => ['p', x.pubkey]) });
    expect((await ca.publish(dm))[2]).toBe(true);
    ca.close();
    // Acknowledged, and nobody pumped: the wakes are on disk, in the shared database only.
    const check = new pg.Client({ connectionString: db });
    await check.connect();
    expect((await check.query('SELECT count(*)::int AS n FROM push_wakes')).rows[0].n).toBe(agents.length);
    for (const r of relays.splice(0)) await r.close();

    // Three fresh instances pump the one queue at once: each wake goes out once, by one of them.
    const next = [await start(3), await start(4), await start(5)];
    await pumpAll();
    await waitFor(() => sent.length >= agents.length, 'wakes sent');
    await pumpAll();
    expect(sent.length).toBe(agents.length);
    expect(new Set(sent.map((x) => x.target.token)).size).toBe(agents.length);
    expect(sent.every((x) => x.instance >= 3 && x.hint.seq > 0)).toBe(true);
    expect(
      (await check.query('SELECT count(*)::int AS n FROM push_wakes')).rows[0].n +
        (await check.query('SELECT count(*)::int AS n FROM push_deliveries')).rows[0].n,
    ).toBe(0);

    // Online on one instance: an event to it through another queues no wake.
    const agentKey = { sk: agent.secretKey, pk: agent.pubkey };
    const online = await RawClient.connect(next[2]!.url);
    await authenticate(online, agentKey, next[2]!.url);
    await waitFor(async () => (await check.query('SELECT 1 FROM presence WHERE pubkey = $1', [agent.pubkey])).rows.length === 1, 'presence row');
    const c0 = await RawClient.connect(next[0]!.url);
    expect((await c0.publish(signEvent(makeKey(), { content: 'you are here', tags: [['p', agent.pubkey]] })))[2]).toBe(true);
    await pumpAll();
    expect(sent.length).toBe(agents.length);
    expect((await check.query('SELECT count(*)::int AS n FROM push_wakes')).rows[0].n).toBe(0);
    c0.close();
    online.close();
    await check.end();
  }, 60_000);

  it('three instances pumping due pushes at the same moment claim each one once (FOR UPDATE SKIP LOCKED)', async () => {
    while (relays.length < 3) await start(6 + relays.length);
    const check = new pg.Client({ connectionString: db });
    await check.connect();
    const now = clock.now();
    const owners = Array.from({ length: 120 }, () => makeAgent().pubkey);
    const tokens = owners.map(() => makeFcmToken());
    await check.query('INSERT INTO push_owners (owner, event_created) SELECT unnest($1::text[]), 1', [owners]);
    await check.query(
      `INSERT INTO push_channels (owner, platform, token, mode, registered_at) SELECT o, 'fcm', t, 'background', $3 FROM unnest($1::text[], $2::text[]) AS x(o, t)`,
      [owners, tokens, now],
    );
    await check.query(
      `INSERT INTO push_deliveries (owner, platform, token, seq, queued_at, due_at) SELECT o, 'fcm', t, 1, $3, $3 FROM unnest($1::text[], $2::text[]) AS x(o, t)`,
      [owners, tokens, now],
    );
    sent.length = 0;
    await pumpAll();
    await waitFor(() => sent.length >= owners.length, 'pushes sent');
    await pumpAll();
    expect(sent.length).toBe(owners.length);
    expect(new Set(sent.map((x) => x.target.token)).size).toBe(owners.length);
    // Spread over the instances, not all taken by one.
    expect(new Set(sent.map((x) => x.instance)).size).toBeGreaterThan(1);
    await check.end();
  });

  it('a registration follows a rotation stored through another instance, once, and the new key is woken', async () => {
    while (relays.length < 3) await start(9 + relays.length);
    const [a, b] = relays as [TestRelay, TestRelay];
    const relayKey = ((await (await fetch(a.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { pubkey: string }).pubkey;
    const agent = makeAgent();
    const token = makeFcmToken();
    const ca = await RawClient.connect(a.url);
    expect((await ca.publish(makeRegistrationEvent(agent, relayKey, { channels: [{ platform: 'fcm', token, mode: 'background' }] })))[2]).toBe(true);
    const keys = { sk: agent.secretKey, pk: agent.pubkey };
    const next = makeKey();
    const inception = signEvent(keys, makeInception({ nextKey: next.pk }, Math.floor(Date.now() / 1000) - 10));
    expect((await ca.publish(inception))[2]).toBe(true);
    const cb = await RawClient.connect(b.url);
    const rotation = signEvent(
      next,
      makeRotation(
        { head: getKeyEvent(inception) as KeyEvent, currentSecretKey: agent.secretKey, newKey: next.pk, nextKey: makeKey().pk },
        Math.floor(Date.now() / 1000) - 5,
      ),
    );
    expect((await cb.publish(rotation))[2]).toBe(true);
    const check = new pg.Client({ connectionString: db });
    await check.connect();
    const channelsOf = async (owner: string) => (await check.query('SELECT token FROM push_channels WHERE owner = $1', [owner])).rows.map((r) => r.token);
    // Every instance sees the rotation; the registration is copied once.
    await waitFor(async () => (await channelsOf(next.pk)).length > 0, 'registration followed');
    await new Promise((r) => setTimeout(r, 300));
    expect(await channelsOf(next.pk)).toEqual([token]);
    const mine = () => sent.filter((x) => x.target.token === token);
    expect((await cb.publish(signEvent(makeKey(), { content: 'to the new key', tags: [['p', next.pk]] })))[2]).toBe(true);
    await pumpAll();
    await waitFor(() => mine().length >= 1, 'wake sent');
    await pumpAll();
    expect(mine()).toHaveLength(1);
    ca.close();
    cb.close();
    await check.end();
  });
});
