import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getPublicKey } from 'nostr-tools/pure';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { loadConfig, type RelayConfig } from '../../../relay/config.js';
import { createSharedPushWake, loadOrCreateSharedIdentity, QUEUE_WAKES_SQL, type SharedPushWake } from '../../../relay/push/postgres.js';
import { PostgresStore } from '../../../relay/store/postgres.js';
import { createPgDatabase } from '../../helpers/backends.js';
import { fcmError, makeServiceAccount, startFakeFcm, type FakeFcm, type FcmReply } from '../../helpers/fake-fcm.js';
import { postgresSkipReason } from '../../helpers/postgres.js';
import { makeAgent, makeFcmToken, makeLogger, makeRegistrationEvent, makeTempDir, ManualClock } from './support.js';

// The wake loop (relay/push/loop.ts) on the PostgreSQL queue against the fake FCM HTTP/2 server:
// the behaviours test/relay/push/fcm.test.ts checks on SQLite — the message, permanent errors, the
// server's Retry-After, backoff, per-send outcomes under concurrency, giving up — on the shared store.
const skip = postgresSkipReason();
if (skip) console.warn(skip);

const PROJECT = 'roost-test-project';

describe.skipIf(skip !== undefined)('FCM wake on the PostgreSQL queue', () => {
  const tmp = makeTempDir();
  let fake: FakeFcm;
  let config: RelayConfig;
  let store: PostgresStore;
  let pool: pg.Pool;
  let secretKey: Uint8Array;
  let clock: ManualClock;
  let wake: SharedPushWake;

  beforeAll(async () => {
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
    // The store's own pool (its type parsers: counts as numbers), as the relay wires it.
    store = await PostgresStore.open({ url: await createPgDatabase() });
    pool = store.pool;
    secretKey = await loadOrCreateSharedIdentity(pool);
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    await fake?.close();
    tmp.remove();
  });

  beforeEach(async () => {
    await pool.query('TRUNCATE push_owners, push_channels, push_wakes, push_deliveries, presence');
    clock = new ManualClock();
    wake = createSharedPushWake({ pool, secretKey, pubkey: getPublicKey(secretKey), config, log: makeLogger().log, clock, random: () => 0.5 });
    fake.requests.length = 0;
    fake.reply((req) => ({ status: 200, body: { name: `projects/${req.projectId}/messages/1` } }));
  });

  afterEach(async () => {
    await wake.close();
  });

  const register = async (agent: ReturnType<typeof makeAgent>, token: string) => {
    const ev = makeRegistrationEvent(agent, getPublicKey(secretKey), { channels: [{ platform: 'fcm', token, mode: 'background' }] });
    expect(await wake.handleWakeRegistration(ev)).toEqual({ ok: true });
  };
  /** What the store's write transaction runs for an event p-tagging `owners` at `seq`. */
  const queue = async (owners: string[], seq: number) => {
    await pool.query(QUEUE_WAKES_SQL, [owners, owners.map(() => seq), clock.now(), 0]);
  };
  const channelCount = async () => (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM push_channels')).rows[0]!.n;

  test('a wake is a data-only message with a collapse key and a TTL, sent once', async () => {
    const agent = makeAgent();
    const token = makeFcmToken();
    await register(agent, token);
    await queue([agent.pubkey], 42);
    await wake.runDue();
    await wake.runDue();
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.message).toEqual({
      token,
      data: { roost: '1', seq: '42', mode: 'background', relay: 'wss://relay.example' },
      android: { priority: 'normal', ttl: `${config.pushWakeTtlSeconds}s`, collapse_key: expect.stringMatching(/^roost-[0-9a-f]{32}$/) },
    });
    expect(wake.stats()).toMatchObject({ sent: 1, retried: 0, failed: 0, pruned: 0, pendingWakes: 0, pendingDeliveries: 0 });
  });

  const permanent: Array<{ name: string; reply: FcmReply; pruned: boolean }> = [
    { name: '404 UNREGISTERED', reply: fcmError(404, 'NOT_FOUND', 'Requested entity was not found.', 'UNREGISTERED'), pruned: true },
    {
      name: '400 INVALID_ARGUMENT naming another field',
      reply: fcmError(400, 'INVALID_ARGUMENT', "Invalid value at 'message.android.ttl'", 'INVALID_ARGUMENT'),
      pruned: false,
    },
  ];
  for (const c of permanent) {
    test(`${c.name}: token ${c.pruned ? 'pruned' : 'kept'}, no retry`, async () => {
      const agent = makeAgent();
      await register(agent, makeFcmToken());
      fake.reply(() => c.reply);
      await queue([agent.pubkey], 1);
      await wake.runDue();
      clock.advance(3_600_000);
      await wake.runDue();
      expect(fake.requests).toHaveLength(1);
      expect(await channelCount()).toBe(c.pruned ? 0 : 1);
      expect(wake.stats()).toMatchObject(c.pruned ? { pruned: 1, failed: 0, retried: 0 } : { pruned: 0, failed: 1, retried: 0 });
      expect(wake.stats().pendingDeliveries).toBe(0);
    });
  }

  test('429 with Retry-After waits for the server, not for the (shorter) backoff', async () => {
    const agent = makeAgent();
    await register(agent, makeFcmToken());
    fake.reply((_req, i) =>
      i === 0
        ? { ...fcmError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded.', 'QUOTA_EXCEEDED'), headers: { 'retry-after': '120' } }
        : { status: 200, body: { name: 'm' } },
    );
    await queue([agent.pubkey], 1);
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
  });

  test('under concurrency each send gets its own status and Retry-After', async () => {
    const agents = Array.from({ length: 8 }, () => makeAgent());
    const limited = new Set<string>();
    for (const [i, a] of agents.entries()) {
      const token = makeFcmToken();
      if (i % 2 === 0) limited.add(token);
      await register(a, token);
    }
    fake.reply((req, i) =>
      limited.has(req.message.token!) && i < 8
        ? { ...fcmError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded.', 'QUOTA_EXCEEDED'), headers: { 'retry-after': '60' }, delayMs: 5 * (i % 3) }
        : { status: 200, body: { name: 'm' }, delayMs: 5 * (i % 3) },
    );
    await queue(
      agents.map((a) => a.pubkey),
      1,
    );
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

  test('5xx is retried with backoff, then given up after the attempts allowed', async () => {
    const agent = makeAgent();
    await register(agent, makeFcmToken());
    fake.reply(() => fcmError(503, 'UNAVAILABLE', 'The service is unavailable.', 'UNAVAILABLE'));
    await queue([agent.pubkey], 1);
    for (let i = 0; i < 4; i++) {
      await wake.runDue();
      clock.advance(config.pushRetryMaxMs);
    }
    expect(fake.requests).toHaveLength(config.pushMaxAttempts);
    expect(wake.stats()).toMatchObject({ sent: 0, retried: config.pushMaxAttempts - 1, failed: 1, pendingDeliveries: 0 });
    expect(await channelCount()).toBe(1);
  });
});
