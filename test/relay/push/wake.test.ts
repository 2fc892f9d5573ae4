import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { loadConfig, type ConfigInput, type RelayConfig } from '../../../relay/config.js';
import { loadOrCreateRelayIdentity, type RelayIdentity } from '../../../relay/identity.js';
import { systemClock, type PushClock } from '../../../relay/push/types.js';
import { createPushWake, type PushWake } from '../../../relay/push/wake.js';
import { startFakeFcm, type FakeFcm } from '../../helpers/fake-fcm.js';
import { makeAddressedEvent, makeAgent, makeFcmToken, makeLogger, makeRegistrationEvent, makeTempDir, ManualClock, openPushDb } from './support.js';

const tmp = makeTempDir();
let fake: FakeFcm;

beforeAll(async () => {
  fake = await startFakeFcm({ accessToken: 'fixed-token' });
});

afterAll(async () => {
  await fake.close();
  tmp.remove();
});

function makeConfig(over: ConfigInput = {}): RelayConfig {
  return loadConfig({
    publicUrl: 'wss://relay.example',
    pushFcmAccessToken: 'fixed-token',
    pushFcmProjectId: 'p',
    pushFcmEndpoint: fake.url,
    pushMinIntervalSeconds: '0',
    ...over,
  });
}

let n = 0;
const online = new Set<string>();
const opened: Array<{ wake: PushWake; db: Database.Database }> = [];

function openRelay(options: { file?: string; config?: RelayConfig; clock?: ManualClock } = {}) {
  const file = options.file ?? join(tmp.dir, `wake-${++n}.db`);
  const db = openPushDb(file);
  const identity = loadOrCreateRelayIdentity(file);
  const clock = options.clock ?? new ManualClock();
  return openWith(file, db, identity, clock, options.config);
}

function openWith<C extends PushClock>(file: string, db: Database.Database, identity: RelayIdentity, clock: C, config?: RelayConfig) {
  const logs = makeLogger();
  const wake = createPushWake({ db, identity, config: config ?? makeConfig(), log: logs.log, isOnline: (pk) => online.has(pk), clock, random: () => 0.5 });
  opened.push({ wake, db });
  return { file, db, identity, clock, logs, wake };
}

function register(relay: { wake: PushWake; identity: RelayIdentity }, agent = makeAgent(), tokens = [makeFcmToken()]) {
  const ev = makeRegistrationEvent(agent, relay.identity.pubkey, { channels: tokens.map((token) => ({ platform: 'fcm', token, mode: 'background' })) });
  expect(relay.wake.handleWakeRegistration(ev)).toEqual({ ok: true });
  return agent;
}

beforeEach(() => {
  online.clear();
  fake.requests.length = 0;
  fake.reply(() => ({ status: 200, body: { name: 'm' } }));
});

afterEach(async () => {
  for (const r of opened.splice(0)) {
    await r.wake.close();
    r.db.close();
  }
});

