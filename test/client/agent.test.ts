import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_CARD_KIND } from '../../shared/agent-card.js';
import { makeHistoryResetReason } from '../../shared/history-reset.js';
import { ClientError, Identity, NodeWebSocket, RelayLink, unwrapDirectMessage, type InboxMessage } from '../../client/node/index.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { FAST_LINK, dmTexts, startRecordingAgent, tempDir } from './helpers.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(opts: { port?: number; dir?: string } = {}): Promise<TestRelay> {
  const r = opts.dir ? await startRelay({ port: opts.port ?? 0, db: `${opts.dir}/roost.db` }, {}, opts.dir) : await startRelay({ port: opts.port ?? 0 });
  cleanups.push(() => r.close());
  return r;
}

function home(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

async function agentIn(dir: string, relays: string[], opts: Parameters<typeof startRecordingAgent>[2] = {}) {
  const a = await startRecordingAgent(dir, relays, opts);
  cleanups.push(() => a.agent.close());
  return a;
}

/** Exactly-once, in-order check on what one agent was handed. */
function expectOnceInOrder(got: readonly InboxMessage[], expected: readonly string[]) {
  expect(dmTexts(got)).toEqual(expected);
  const ids = got.map((m) => (m.type === 'dm' ? m.wrapId : m.event.id));
  expect(new Set(ids).size).toBe(ids.length);
}

describe('direct messages', () => {
  it('exchanges messages and answers requests between two agents', async () => {
    const r = await relay();
    const alice = await agentIn(home(), [r.url]);
    const bob = await agentIn(home(), [r.url]);
    bob.agent.onRequest((req) => `echo:${req.content}`);
    await Promise.all([alice.agent.whenConnected(), bob.agent.whenConnected()]);

    await alice.agent.send(bob.agent.npub, 'hello bob');
    await waitFor(() => dmTexts(bob.got).length === 1, 'bob gets the DM');
    const m = bob.got[0]!;
    expect(m.type === 'dm' && m.from).toBe(alice.agent.pubkey);

    const res = await alice.agent.request(bob.agent.pubkey, 'ping', { timeoutMs: 5000 });
    expect(res.content).toBe('echo:ping');
    expect(res.from).toBe(bob.agent.pubkey);
    // The response went to the pending request, not to the inbox handler.
    expect(dmTexts(alice.got)).toEqual([]);
  });

  it('a request nobody answers times out with ROOST_ERR_TIMEOUT', async () => {
    const r = await relay();
    const alice = await agentIn(home(), [r.url]);
    const mute = Identity.generate();
    await alice.agent.whenConnected();
    const err = await alice.agent.request(mute.pubkey, 'anyone?', { timeoutMs: 300 }).catch((e: ClientError) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe('ROOST_ERR_TIMEOUT');
  });

  it('messages sent while the recipient is offline arrive once, in order, after it restarts', async () => {
    const r = await relay();
    const bobHome = home();
    const alice = await agentIn(home(), [r.url]);
    // Bob runs once so he exists, then goes away.
    const bob1 = await startRecordingAgent(bobHome, [r.url]);
    const bobKey = bob1.agent.pubkey;
    await bob1.agent.whenConnected();
    await alice.agent.send(bobKey, 'm0');
    await waitFor(() => dmTexts(bob1.got).length === 1, 'first message');
    await bob1.agent.close();

    const sent = Array.from({ length: 8 }, (_, i) => `m${i + 1}`);
    for (const text of sent) await alice.agent.send(bobKey, text);

    const bob2 = await agentIn(bobHome, [r.url]);
    expect(bob2.agent.pubkey).toBe(bobKey);
    await waitFor(() => dmTexts(bob2.got).length >= sent.length, 'backlog');
    await bob2.agent.inboxIdle();
    expectOnceInOrder(bob2.got, sent);
    expect(bob2.agent.inboxCursor(r.url)).toBeGreaterThan(0);
    await bob2.agent.close();

    // A third run finds nothing new: the cursor and the seen ids were stored.
    const bob3 = await agentIn(bobHome, [r.url]);
    let caughtUp = false;
    bob3.agent.on('caughtUp', () => (caughtUp = true));
    await waitFor(() => caughtUp, 'caught up');
    await bob3.agent.inboxIdle();
    expect(bob3.got).toEqual([]);
  });
});

describe('inbox cursor', () => {
  it('advances only after the handler has returned; a throwing handler is tried again', async () => {
    const r = await relay();
    const alice = await agentIn(home(), [r.url]);
    const bob = await agentIn(home(), [r.url]);
    await Promise.all([alice.agent.whenConnected(), bob.agent.whenConnected()]);
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    const handled: string[] = [];
    let throws = 1;
    bob.agent.onMessage(async (m) => {
      if (m.type !== 'dm') return;
      if (m.content === 'slow') await gate;
      if (m.content === 'flaky' && throws-- > 0) throw new Error('not yet');
      handled.push(m.content);
    });
    await alice.agent.send(bob.agent.pubkey, 'first');
    await waitFor(() => handled.includes('first'), 'first handled');
    const afterFirst = bob.agent.inboxCursor(r.url);
    expect(afterFirst).toBeGreaterThan(0);
    await alice.agent.send(bob.agent.pubkey, 'slow');
    await alice.agent.send(bob.agent.pubkey, 'flaky');
    await new Promise((res) => setTimeout(res, 200));
    // The slow handler has not returned: the cursor has not moved, and nothing after it ran.
    expect(bob.agent.inboxCursor(r.url)).toBe(afterFirst);
    expect(handled).toEqual(['first']);
    release();
    await waitFor(() => handled.length === 3, 'the rest handled');
    expect(handled).toEqual(['first', 'slow', 'flaky']);
    await bob.agent.inboxIdle();
    expect(bob.agent.inboxCursor(r.url)).toBeGreaterThan(afterFirst);
  });
});

describe('several relays', () => {
  it('two relays carrying the same events deliver each once, in order', async () => {
    const a = await relay();
    const b = await relay();
    const bobHome = home();
    const alice = await agentIn(home(), [a.url, b.url]);
    const bobKey = Identity.generate();
    const sent = Array.from({ length: 6 }, (_, i) => `both-${i}`);
    for (const text of sent) {
      const { result } = await alice.agent.send(bobKey.pubkey, text);
      expect(result!.relays.map((x) => x.accepted)).toEqual([true, true]);
    }
    const bob = await agentIn(bobHome, [a.url, b.url], { identity: bobKey });
    await waitFor(() => dmTexts(bob.got).length >= sent.length, 'backlog from two relays');
    // Let the second relay's copies arrive and be skipped.
    await waitFor(() => bob.agent.inboxCursor(a.url) > 0 && bob.agent.inboxCursor(b.url) > 0, 'both cursors advance');
    await bob.agent.inboxIdle();
    expectOnceInOrder(bob.got, sent);

    // Live: one more message, on both relays, handed over once.
    await alice.agent.send(bobKey.pubkey, 'live');
    await waitFor(() => dmTexts(bob.got).length === sent.length + 1, 'live message');
    await new Promise((res) => setTimeout(res, 150));
    await bob.agent.inboxIdle();
    expectOnceInOrder(bob.got, [...sent, 'live']);
  });

  it('a relay restarted mid-conversation loses nothing', async () => {
    const dir = home();
    let r = await relay({ dir });
    const port = r.port;
    const alice = await agentIn(home(), [r.url]);
    const bob = await agentIn(home(), [r.url]);
    await Promise.all([alice.agent.whenConnected(), bob.agent.whenConnected()]);
    await alice.agent.send(bob.agent.pubkey, 'before-1');
    await bob.agent.send(alice.agent.pubkey, 'reply-1');
    await waitFor(() => dmTexts(bob.got).length === 1 && dmTexts(alice.got).length === 1, 'first exchange');

    await r.close({ keep: true });
    await waitFor(() => alice.agent.connectedRelays.length === 0, 'alice notices');
    // Sent while the relay is down: kept in the outbox, acknowledged after it is back.
    const pending = ['during-1', 'during-2', 'during-3'].map((t) => alice.agent.send(bob.agent.pubkey, t));
    const pendingBob = bob.agent.send(alice.agent.pubkey, 'reply-during');
    await waitFor(() => alice.agent.outboxSize === 3, 'alice holds three events in her outbox');

    r = await relay({ dir, port });
    const acks = await Promise.all(pending);
    expect(acks.every((x) => x.result!.relays[0]!.accepted)).toBe(true);
    await pendingBob;
    await alice.agent.send(bob.agent.pubkey, 'after-1');
    await waitFor(() => dmTexts(bob.got).length === 5 && dmTexts(alice.got).length === 2, 'everything after restart');
    await bob.agent.inboxIdle();
    expectOnceInOrder(bob.got, ['before-1', 'during-1', 'during-2', 'during-3', 'after-1']);
    expectOnceInOrder(alice.got, ['reply-1', 'reply-during']);
    expect(alice.agent.outboxSize).toBe(0);
  });
});

describe('relay history reset', () => {
  it('a relay that refuses our cursor as ahead of its history is read again from 0', async () => {
    const first = await relay();
    const port = first.port;
    const alice = await agentIn(home(), [first.url]);
    const bob = await agentIn(home(), [first.url]);
    await Promise.all([alice.agent.whenConnected(), bob.agent.whenConnected()]);
    for (const t of ['old-1', 'old-2', 'old-3']) await alice.agent.send(bob.agent.pubkey, t);
    await waitFor(() => dmTexts(bob.got).length === 3, 'old messages');
    await bob.agent.inboxIdle();
    expect(bob.agent.inboxCursor(first.url)).toBeGreaterThan(1);

    // The relay comes back on the same port with an empty database (restored from nothing). It
    // refuses a cursor past its newest sequence number, as Roost's sequence extension does.
    await first.close();
    const fresh = await relay({ port });
    fresh.relay.ctx.hooks.rejectFilter.unshift((filters) => {
      const after = filters[0]?.seq_after;
      const newest = fresh.relay.ctx.store.lastSeq();
      return after !== undefined && after > newest ? makeHistoryResetReason(after, newest) : undefined;
    });
    await waitFor(() => alice.agent.connectedRelays.length === 1, 'alice reconnects');
    await alice.agent.send(bob.agent.pubkey, 'new-1');
    await waitFor(() => dmTexts(bob.got).length === 4, 'message on the reset relay');
    expect(dmTexts(bob.got)).toEqual(['old-1', 'old-2', 'old-3', 'new-1']);
  });
});

describe('privacy', () => {
  it('a direct message is unreadable to a third agent and to anyone reading the database', async () => {
    const dir = home();
    const r = await relay({ dir });
    const alice = await agentIn(home(), [r.url]);
    const bob = await agentIn(home(), [r.url]);
    const carol = await agentIn(home(), [r.url]);
    await Promise.all([alice.agent.whenConnected(), bob.agent.whenConnected(), carol.agent.whenConnected()]);
    const secret = 'the-launch-code-is-4217';
    const { wrapId } = await alice.agent.send(bob.agent.pubkey, secret);
    await waitFor(() => dmTexts(bob.got).includes(secret), 'bob reads it');

    // Carol, authenticated as herself, may not ask for bob's gift wraps, and a tag query shows nothing.
    const link = new RelayLink(r.url, { WebSocket: NodeWebSocket, identity: carol.agent.identity, ...FAST_LINK });
    cleanups.push(() => link.close());
    link.start();
    const refused = await link.query([{ kinds: [1059], '#p': [bob.agent.pubkey] }]).catch((e: ClientError) => e);
    expect((refused as ClientError).code).toBe('ROOST_ERR_REFUSED');
    expect((refused as ClientError).prefix).toBe('restricted');
    expect(await link.query([{ '#p': [bob.agent.pubkey] }])).toEqual([]);
    expect(await link.query([{ ids: [wrapId] }])).toEqual([]);
    expect(carol.got).toEqual([]);

    // The database: the wrap is there, but neither the text nor the sender appears in it.
    const db = new BetterSqlite3(r.dbPath, { readonly: true });
    cleanups.push(() => db.close());
    const row = db.prepare('SELECT pubkey, raw FROM events WHERE id = ?').get(wrapId) as { pubkey: string; raw: string };
    expect(row).toBeDefined();
    const all = (db.prepare('SELECT raw FROM events').all() as Array<{ raw: string }>).map((x) => x.raw).join('\n');
    expect(all).not.toContain(secret);
    expect(row.pubkey).not.toBe(alice.agent.pubkey);
    expect(row.raw).not.toContain(alice.agent.pubkey);
    // Carol cannot open it even with the stored copy; bob can.
    const wrap = JSON.parse(row.raw);
    expect(() => unwrapDirectMessage(carol.agent.identity, wrap)).toThrow(expect.objectContaining({ code: 'ROOST_ERR_DECRYPT' }));
    expect(unwrapDirectMessage(bob.agent.identity, wrap).content).toBe(secret);
  });
});

describe('publishing', () => {
  it('a definitive refusal surfaces as ROOST_ERR_REFUSED with the NIP-01 prefix and leaves the outbox', async () => {
    const r = await relay();
    r.relay.ctx.hooks.rejectEvent.push((ev) => (ev.content === 'forbidden' ? 'blocked: no forbidden words here' : undefined));
    const alice = await agentIn(home(), [r.url]);
    const refused: string[] = [];
    alice.agent.on('refused', (s) => refused.push(s.reason));
    const err = await alice.agent.publish({ kind: 1, content: 'forbidden' }).catch((e: ClientError) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe('ROOST_ERR_REFUSED');
    expect((err as ClientError).prefix).toBe('blocked');
    expect(refused).toEqual(['blocked: no forbidden words here']);
    expect(alice.agent.outboxSize).toBe(0);
  });

  it('transient refusals (rate-limited:, error:) are retried until accepted', async () => {
    const r = await relay();
    let attempts = 0;
    r.relay.ctx.hooks.rejectEvent.push((ev) => {
      if (ev.content !== 'retry me') return undefined;
      attempts++;
      return attempts === 1 ? 'rate-limited: slow down' : attempts === 2 ? 'error: try again' : undefined;
    });
    const alice = await agentIn(home(), [r.url]);
    const res = await alice.agent.publish({ kind: 1, content: 'retry me' });
    expect(attempts).toBe(3);
    expect(res.relays[0]!.accepted).toBe(true);
  });

  it('ephemeral events are fire-and-forget and reach a live inbox', async () => {
    const r = await relay();
    const alice = await agentIn(home(), [r.url]);
    const bob = await agentIn(home(), [r.url]);
    await Promise.all([alice.agent.whenConnected(), bob.agent.whenConnected()]);
    await new Promise((res) => setTimeout(res, 50));
    const { event, sentTo } = alice.agent.publishEphemeral({ kind: 20001, tags: [['p', bob.agent.pubkey]], content: 'typing' });
    expect(sentTo).toBe(1);
    await waitFor(() => bob.got.some((m) => m.type === 'event' && m.event.id === event.id), 'ephemeral arrives');
    const m = bob.got.find((x) => x.type === 'event')!;
    expect(m.type === 'event' && m.seq).toBeUndefined();
  });
});

describe('presence and discovery', () => {
  it('finds agents by capability, with presence, and reveals nothing about agents without a card', async () => {
    const r = await relay();
    const alice = await agentIn(home(), [r.url], { heartbeatSeconds: 60 });
    const bob = await agentIn(home(), [r.url], { heartbeatSeconds: 60 });
    const carol = await agentIn(home(), [r.url], { heartbeatSeconds: 60 });
    await Promise.all([alice.agent.whenConnected(), bob.agent.whenConnected(), carol.agent.whenConnected()]);
    await alice.agent.publishCard({ name: 'alice', description: 'translates and summarises', capabilities: ['translate', 'summarize'], version: '1.0.0' });
    await bob.agent.publishCard({ name: 'bob', description: 'summarises', capabilities: ['summarize'], version: '0.3.0' });

    const both = await carol.agent.discover({ capabilities: ['summarize'] });
    expect(both.map((a) => a.name).sort()).toEqual(['alice', 'bob']);
    expect(both.every((a) => a.presence === 'online' && a.presenceFrom.length === 1)).toBe(true);
    const translators = await carol.agent.discover({ capabilities: ['translate', 'summarize'] });
    expect(translators.map((a) => a.pubkey)).toEqual([alice.agent.pubkey]);
    expect(translators[0]!.relays).toEqual([r.url]);
    expect(await carol.agent.discover({ capabilities: ['fly'] })).toEqual([]);

    // Bob signs off: offline, last seen set by his final heartbeat.
    await bob.agent.close();
    const after = await carol.agent.discover({ capabilities: ['summarize'] });
    const bobInfo = after.find((a) => a.name === 'bob')!;
    expect(bobInfo.presence).toBe('offline');
    expect(bobInfo.lastSeen).toBeGreaterThan(0);

    // The relay's presence endpoint answers for carded agents only; carol is connected but has no card.
    const res = await fetch(`${r.httpUrl}/presence?p=${alice.agent.pubkey},${carol.agent.pubkey},${bob.agent.pubkey}`);
    expect(await res.json()).toEqual({ online: { [alice.agent.pubkey]: true, [bob.agent.pubkey]: false } });
    for (const q of ['p=nothex', '', `p=${Array.from({ length: 101 }, () => Identity.generate().pubkey).join(',')}`]) {
      expect((await fetch(`${r.httpUrl}/presence?${q}`)).status).toBe(400);
    }
    // The card itself is a normal addressable event anyone can read.
    const card = r.relay.ctx.store.query([{ kinds: [AGENT_CARD_KIND], authors: [alice.agent.pubkey] }]);
    expect(card).toHaveLength(1);
  });
});
