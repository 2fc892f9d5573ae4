import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { getPublicKey } from 'nostr-tools/pure';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { loadConfig, type RelayConfig } from '../../../relay/config.js';
import { loadOrCreateRelayIdentity } from '../../../relay/identity.js';
import { createSharedPushWake, loadOrCreateSharedIdentity, queueWakesSql } from '../../../relay/push/postgres.js';
import { createPushWake } from '../../../relay/push/wake.js';
import { PostgresStore } from '../../../relay/store/postgres.js';
import type { NostrEvent } from '../../../shared/event.js';
import { createPgDatabase, stopPgServer } from '../../helpers/backends.js';
import { makeSelfSignedCert } from '../../helpers/fake-apns.js';
import { fcmError, makeServiceAccount, startFakeFcm, type FakeFcm, type FcmReply } from '../../helpers/fake-fcm.js';
import { postgresSkipReason } from '../../helpers/postgres.js';
import { makeAddressedEvent, makeAgent, makeFcmToken, makeLogger, makeRegistrationEvent, makeTempDir, ManualClock, openPushDb } from './support.js';

// The wake loop (relay/push/loop.ts) against the fake FCM HTTP/2 server, on each queue store: the
// relay's SQLite file and the PostgreSQL queue a cluster shares. The same cases run on both.
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
  await stopPgServer();
  tmp.remove();
});

/** What every case needs from a queue store: one wake service at a time, and the store's view of it. */
interface Harness {
  wake: { runDue(): Promise<void>; stats(): Record<string, number>; close(): Promise<void> };
  clock: ManualClock;
  logs: ReturnType<typeof makeLogger>;
  register(agent: ReturnType<typeof makeAgent>, token: string, mode?: 'background' | 'alert'): Promise<void>;
  /** Queues the wakes the store's write transaction queues for `event` stored at `seq`. */
  queue(event: NostrEvent, seq: number): Promise<void>;
  channelCount(): Promise<number>;
  /** Closes the wake service and opens a fresh one on an empty queue with `cfg`. */
  reopen(cfg: RelayConfig): Promise<void>;
  close(): Promise<void>;
}

const registration = (agent: ReturnType<typeof makeAgent>, relayPubkey: string, token: string, mode: 'background' | 'alert') =>
  makeRegistrationEvent(agent, relayPubkey, { channels: [{ platform: 'fcm', token, mode }] });

let n = 0;
async function sqliteHarness(): Promise<Harness> {
  let db: Database.Database;
  const h = {} as Harness & { open(cfg: RelayConfig): void };
  h.open = (cfg) => {
    const file = join(tmp.dir, `fcm-${++n}.db`);
    db = openPushDb(file);
    const identity = loadOrCreateRelayIdentity(file);
    h.clock = new ManualClock();
    h.logs = makeLogger();
    const wake = createPushWake({ db, identity, config: cfg, log: h.logs.log, isOnline: () => false, clock: h.clock, random: () => 0.5 });
    h.wake = wake as unknown as Harness['wake'];
    h.register = async (agent, token, mode = 'background') => {
      expect(wake.handleWakeRegistration(registration(agent, identity.pubkey, token, mode))).toEqual({ ok: true });
    };
    h.queue = async (event, seq) => wake.onEventStored(event, seq);
  };
  h.channelCount = async () => (db.prepare('SELECT count(*) AS n FROM push_channels').get() as { n: number }).n;
  h.close = async () => {
    await h.wake.close();
    db.close();
  };
  h.reopen = async (cfg) => {
    await h.close();
    h.open(cfg);
  };
  h.open(config);
  return h;
}

