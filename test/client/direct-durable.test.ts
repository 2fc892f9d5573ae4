import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createNodeAgent, type Agent } from '../../client/node/index.js';
import { loadNodeRtc } from '../../client/node/rtc.js';
import { MAX_UNRECORDED } from '../../client/messaging.js';
import * as direct from '../../client/transport/index.js';
import type { RtcFactory } from '../../client/transport/rtc.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { spawnScript } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';
import { buildNodeFixture } from './fixtures/build.js';
import { FAST_LINK, dmTexts, startRecordingAgent, tempDir } from './helpers.js';

// Direct messages survive a crash of either agent: the receiver records what it handled in its
// store before acknowledging, the sender parks each message in its store before it goes out over
// the link. Agents run as child processes where the test kills them with SIGKILL.
let childScript: string;
let rtc: RtcFactory;
beforeAll(async () => {
  childScript = await buildNodeFixture(join(process.cwd(), 'test/client/fixtures/direct-child.ts'), 'direct-child');
  rtc = await loadNodeRtc({ bindAddress: '127.0.0.1' });
});

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The most messages a receiver killed mid-burst may hand over twice (docs/direct.md). */
const REPEAT_BOUND = MAX_UNRECORDED;

const fastDirect = { pingIntervalMs: 200, deadAfterMs: 1500, connectTimeoutMs: 8000 };

function runChild(env: Record<string, string>) {
  const proc = spawnScript(childScript, env);
  cleanups.push(() => proc.child.kill('SIGKILL'));
  return proc;
}

/** Each text's number of occurrences, for those not exactly once. */
function notOnce(got: readonly string[], texts: readonly string[]): Record<string, number> {
  const count = new Map<string, number>(texts.map((t) => [t, 0]));
  for (const g of got) count.set(g, (count.get(g) ?? 0) + 1);
  return Object.fromEntries([...count].filter(([, n]) => n !== 1));
}

/**
 * A relay, Bob's receiving child (first life, with `firstEnv` on top of `bobEnv`) and Alice with a
 * direct link to him; `lines()` reads what Bob's handler wrote.
 */
async function startDirectPair(bobEnv: Record<string, string>, firstEnv: Record<string, string> = {}) {
  const relay: TestRelay = await startRelay();
  cleanups.push(() => relay.close());
  const bobHome = tempDir();
  const aliceHome = tempDir();
  cleanups.push(bobHome.cleanup, aliceHome.cleanup);
  const out = join(bobHome.dir, 'handled.txt');
  const env = { AGENT_HOME: bobHome.dir, RELAYS: relay.url, MODE: 'receive', OUT: out, ...bobEnv };
  const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : []);
  const first = runChild({ ...env, ...firstEnv });
  await waitFor(() => /ready [0-9a-f]{64}/.test(first.output()), 'bob ready', 15_000);
  const bob = /ready ([0-9a-f]{64})/.exec(first.output())![1]!;
  const alice = await startRecordingAgent(aliceHome.dir, [relay.url]);
  cleanups.push(() => alice.agent.close());
  alice.agent.enableDirect({ direct, rtc, transport: fastDirect });
  await alice.agent.whenConnected();
  await alice.agent.connectDirect(bob);
  return { env, lines, first, bob, alice };
}

