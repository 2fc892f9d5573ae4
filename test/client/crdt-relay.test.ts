import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Identity, createNodeAgent, type Agent, type AgentDoc } from '../../client/node/index.js';
import { makeDocAddress, makeUpdateEvent } from '../../client/crdt/wire.js';
import { createSharedDoc } from '../../client/crdt/shared-doc.js';
import { SqliteAgentStore } from '../../client/node/sqlite-store.js';
import { KeyValueStore, MemoryStore } from '../../client/store.js';
import type { SqliteStore } from '../../relay/store/sqlite.js';
import { startCuttableProxy } from '../helpers/cuttable-proxy.js';
import { createRng } from '../helpers/prng.js';
import { startRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { FAST_LINK, tempDir } from './helpers.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An agent living in `home` (key file + SQLite store), started; restarting = a new one on the same home (maybe offline). */
async function startAgent(home: string, relay: string, keyRing?: boolean): Promise<Agent> {
  const agent = createNodeAgent({
    home,
    relays: [relay],
    heartbeatSeconds: 0,
    inbox: false,
    link: FAST_LINK,
    outbox: { retryBaseMs: 50, retryMaxMs: 400 },
    keyRing,
  });
  await agent.start({ waitForRelay: false });
  return agent;
}

/** One random edit through the typed API (what agents share: status, a task board, a peer set, trust). */
function randomEdit(doc: AgentDoc, rng: ReturnType<typeof createRng>, tag: string): void {
  const k = rng.int(0, 9);
  const r = rng.next();
  if (r < 0.3) doc.status().set(rng.pick(['mood', 'energy', 'focus']), `${tag}-${k}`);
  else if (r < 0.55) doc.map('tasks').set(`task-${k}`, { state: rng.pick(['todo', 'doing', 'done']), by: tag });
  else if (r < 0.62) doc.map('tasks').delete(`task-${k}`);
  else if (r < 0.8) rng.chance(0.6) ? doc.set('peers').add(`peer-${k}`) : doc.set('peers').remove(`peer-${k}`);
  else doc.counters('trust').increment(`peer-${k}`, rng.int(1, 3));
}

const json = (d: AgentDoc) => JSON.stringify(d.toJSON());

/** A logger that keeps every line (tests read them back as objects). */
function capturingLog() {
  const lines: Array<Record<string, unknown> & { msg?: string }> = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, ...obj, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('shared documents over the relay (real relay, real agents, SQLite homes)', () => {
  it('converges while agents edit offline, restart on the same home, and a newcomer joins after a snapshot', async () => {
    const relay = await startRelay({ crdtCompactionGraceSeconds: 0 });
    cleanups.push(() => relay.close());
    const proxyA = await startCuttableProxy(relay.port);
    cleanups.push(() => proxyA.close());
    const homes = Object.fromEntries(['o', 'a', 'b', 'c'].map((n) => [n, tempDir(`roost-doc-${n}-`)]));
    for (const h of Object.values(homes)) cleanups.push(h.cleanup);
    const rng = createRng(5);

    // O owns the board and connects directly; A reads the same relay through a proxy that can cut it
    // off; B restarts; C joins late.
    let o = await startAgent(homes.o!.dir, relay.url);
    let a = await startAgent(homes.a!.dir, proxyA.url);
    let b = await startAgent(homes.b!.dir, relay.url);
    const agents = () => [o, a, b];
    cleanups.push(() => Promise.all(agents().map((x) => x.close())));
    const owner = o.pubkey;
    let od = await o.doc('board', { members: [a.pubkey, b.pubkey], enforce: true });
    let ad = await a.doc('board', { owner });
    let bd = await b.doc('board', { owner: o.npub });
    expect(od.address).toBe(makeDocAddress(owner, 'board'));
    expect(await Promise.all([od, ad, bd].map((d) => d.whenSynced()))).toEqual([true, true, true]);
    expect(ad.canWrite && bd.canWrite && ad.enforced).toBe(true);

    // Phase 1: everyone online.
    for (let i = 0; i < 30; i++) randomEdit(rng.pick([od, ad, bd]), rng, `p1-${i}`);
    await waitFor(() => json(od) === json(ad) && json(ad) === json(bd), 'phase 1 convergence');

    // Phase 2: A goes offline and keeps editing; B restarts (new agent object, same home) mid-way.
    proxyA.cut();
    await waitFor(() => a.connectedRelays.length === 0, 'A offline');
    ad.status().set('offline-note', 'written while cut off');
    for (let i = 0; i < 20; i++) randomEdit(rng.pick([od, ad, bd]), rng, `p2-${i}`);
    await b.close();
    b = await startAgent(homes.b!.dir, relay.url);
    bd = await b.doc('board', { owner });
    expect(bd.cursor(relay.url)).toBeGreaterThan(0);
    expect(bd.status().size).toBeGreaterThan(0);
    for (let i = 0; i < 20; i++) randomEdit(rng.pick([od, ad, bd]), rng, `p2b-${i}`);

    // Phase 3: A restarts while still offline: its state and its unsent deltas come back from its home.
    const offlineJson = json(ad);
    await a.close();
    a = await startAgent(homes.a!.dir, proxyA.url);
    expect(a.outboxSize).toBeGreaterThan(0);
    ad = await a.doc('board', { owner });
    expect(json(ad)).toBe(offlineJson);
    ad.map('tasks').set('offline-after-restart', { state: 'todo', by: 'a' });
    for (let i = 0; i < 10; i++) randomEdit(ad, rng, `p3-${i}`);

    // Phase 4: the owner compacts: a snapshot, after which the relay expires the deltas it covers.
    await waitFor(() => json(od) === json(bd), 'O and B agree');
    await od.flush();
    await od.publishSnapshot();
    await relay.relay.sharedDocs.idle();
    expect(relay.relay.sharedDocs.stats().deltasExpired).toBeGreaterThan(0);

    // Phase 5: A comes back; the deltas it missed are partly gone, the snapshot covers them.
    proxyA.restore();
    await waitFor(() => a.outboxSize === 0, 'A outbox drained', 15_000);
    await waitFor(() => json(od) === json(ad) && json(ad) === json(bd), 'phase 5 convergence', 15_000);
    expect(od.status(a.pubkey).get('offline-note')).toBe('written while cut off');
    expect(bd.map('tasks').get('offline-after-restart')).toEqual({ state: 'todo', by: 'a' });

    // Phase 6: O adds C; C joins from the snapshot plus the deltas after it, and writes.
    const cId = Identity.generate();
    od.setMembers([a.pubkey, b.pubkey, cId.pubkey]);
    const cLog = capturingLog();
    const c = createNodeAgent({ home: homes.c!.dir, identity: cId, relays: [relay.url], heartbeatSeconds: 0, inbox: false, link: FAST_LINK, log: cLog });
    cleanups.push(() => c.close());
    await c.start();
    const cd = await c.doc('board', { owner });
    expect(await cd.whenSynced()).toBe(true);
    await waitFor(() => cd.canWrite, 'C sees its membership');
    // It loaded the owner's snapshot and resumed the relay after it, without reading the covered deltas.
    expect(cLog.lines.find((l) => l.msg === 'resuming after a snapshot')).toMatchObject({ author: owner, relay: relay.url });
    cd.status().set('joined', true);
    await waitFor(() => [od, ad, bd].every((d) => json(d) === json(cd)), 'final convergence', 15_000);
    for (const d of [od, ad, bd, cd]) expect(d.hasPending()).toBe(false);
    for (const d of [ad, bd, cd]) expect(Buffer.from(d.stateVector()).equals(Buffer.from(od.stateVector()))).toBe(true);

    // Every agent restarts once more: what each saved is what it had.
    const before = json(od);
    for (const [name, x] of [
      ['o', o],
      ['a', a],
      ['b', b],
    ] as const) {
      await x.close();
      const again = await startAgent(homes[name]!.dir, name === 'a' ? proxyA.url : relay.url);
      const d = await again.doc('board', { owner });
      expect(json(d)).toBe(before);
      if (name === 'o') {
        o = again;
        od = d;
      } else if (name === 'a') a = again;
      else b = again;
    }
  }, 45_000);

  it("relay-enforced: a stranger's delta is refused by the relay and its replica is read-only", async () => {
    const relay = await startRelay();
    cleanups.push(() => relay.close());
    const homes = [tempDir(), tempDir(), tempDir()];
    for (const h of homes) cleanups.push(h.cleanup);
    const o = await startAgent(homes[0]!.dir, relay.url);
    const m = await startAgent(homes[1]!.dir, relay.url);
    const s = await startAgent(homes[2]!.dir, relay.url);
    cleanups.push(() => Promise.all([o, m, s].map((x) => x.close())));
    const od = await o.doc('ops', { members: [m.pubkey], enforce: true });
    const md = await m.doc('ops', { owner: o.pubkey });
    const sd = await s.doc('ops', { owner: o.pubkey });
    await Promise.all([od.whenSynced(), md.whenSynced(), sd.whenSynced()]);
    await waitFor(() => md.canWrite, 'member sees the record');
    expect(sd.canWrite).toBe(false);
    expect(() => sd.map('x').set('k', 1)).toThrow(expect.objectContaining({ code: 'ROOST_ERR_CRDT_READ_ONLY' }));

    // The stranger crafts a real delta and publishes it through its agent: the relay refuses it.
    const raw = createSharedDoc({ docId: od.address, self: s.pubkey, membership: { owner: s.pubkey } });
    let template!: ReturnType<typeof makeUpdateEvent>;
    raw.connect({ publish: (u, meta) => (template = makeUpdateEvent(od.address, u, meta.clock, Math.floor(Date.now() / 1000))) });
    raw.map('x').set('k', 'forged');
    const refused = await s.publish(template).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ROOST_ERR_REFUSED', prefix: 'restricted' });

    md.map('x').set('k', 'member');
    await waitFor(() => od.map('x').get('k') === 'member' && sd.map('x').get('k') === 'member', 'member write reaches all');
    const stored = (relay.relay.ctx.store as SqliteStore).db.prepare('SELECT count(*) FROM events WHERE kind = 4337 AND pubkey = ?').pluck().get(s.pubkey);
    expect(stored).toBe(0);
  });

  it("fetches a new member's earlier deltas again once the owner adds it (they were refused before)", async () => {
    const relay = await startRelay();
    cleanups.push(() => relay.close());
    const homes = [tempDir(), tempDir(), tempDir()];
    for (const h of homes) cleanups.push(h.cleanup);
    const o = await startAgent(homes[0]!.dir, relay.url);
    const r = await startAgent(homes[1]!.dir, relay.url);
    const m = await startAgent(homes[2]!.dir, relay.url);
    cleanups.push(() => Promise.all([o, r, m].map((x) => x.close())));
    const od = await o.doc('notes', { members: [] });
    const rd = await r.doc('notes', { owner: o.pubkey });
    od.map('x').set('owner', 1);
    await waitFor(() => rd.map('x').get('owner') === 1, 'reader caught up');
    const rejected: string[] = [];
    expect(rd.cursor(relay.url)).toBeGreaterThan(0);

    // M writes before it is a member (the record is not enforced, so the relay stores the delta).
    const raw = createSharedDoc({ docId: od.address, self: m.pubkey, membership: { owner: m.pubkey } });
    let template!: ReturnType<typeof makeUpdateEvent>;
    raw.connect({ publish: (u, meta) => (template = makeUpdateEvent(od.address, u, meta.clock, Math.floor(Date.now() / 1000))) });
    raw.map('x').set('early', 'from m');
    await m.publish(template);
    const lateHome = tempDir();
    cleanups.push(lateHome.cleanup);
    // No key event log: its inception would be one more stored event past the reader's cursor.
    const rLate = await startAgent(lateHome.dir, relay.url, false);
    cleanups.push(() => rLate.close());
    const lateDoc = await rLate.doc('notes', { owner: o.pubkey, onReject: (reason) => rejected.push(reason) });
    await lateDoc.whenSynced();
    expect(rejected.some((x) => x.startsWith('blocked:'))).toBe(true);
    await waitFor(() => rd.cursor(relay.url) >= lateDoc.cursor(relay.url), 'reader passed the early delta');
    expect(rd.map('x').get('early')).toBeUndefined();

    od.setMembers([m.pubkey]);
    await waitFor(() => [od, rd, lateDoc].every((d) => d.map('x').get('early') === 'from m'), 'backfilled everywhere');
  });

  it('syncs through two relays; one cut off meanwhile gets every delta later from the outboxes', async () => {
    const r1 = await startRelay();
    const r2 = await startRelay();
    cleanups.push(
      () => r1.close(),
      () => r2.close(),
    );
    const p1 = await startCuttableProxy(r1.port);
    cleanups.push(() => p1.close());
    const homes = [tempDir(), tempDir(), tempDir()];
    for (const h of homes) cleanups.push(h.cleanup);
    const start2 = async (home: string, relays: string[]) => {
      const agent = createNodeAgent({ home, relays, heartbeatSeconds: 0, inbox: false, link: FAST_LINK, outbox: { retryBaseMs: 50, retryMaxMs: 400 } });
      await agent.start();
      cleanups.push(() => agent.close());
      return agent;
    };
    const a = await start2(homes[0]!.dir, [p1.url, r2.url]);
    const b = await start2(homes[1]!.dir, [p1.url, r2.url]);
    const ad = await a.doc('two', { members: [b.pubkey] });
    const bd = await b.doc('two', { owner: a.pubkey });
    await waitFor(() => bd.canWrite, 'B is a member');
    const rng = createRng(9);
    p1.cut();
    for (let i = 0; i < 20; i++) randomEdit(rng.pick([ad, bd]), rng, `cut-${i}`);
    await waitFor(() => json(ad) === json(bd), 'converged through the second relay');
    p1.restore();
    await waitFor(() => a.outboxSize === 0 && b.outboxSize === 0, 'outboxes drained to the first relay', 15_000);
    // A reader of the first relay only: everything arrived there too.
    const c = await start2(homes[2]!.dir, [r1.url]);
    const cd = await c.doc('two', { owner: a.pubkey });
    await waitFor(() => json(cd) === json(ad), 'reader of the first relay converges');
  });

  it('a relay whose history was reset (empty database, same address) is read again from 0 and given a snapshot', async () => {
    let relay = await startRelay();
    const port = relay.port;
    const homes = [tempDir(), tempDir(), tempDir()];
    for (const h of homes) cleanups.push(h.cleanup);
    const o = await startAgent(homes[0]!.dir, relay.url);
    const m = await startAgent(homes[1]!.dir, relay.url);
    cleanups.push(() => Promise.all([o, m].map((x) => x.close())));
    const od = await o.doc('reset', { members: [m.pubkey] });
    const md = await m.doc('reset', { owner: o.pubkey });
    await waitFor(() => md.canWrite, 'member');
    const rng = createRng(3);
    for (let i = 0; i < 20; i++) randomEdit(rng.pick([od, md]), rng, `before-${i}`);
    await waitFor(() => json(od) === json(md) && o.outboxSize === 0 && m.outboxSize === 0, 'converged before the reset');
    const url = relay.url;
    expect(od.cursor(url)).toBeGreaterThan(10);
    await relay.close();
    relay = await startRelay({ port });
    cleanups.push(() => relay.close());
    await waitFor(() => od.cursor(url) < 10 && od.isSynced && md.isSynced, 'both resumed the new relay from 0');
    md.map('tasks').set('after-reset', { state: 'todo', by: 'm' });
    await waitFor(() => json(od) === json(md), 'converged after the reset');
    // The new relay's readers start from the members' snapshots.
    const c = await startAgent(homes[2]!.dir, url);
    cleanups.push(() => c.close());
    const cd = await c.doc('reset', { owner: o.pubkey });
    await waitFor(() => json(cd) === json(od), 'a newcomer of the new relay converges');
  });

  it('publishes snapshots on its own every N deltas when asked, and the relay compacts behind them', async () => {
    const relay = await startRelay({ crdtCompactionGraceSeconds: 0 });
    cleanups.push(() => relay.close());
    const home = tempDir();
    cleanups.push(home.cleanup);
    const o = await startAgent(home.dir, relay.url);
    cleanups.push(() => o.close());
    const od = await o.doc('auto', { snapshotEvery: 5 });
    await od.whenSynced();
    for (let i = 0; i < 12; i++) od.counter('n').increment();
    await waitFor(() => relay.relay.sharedDocs.stats().compactions >= 2, 'two compactions', 10_000);
    const readerHome = tempDir();
    cleanups.push(readerHome.cleanup);
    const reader = await startAgent(readerHome.dir, relay.url);
    cleanups.push(() => reader.close());
    const rd = await reader.doc('auto', { owner: o.pubkey });
    await waitFor(() => rd.counter('n').value() === 12, 'reader sees all 12');
  });

  it('memory and key-value stores keep document state apart from the caller', async () => {
    const mem = new MemoryStore();
    const doc = { state: Uint8Array.from([9, 8]), cursors: { r: 1 }, membership: { members: ['a'], version: 2, enforced: false } };
    await mem.putDoc('d', doc);
    doc.state[0] = 0;
    doc.cursors.r = 5;
    expect(await mem.getDoc('d')).toEqual({ state: Uint8Array.from([9, 8]), cursors: { r: 1 }, membership: { members: ['a'], version: 2, enforced: false } });
    const items = new Map<string, string>();
    const storage = {
      getItem: (k: string) => items.get(k) ?? null,
      setItem: (k: string, v: string) => void items.set(k, v),
      removeItem: (k: string) => void items.delete(k),
    };
    const kv = await KeyValueStore.open(storage);
    await kv.putDoc('d', { state: Uint8Array.from([1, 2, 3]), cursors: { r: 4 } });
    expect(await (await KeyValueStore.open(storage)).getDoc('d')).toEqual({ state: Uint8Array.from([1, 2, 3]), cursors: { r: 4 } });
    expect(await kv.getDoc('none')).toBeUndefined();
  });

  it('keeps state, cursors and membership in the SQLite home across store reopenings', async () => {
    const home = tempDir();
    cleanups.push(home.cleanup);
    const file = join(home.dir, 'agent.db');
    const store = new SqliteAgentStore(file);
    const state = Uint8Array.from([1, 2, 3, 250]);
    await store.putDoc('34337:x:y', { state, cursors: { 'ws://r': 7 }, membership: { members: ['m'], version: 9, enforced: true }, backfill: {} });
    await store.close();
    const again = new SqliteAgentStore(file);
    expect(await again.getDoc('34337:x:y')).toEqual({
      state,
      cursors: { 'ws://r': 7 },
      membership: { members: ['m'], version: 9, enforced: true },
      backfill: {},
    });
    expect(await again.getDoc('34337:x:z')).toBeUndefined();
    await again.close();
  });
});