async function postgresHarness(): Promise<Harness> {
  // The store's own pool (its type parsers: counts as numbers), as the relay wires it.
  const store = await PostgresStore.open({ url: await createPgDatabase() });
  const pool: pg.Pool = store.pool;
  const secretKey = await loadOrCreateSharedIdentity(pool);
  const pubkey = getPublicKey(secretKey);
  const h = {} as Harness & { open(cfg: RelayConfig): Promise<void> };
  h.open = async (cfg) => {
    await pool.query('TRUNCATE push_owners, push_channels, push_wakes, push_deliveries, presence');
    h.clock = new ManualClock();
    h.logs = makeLogger();
    const wake = createSharedPushWake({ pool, secretKey, pubkey, config: cfg, log: h.logs.log, clock: h.clock, random: () => 0.5 });
    h.wake = wake as unknown as Harness['wake'];
    h.register = async (agent, token, mode = 'background') => {
      expect(await wake.handleWakeRegistration(registration(agent, pubkey, token, mode))).toEqual({ ok: true });
    };
    h.queue = async (event, seq) => {
      const owners = event.tags.filter((t) => t[0] === 'p').map((t) => t[1]!);
      await pool.query(queueWakesSql('unnest($1::text[], $2::bigint[]) AS x(owner, seq)', '$3', '$4'), [owners, owners.map(() => seq), h.clock.now(), 0]);
    };
  };
  h.channelCount = async () => (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM push_channels')).rows[0]!.n;
  h.reopen = async (cfg) => {
    await h.wake.close();
    await h.open(cfg);
  };
  h.close = async () => {
    await h.wake.close();
    await store.close();
  };
  await h.open(config);
  return h;
}

const pgSkip = postgresSkipReason();
if (pgSkip) console.warn(pgSkip);
const stores = [
  { name: 'SQLite', open: sqliteHarness, skip: undefined },
  { name: 'PostgreSQL', open: postgresHarness, skip: pgSkip },
];

describe.each(stores)('FCM wake through firebase-admin against a local HTTP server, queue on $name', ({ open, skip }) => {
  let h: Harness;
  beforeEach(async (ctx) => {
    if (skip) ctx.skip();
    h = await open();
    fake.requests.length = 0;
    fake.reply((req) => ({ status: 200, body: { name: `projects/${req.projectId}/messages/1` } }));
  }, 60_000);

  afterEach(async () => {
    await h?.close();
  });

  test('a wake is a data-only message with normal priority, a collapse key and a TTL, authorized via token_uri', async () => {
    const agent = makeAgent();
    const sender = makeAgent();
    const token = makeFcmToken();
    await h.register(agent, token);
    const event = makeAddressedEvent(sender, [agent.pubkey], 'the secret plan');
    await h.queue(event, 42);
    await h.wake.runDue();
    await h.wake.runDue();

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
    expect(h.wake.stats()).toMatchObject({ sent: 1, retried: 0, failed: 0, pruned: 0, pendingDeliveries: 0 });
    expect(h.logs.lines.join('')).not.toContain(token);
  });

  test('an alert wake carries the generic notification (ROOST_PUSH_ALERT_TITLE/BODY) and high Android priority, nothing of the event', async () => {
    const cfg = loadConfig({ ...config, pushAlertTitle: 'Agent mail', pushAlertBody: 'Something arrived' });
    await h.reopen(cfg);
    const agent = makeAgent();
    const sender = makeAgent();
    const token = makeFcmToken();
    await h.register(agent, token, 'alert');
    const event = makeAddressedEvent(sender, [agent.pubkey], 'the secret plan');
    await h.queue(event, 3);
    await h.wake.runDue();
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
    await h.register(agent, makeFcmToken(), 'background');
    await h.queue(makeAddressedEvent(makeAgent(), [agent.pubkey]), 4);
    await h.wake.runDue();
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
      await h.register(agent, makeFcmToken());
      fake.reply(() => c.reply);
      await h.queue(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
      await h.wake.runDue();
      h.clock.advance(3_600_000);
      await h.wake.runDue();
      expect(fake.requests).toHaveLength(1);
      expect(await h.channelCount()).toBe(c.pruned ? 0 : 1);
      expect(h.wake.stats()).toMatchObject(c.pruned ? { pruned: 1, failed: 0, retried: 0 } : { pruned: 0, failed: 1, retried: 0 });
      expect(h.wake.stats().pendingDeliveries).toBe(0);
    });
  }

  test('429 with Retry-After waits for the server, not for the (shorter) backoff', async () => {
    const agent = makeAgent();
    await h.register(agent, makeFcmToken());
    fake.reply((_req, i) =>
      i === 0
        ? { ...fcmError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded.', 'QUOTA_EXCEEDED'), headers: { 'retry-after': '120' } }
        : { status: 200, body: { name: 'm' } },
    );
    await h.queue(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    await h.wake.runDue();
    expect(fake.requests).toHaveLength(1);
    expect(h.wake.stats()).toMatchObject({ retried: 1, pendingDeliveries: 1 });
    h.clock.advance(119_999);
    await h.wake.runDue();
    expect(fake.requests).toHaveLength(1);
    h.clock.advance(1);
    await h.wake.runDue();
    expect(fake.requests).toHaveLength(2);
    expect(h.wake.stats()).toMatchObject({ retried: 1, sent: 1, pendingDeliveries: 0 });
    expect(await h.channelCount()).toBe(1);
  });

  test('under concurrency each send gets its own status and Retry-After', async () => {
    const agents = Array.from({ length: 8 }, () => makeAgent());
    const limited = new Set<string>();
    for (const [i, a] of agents.entries()) {
      const token = makeFcmToken();
      if (i % 2 === 0) limited.add(token);
      await h.register(a, token);
    }
    fake.reply((req, i) =>
      limited.has(req.message.token!) && i < 8
        ? { ...fcmError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded.', 'QUOTA_EXCEEDED'), headers: { 'retry-after': '60' }, delayMs: 5 * (i % 3) }
        : { status: 200, body: { name: 'm' }, delayMs: 5 * (i % 3) },
    );
    await h.queue(
      makeAddressedEvent(
        makeAgent(),
        agents.map((a) => a.pubkey),
      ),
      1,
    );
    await h.wake.runDue();
    expect(fake.requests).toHaveLength(8);
    expect(h.wake.stats()).toMatchObject({ sent: 4, retried: 4 });
    h.clock.advance(59_999);
    await h.wake.runDue();
    expect(fake.requests).toHaveLength(8);
    h.clock.advance(1);
    await h.wake.runDue();
    expect(
      fake.requests
        .slice(8)
        .map((r) => r.message.token)
        .sort(),
    ).toEqual([...limited].sort());
    expect(h.wake.stats()).toMatchObject({ sent: 8, retried: 4 });
  });

  for (const reply of [
    fcmError(500, 'INTERNAL', 'Internal error.', 'INTERNAL'),
    fcmError(503, 'UNAVAILABLE', 'The service is unavailable.', 'UNAVAILABLE'),
    fcmError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.'),
  ]) {
    test(`${reply.status} is retried by the relay only (firebase-admin's own retry is off)`, async () => {
      const agent = makeAgent();
      await h.register(agent, makeFcmToken());
      fake.reply((_req, i) => (i === 0 ? reply : { status: 200, body: { name: 'm' } }));
      await h.queue(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
      await h.wake.runDue();
      expect(fake.requests).toHaveLength(1);
      h.clock.advance(499);
      await h.wake.runDue();
      expect(fake.requests).toHaveLength(1);
      h.clock.advance(1);
      await h.wake.runDue();
      expect(fake.requests).toHaveLength(2);
      expect(h.wake.stats()).toMatchObject({ retried: 1, sent: 1, failed: 0 });
      expect(await h.channelCount()).toBe(1);
    });
  }

  test('a fixed access token over HTTPS with the configured CA', async () => {
    const tls = makeSelfSignedCert();
    writeFileSync(join(tmp.dir, 'fcm-ca.pem'), tls.cert);
    const secure = await startFakeFcm({ accessToken: 'fixed-token', tls });
    try {
      await h.reopen(
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
      await h.register(agent, token);
      await h.queue(makeAddressedEvent(makeAgent(), [agent.pubkey]), 5);
      await h.wake.runDue();
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
    await h.reopen(loadConfig({ ...config, pushFcmServiceAccountFile: join(tmp.dir, 'wrong-account.json') }));
    const agent = makeAgent();
    await h.register(agent, makeFcmToken());
    await h.queue(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    for (let i = 0; i < 4; i++) {
      await h.wake.runDue();
      h.clock.advance(config.pushRetryMaxMs);
    }
    expect(fake.requests).toHaveLength(0);
    expect(h.wake.stats()).toMatchObject({ sent: 0, retried: config.pushMaxAttempts - 1, failed: 1 });
    expect(await h.channelCount()).toBe(1);
  });

  test('5xx is retried with backoff, then given up after the attempts allowed', async () => {
    const agent = makeAgent();
    await h.register(agent, makeFcmToken());
    fake.reply(() => fcmError(503, 'UNAVAILABLE', 'The service is unavailable.', 'UNAVAILABLE'));
    await h.queue(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    for (let i = 0; i < 4; i++) {
      await h.wake.runDue();
      h.clock.advance(config.pushRetryMaxMs);
    }
    expect(fake.requests).toHaveLength(config.pushMaxAttempts);
    expect(h.wake.stats()).toMatchObject({ sent: 0, retried: config.pushMaxAttempts - 1, failed: 1, pendingDeliveries: 0 });
    expect(await h.channelCount()).toBe(1);
  });
});
