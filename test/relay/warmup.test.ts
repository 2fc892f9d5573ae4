import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { makeKey, nowSeconds, signEvent } from '../helpers/events.js';
import { spawnRelay } from '../helpers/process.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { authenticate } from '../helpers/mailbox.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relayWithMail(): Promise<{ r: TestRelay; agent: ReturnType<typeof makeKey> }> {
  const r = await startRelay();
  cleanups.push(() => r.close());
  const agent = makeKey();
  // The agent is known to the mailbox (it authenticated once), then mail waits for it.
  const a = await RawClient.connect(r.url);
  await authenticate(a, agent, r.url);
  a.close();
  const sender = await RawClient.connect(r.url);
  const base = nowSeconds() - 100;
  for (let i = 0; i < 12; i++) {
    const ev = signEvent(makeKey(), { kind: 1, tags: [['p', agent.pk]], content: `mail ${i}`, created_at: base + i });
    const ok = await sender.publish(ev);
    expect(ok[2], String(ok[3])).toBe(true);
  }
  sender.close();
  return { r, agent };
}

describe('start-up warm-up (relay/warmup.ts)', () => {
  it("serves only its own agents: another local process that finds the warm-up's port is refused", async () => {
    const { r } = await relayWithMail();
    let foreign: Promise<string> | undefined;
    const report = await r.relay.warmUp(5_000, {
      maxAgents: 20,
      concurrency: 1,
      onListening: (port) => {
        foreign = new Promise((resolve) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}`);
          ws.on('open', () => resolve('open'));
          ws.on('unexpected-response', (_req, res) => resolve(`refused ${res.statusCode}`));
          ws.on('error', (err) => resolve(`error ${err.message}`));
        });
      },
    });
    expect(report.agents).toBe(20);
    expect(await foreign).toBe('refused 403');
  });

  it('serves synthetic agents through the real path and changes no state a client or operator can see', async () => {
    const { r } = await relayWithMail();
    const ctx = r.relay.ctx;
    const before = {
      backlog: await r.relay.mailbox!.backlog(),
      lastSeq: ctx.store.lastSeq(),
      reqs: ctx.stats.reqs,
      opened: ctx.stats.connectionsOpened,
      stored: ctx.stats.eventsStored,
    };
    const report = await r.relay.warmUp(5_000, { maxAgents: 40 });
    // It really ran: agents reached EOSE, some authenticated, and the stored mail was read and encoded.
    expect(report.agents).toBe(40);
    expect(report.authed).toBeGreaterThan(0);
    expect(report.events).toBeGreaterThan(0);
    expect(report.rows).toBeGreaterThan(0);
    // None of it shows: no AUTHed agent registered in the mailbox, no delivery recorded, no write, no
    // counter moved, no connection, subscription or online agent left behind.
    expect(await r.relay.mailbox!.backlog()).toEqual(before.backlog);
    expect(ctx.store.lastSeq()).toBe(before.lastSeq);
    expect(ctx.stats.reqs).toBe(before.reqs);
    expect(ctx.stats.connectionsOpened).toBe(before.opened);
    expect(ctx.stats.eventsStored).toBe(before.stored);
    expect(ctx.connections.size).toBe(0);
    expect(ctx.online.size).toBe(0);
    // The relay serves as before.
    const c = await RawClient.connect(r.url);
    cleanups.push(() => c.close());
    expect(await c.req('after', { kinds: [1], limit: 5 })).toHaveLength(5);
  });

  it('honours its budget: agents stop starting when it is spent, and a zero budget does nothing', async () => {
    const r = await startRelay();
    cleanups.push(() => r.close());
    // A clock that moves 1 ms each time it is read: the budget ends after a bounded number of reads, whatever
    // the machine's speed (maxAgents alone would run 100,000 agents).
    let t = 0;
    const report = await r.relay.warmUp(60, { maxAgents: 100_000, clock: () => t++ });
    expect(report.agents).toBeGreaterThan(0);
    expect(report.agents).toBeLessThanOrEqual(60);
    expect(await r.relay.warmUp(0)).toEqual({ agents: 0, authed: 0, events: 0, rows: 0, ms: 0 });
  });

  it('a relay process with an empty database warms up before it listens, then serves', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'roost-warmup-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const p = await spawnRelay({ ROOST_DB: join(dir, 'r.db'), ROOST_WARMUP_MS: '300' });
    cleanups.push(() => p.child.kill('SIGKILL'));
    const lines = p
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; agents?: number; rows?: number });
    const warm = lines.findIndex((l) => l.msg === 'warmed up');
    expect(warm).toBeGreaterThanOrEqual(0);
    expect(warm).toBeLessThan(lines.findIndex((l) => l.msg.startsWith('Roost relay listening')));
    expect(lines[warm]!.agents).toBeGreaterThan(0);
    expect(lines[warm]!.rows).toBe(0);
    const c = await RawClient.connect(p.url);
    cleanups.push(() => c.close());
    const key = makeKey();
    const ev = signEvent(key, { kind: 1, content: 'first' });
    expect((await c.publish(ev))[2]).toBe(true);
    const got = await c.req('s', { authors: [key.pk] });
    expect(
      got.map((e) => e.id),
      JSON.stringify(c.frames),
    ).toEqual([ev.id]);
  });
});