describe('wake policy', () => {
  test('an agent with a live connection is not woken', async () => {
    const relay = openRelay();
    const agent = register(relay);
    online.add(agent.pubkey);
    relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(0);
    expect(relay.wake.stats()).toMatchObject({ queued: 0, pendingWakes: 0 });
  });

  test('an agent that connects before the wake goes out is not woken', async () => {
    const relay = openRelay({ config: makeConfig({ pushMinIntervalSeconds: '60' }) });
    const agent = register(relay);
    relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    await relay.wake.runDue();
    relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 2); // held by the interval
    online.add(agent.pubkey);
    relay.clock.advance(60_000);
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(1);
    expect(relay.wake.stats()).toMatchObject({ queued: 2, sent: 1, cancelled: 1, pendingWakes: 0 });
  });

  test('50 events for a sleeping agent give one wake, resuming from the first', async () => {
    const relay = openRelay();
    const agent = register(relay);
    for (let seq = 100; seq < 150; seq++) relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), seq);
    expect(relay.wake.stats()).toMatchObject({ queued: 1, pendingWakes: 1 });
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.message.data?.seq).toBe('100');
  });

  test('one wake reaches every device of the agent; an event tagging several agents wakes each once', async () => {
    const relay = openRelay();
    const a = register(relay, makeAgent(), [makeFcmToken(), makeFcmToken()]);
    const b = register(relay);
    const author = register(relay);
    relay.wake.onEventStored(makeAddressedEvent(author, [a.pubkey, b.pubkey, a.pubkey, author.pubkey, 'not-a-key']), 9);
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(3);
    expect(relay.wake.stats()).toMatchObject({ queued: 2, sent: 3 });
  });

  test('the minimum interval holds the next wake back, then sends it', async () => {
    const relay = openRelay({ config: makeConfig({ pushMinIntervalSeconds: '30' }) });
    relay.wake.start();
    const agent = register(relay);
    relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    await relay.wake.runDue();
    relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 2);
    relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 3);
    relay.clock.advance(29_999);
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(1);
    relay.clock.advance(1); // the armed timer fires and sends
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[1]!.message.data?.seq).toBe('2');
  });

  test('the per-agent hourly cap postpones wakes to the next window', async () => {
    const relay = openRelay({ config: makeConfig({ pushAgentWakesPerHour: '2' }) });
    const agent = register(relay);
    for (let i = 1; i <= 3; i++) {
      relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), i);
      await relay.wake.runDue();
      relay.clock.advance(1000);
    }
    expect(fake.requests).toHaveLength(2);
    expect(relay.wake.stats()).toMatchObject({ rateLimited: 1, pendingWakes: 1 });
    relay.clock.advance(3_600_000 - 3000);
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(3);
  });

  test('the global cap spreads sends over time', async () => {
    const relay = openRelay({ config: makeConfig({ pushGlobalSendsPerSecond: '2' }) });
    relay.wake.start();
    const agents = Array.from({ length: 5 }, () => register(relay));
    for (const a of agents) relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [a.pubkey]), 1);
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(2);
    relay.clock.advance(500);
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(3);
    relay.clock.advance(1000);
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(5);
  });

  test('requests in flight never exceed pushMaxInFlight', async () => {
    const slow = await startFakeFcm({ accessToken: 'fixed-token' });
    try {
      slow.reply(() => ({ status: 200, body: { name: 'm' }, delayMs: 50 }));
      const relay = openRelay({ config: makeConfig({ pushMaxInFlight: '3', pushFcmEndpoint: slow.url }) });
      const agents = Array.from({ length: 10 }, () => register(relay));
      for (const a of agents) relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [a.pubkey]), 1);
      await relay.wake.runDue();
      expect(slow.requests).toHaveLength(10);
      expect(slow.maxInFlight).toBe(3);
    } finally {
      await slow.close();
    }
  });

  test('pushes that can no longer be sent are skipped without holding back the ones behind them', async () => {
    const relay = openRelay({ config: makeConfig({ pushMaxInFlight: '1', pushGlobalSendsPerSecond: '1' }) });
    const agents = Array.from({ length: 4 }, () => makeAgent());
    const tokenOf = new Map<string, string>();
    for (const a of agents) {
      const token = makeFcmToken();
      tokenOf.set(a.pubkey, token);
      register(relay, a, [token]);
      relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [a.pubkey]), 1);
    }
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(1); // the global cap holds the other three
    const waiting = agents.filter((a) => tokenOf.get(a.pubkey) !== fake.requests[0]!.message.token);
    const kept = waiting.pop()!;
    // The other two move to new devices: their pending pushes now point at removed channels.
    for (const [i, a] of waiting.entries()) {
      const ev = makeRegistrationEvent(
        a,
        relay.identity.pubkey,
        { channels: [{ platform: 'fcm', token: makeFcmToken(), mode: 'background' }] },
        Math.floor(Date.now() / 1000) + 10 + i,
      );
      expect(relay.wake.handleWakeRegistration(ev)).toEqual({ ok: true });
    }
    relay.clock.advance(1000);
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[1]!.message.token).toBe(tokenOf.get(kept.pubkey));
    relay.clock.advance(1000);
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(2);
    expect(relay.wake.stats()).toMatchObject({ sent: 2, cancelled: 2, pendingDeliveries: 0 });
  });

  test('a wake queued before a restart (after OK, before sending) is sent by the next process', async () => {
    const first = openRelay();
    const agent = register(first);
    // The wake is queued in the transaction that stores the event; then the process dies: no close().
    first.db.transaction(() => first.wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 77))();
    first.db.close();
    opened.splice(opened.indexOf(opened.find((o) => o.wake === first.wake)!), 1);

    const second = openRelay({ file: first.file });
    expect(second.identity.pubkey).toBe(first.identity.pubkey);
    expect(second.wake.stats()).toMatchObject({ pendingWakes: 1 });
    second.wake.start();
    await second.wake.runDue();
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.message.data?.seq).toBe('77');
    await first.wake.close();
  });

  test('a push claimed by a process that died mid-send is sent again after its lease', async () => {
    const first = openRelay();
    const agent = register(first);
    fake.reply(() => ({ status: 200, body: { name: 'm' }, delayMs: 200 }));
    first.wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 5);
    const running = first.wake.runDue(); // claims the push, then "dies" with the request unanswered
    first.db.close();
    opened.splice(opened.indexOf(opened.find((o) => o.wake === first.wake)!), 1);
    await running.catch(() => undefined);
    await first.wake.close();
    fake.reply(() => ({ status: 200, body: { name: 'm' } }));
    const count = fake.requests.length;

    const second = openRelay({ file: first.file, clock: first.clock });
    await second.wake.runDue();
    expect(fake.requests).toHaveLength(count); // still leased
    second.clock.advance(60_000);
    await second.wake.runDue();
    expect(fake.requests).toHaveLength(count + 1);
  });

  test('an agent is not woken by its own events, and unregistered agents cost nothing', async () => {
    const relay = openRelay();
    const agent = register(relay);
    relay.wake.onEventStored(makeAddressedEvent(agent, [agent.pubkey, makeAgent().pubkey]), 1);
    await relay.wake.runDue();
    expect(fake.requests).toHaveLength(0);
    expect(relay.wake.stats().queued).toBe(0);
  });

  test('without credentials push wake is off, logged, described as off, and registrations are refused', async () => {
    const relay = openRelay({ config: loadConfig({}) });
    expect(relay.wake.describeWake()).toEqual({ enabled: false, kind: 29059, platforms: [] });
    expect(relay.logs.records().some((r) => r.push === 'off')).toBe(true);
    const ev = makeRegistrationEvent(makeAgent(), relay.identity.pubkey, { channels: [{ platform: 'fcm', token: makeFcmToken(), mode: 'background' }] });
    expect(relay.wake.handleWakeRegistration(ev)).toEqual({ ok: false, reason: 'restricted: fcm wake is not configured on this relay' });
    const on = openRelay();
    expect(on.wake.describeWake()).toEqual({ enabled: true, kind: 29059, platforms: ['fcm'] });
  });

  test('the timer sends on its own once started, with the real clock', async () => {
    const file = join(tmp.dir, `wake-${++n}.db`);
    const relay = openWith(file, openPushDb(file), loadOrCreateRelayIdentity(file), systemClock);
    const agent = register(relay);
    relay.wake.start();
    relay.wake.onEventStored(makeAddressedEvent(makeAgent(), [agent.pubkey]), 1);
    const deadline = Date.now() + 5000;
    while (fake.requests.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(fake.requests).toHaveLength(1);
  });
});