describe('durable direct messages', () => {
  it('a receiver killed after handling messages it had not acknowledged hands none of them over again after restart', async () => {
    const N = 30;
    const K = 12;
    const texts = Array.from({ length: N }, (_, i) => `r${i}`);
    // Bob's first life withholds its acks and blocks inside the handler of message K+1.
    const { env, lines, first, bob, alice } = await startDirectPair({}, { BLOCK_AT: String(K), ACK_DELAY_MS: '600000' });

    const sends = texts.map((t) => alice.agent.send(bob, t));
    await waitFor(() => first.output().includes('blocked'), 'bob blocked in a handler', 15_000);
    expect(lines()).toEqual(texts.slice(0, K));
    // Bob's records are written within milliseconds of each handler's return; then he dies.
    await new Promise((r) => setTimeout(r, 300));
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe(null);

    // Alice saw no ack: the link dies and all N go through the relay, which Bob reads on restart.
    const paths = (await Promise.all(sends)).map((s) => s.path);
    expect(paths).toEqual(texts.map(() => 'relay'));
    const second = runChild(env);
    await waitFor(() => lines().length >= N, `bob handled all ${N}`, 20_000);
    await waitFor(() => alice.agent.outboxSize === 0, 'alice outbox drained');
    await new Promise((r) => setTimeout(r, 500)); // a late duplicate would show up here
    expect(notOnce(lines(), texts)).toEqual({});
    expect(lines()).toHaveLength(N);
    second.child.kill('SIGKILL');
  }, 60_000);

  it('a receiver with a synchronous handler SIGKILLed in the middle of a 2,000-message burst hands over at most a few twice (issue 25.2)', async () => {
    const N = 2000;
    const texts = Array.from({ length: N }, (_, i) => `b${i}`);
    // Bob dies by SIGKILL, sent by himself once his handler wrote about half the burst (from the
    // test's side the kill came too late on a loaded machine: he had handled all 2,000).
    const killAt = N / 2 + Math.floor(Math.random() * 100);
    const { env, lines, first, bob, alice } = await startDirectPair({ SYNC: '1' }, { KILL_AT: String(killAt) });
    // One burst, as an application sending 2,000 messages in a loop.
    const sends = texts.map((t) => alice.agent.send(bob, t));
    expect(await first.exited).toBe(null);
    expect(lines()).toHaveLength(killAt);

    await Promise.all(sends);
    const second = runChild(env);
    await waitFor(() => new Set(lines()).size >= N, `bob handled all ${N}`, 60_000);
    await waitFor(() => alice.agent.outboxSize === 0, 'alice outbox drained');
    await new Promise((r) => setTimeout(r, 500)); // a late duplicate would show up here
    const repeats = Object.values(notOnce(lines(), texts));
    expect(repeats.every((n) => n === 2)).toBe(true);
    expect(repeats.length).toBeLessThanOrEqual(REPEAT_BOUND);
    second.child.kill('SIGKILL');
  }, 120_000);

  it('a sender killed with messages unacknowledged on its direct link delivers them through the relay after restart', async () => {
    const relay: TestRelay = await startRelay();
    cleanups.push(() => relay.close());
    const bobHome = tempDir();
    const aliceHome = tempDir();
    cleanups.push(bobHome.cleanup, aliceHome.cleanup);
    const N = 40;
    const K = 15;
    const texts = Array.from({ length: N }, (_, i) => `s${i}`);
    const got: string[] = [];

    // Bob (in this process) handles K messages, then his handler never returns: the rest stay
    // unacknowledged on Alice's side.
    const bobAgent = (block: boolean): Agent => {
      const agent = createNodeAgent({ home: bobHome.dir, relays: [relay.url], heartbeatSeconds: 0, link: FAST_LINK });
      agent.enableDirect({ direct, rtc, transport: fastDirect });
      agent.onMessage(async (m) => {
        if (m.type !== 'dm') return;
        if (block && got.length === K) await new Promise(() => undefined);
        got.push(m.content);
      });
      return agent;
    };
    const bob1 = bobAgent(true);
    await bob1.start();
    await bob1.whenConnected();

    const aliceEnv = { AGENT_HOME: aliceHome.dir, RELAYS: relay.url };
    const alice = runChild({ ...aliceEnv, MODE: 'send', TO: bob1.pubkey, MESSAGES: texts.join('|') });
    await waitFor(() => alice.output().includes(`sent ${N}`), 'alice sent over the link', 20_000);
    await waitFor(() => got.length === K, 'bob handled the first messages', 15_000);
    // Alice's acknowledged messages leave her store; the others are parked there.
    const db = new BetterSqlite3(join(aliceHome.dir, 'agent.db'), { readonly: true });
    const parked = () => (db.prepare('SELECT count(*) AS n FROM parked').get() as { n: number }).n;
    await waitFor(() => parked() === N - K, 'alice released what bob acknowledged', 10_000);
    db.close();
    alice.child.kill('SIGKILL');
    expect(await alice.exited).toBe(null);
    // Bob too stops, with his handler stuck (as a crash inside it): that message is not recorded.
    await bob1.close();
    expect(got).toEqual(texts.slice(0, K));

    const again = runChild({ ...aliceEnv, MODE: 'drain' });
    await waitFor(() => again.output().includes('drained'), 'restarted alice published what she had parked', 20_000);
    // The parked messages went to the outbox; beside them may be Alice's own publications (card, relay
    // list, key event log) not yet acknowledged when she was killed or queued by her restart.
    const queued = Number(/outbox (\d+)/.exec(again.output())?.[1]);
    expect(queued).toBeGreaterThanOrEqual(N - K);
    expect(queued).toBeLessThanOrEqual(N - K + 3);
    const bob2 = bobAgent(false);
    cleanups.push(() => bob2.close());
    await bob2.start();
    await waitFor(() => got.length >= N, `bob has all ${N}`, 20_000);
    await bob2.inboxIdle();
    await new Promise((r) => setTimeout(r, 300));
    expect(notOnce(got, texts)).toEqual({});
    expect(got).toEqual(texts);
  }, 60_000);

  it('a message handed over directly is not handed over again when its relayed copy arrives after a restart without direct links', async () => {
    const relay: TestRelay = await startRelay();
    cleanups.push(() => relay.close());
    const aliceHome = tempDir();
    const bobHome = tempDir();
    cleanups.push(aliceHome.cleanup, bobHome.cleanup);
    const start = async (home: string, ackDelayMs?: number) => {
      const a = await startRecordingAgent(home, [relay.url]);
      a.agent.enableDirect({ direct, rtc, transport: { ...fastDirect, ackDelayMs } });
      await a.agent.whenConnected();
      return a;
    };
    const alice = await start(aliceHome.dir);
    cleanups.push(() => alice.agent.close());
    // Bob never acknowledges: every message he handles comes back through the relay.
    const bob = await start(bobHome.dir, 600_000);
    await alice.agent.connectDirect(bob.agent.pubkey);
    const sent = alice.agent.send(bob.agent.pubkey, 'once');
    await waitFor(() => dmTexts(bob.got).length === 1, 'bob handled it directly');
    await new Promise((r) => setTimeout(r, 100));
    await bob.agent.close();

    const paths = await sent;
    expect(paths.path).toBe('relay');
    const bobAgain = await startRecordingAgent(bobHome.dir, [relay.url]);
    cleanups.push(() => bobAgain.agent.close());
    await waitFor(() => bobAgain.agent.inboxCursor(relay.url) > 0, 'bob read the relayed copy');
    await bobAgain.agent.inboxIdle();
    expect(dmTexts(bobAgain.got)).toEqual([]);
    expect(dmTexts(bob.got)).toEqual(['once']);
  }, 30_000);
});
