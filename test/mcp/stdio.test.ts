import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { startRecordingAgent, tempDir } from '../client/helpers.js';
import { runAgentCli } from '../../cli/agent.js';
import { call, callError, exited, startStdioBridge } from './helpers.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(): Promise<TestRelay> {
  const r = await startRelay();
  cleanups.push(() => r.close());
  return r;
}

interface InboxPage {
  messages: Array<{ seq: number; from: string; preview: string; request?: true; chars: number }>;
  next: number;
  more: number;
  acked: number;
}

describe('roost mcp over stdio (SDK client, real relay, the built binary)', () => {
  it('lists its tools; send, receive, reply to a request, ack, discover with presence; resources', async () => {
    const r = await relay();
    const home = tempDir('roost-mcp-');
    cleanups.push(home.cleanup);
    const peerHome = tempDir('roost-peer-');
    cleanups.push(peerHome.cleanup);
    const bridge = await startStdioBridge(home.dir, [r.url]);
    cleanups.push(() => bridge.close());

    const { tools } = await bridge.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([
      'ack',
      'card',
      'decision_propose',
      'decision_tally',
      'decision_vote',
      'discover',
      'doc_get',
      'doc_update',
      'fetch',
      'inbox',
      'send',
      'task_accept',
      'task_cancel',
      'task_list',
      'task_offer',
      'task_request',
      'task_result',
      'task_status',
      'task_update',
      'whoami',
    ]);
    for (const t of tools) {
      expect(t.description!.length).toBeGreaterThan(40);
      expect(t.inputSchema.type).toBe('object');
    }
    const me = await call<{ npub: string; pubkey: string }>(bridge.client, 'whoami');
    expect(me.npub).toMatch(/^npub1/);

    const peer = await startRecordingAgent(peerHome.dir, [r.url], { heartbeatSeconds: 300 });
    cleanups.push(() => peer.agent.close());
    await peer.agent.publishCard({ name: 'shouter', description: 'shouts back', capabilities: ['shout'], version: '1' });

    // the host publishes its card and finds the peer, online
    await call(bridge.client, 'card', { name: 'llm', description: 'an LLM host', capabilities: ['think'] });
    const found = await call<{ agents: Array<{ name: string; npub: string; presence: string; last_seen: string }> }>(bridge.client, 'discover', {
      capabilities: ['shout'],
    });
    expect(found.agents).toEqual([expect.objectContaining({ name: 'shouter', npub: peer.agent.npub, presence: 'online' })]);
    expect(found.agents[0]!.last_seen).toMatch(/^\d{4}-/);
    const fromPeer = await peer.agent.discover({ capabilities: ['think'] });
    expect(fromPeer.map((a) => [a.name, a.presence])).toEqual([['llm', 'online']]);

    // send by agent name: end-to-end encrypted, the peer's inbox has it
    const sent = await call<{ sent: string }>(bridge.client, 'send', { to: 'shouter', text: 'hello from the LLM' });
    expect(sent.sent).toMatch(/^[0-9a-f]{64}$/);
    await waitFor(() => peer.got.some((m) => m.type === 'dm' && m.content === 'hello from the LLM'), 'peer got the DM');

    // receive: a plain DM and a request (the peer waits for the answer)
    await peer.agent.send(me.npub, 'x'.repeat(500));
    const answer = peer.agent.request(me.npub, 'what is 2+2?', { timeoutMs: 20_000 });
    let page!: InboxPage;
    await waitFor(async () => (page = await call<InboxPage>(bridge.client, 'inbox')).messages.length === 2, 'two messages in the inbox');
    expect(page.messages[0]!.chars).toBe(500);
    expect(page.messages[0]!.preview.length).toBeLessThan(210); // long content summarised…
    const full = await call<{ content: string; next_offset?: number }>(bridge.client, 'fetch', { seq: page.messages[0]!.seq, max_chars: 300 });
    expect(full.content).toBe('x'.repeat(300)); // …and the rest fetched in slices
    expect(full.next_offset).toBe(300);
    const rest = await call<{ content: string; next_offset?: number }>(bridge.client, 'fetch', { seq: page.messages[0]!.seq, offset: 300 });
    expect(rest.content.length).toBe(200);
    expect(rest.next_offset).toBeUndefined();
    const byId = await call<{ seq: number; id: string }>(bridge.client, 'fetch', { id: (full as unknown as { id: string }).id.slice(0, 12) });
    expect(byId.seq).toBe(page.messages[0]!.seq);
    const req = page.messages[1]!;
    expect(req).toMatchObject({ request: true, preview: 'what is 2+2?', from: peer.agent.npub });
    await call(bridge.client, 'send', { reply_to: req.seq, text: '4' });
    expect((await answer).content).toBe('4');

    // not acked: the same messages again; acked: gone
    expect((await call<InboxPage>(bridge.client, 'inbox')).messages.map((m) => m.seq)).toEqual(page.messages.map((m) => m.seq));
    expect(await call(bridge.client, 'ack', { up_to: page.next })).toEqual({ acked: page.next, remaining: 0 });
    expect((await call<InboxPage>(bridge.client, 'inbox')).messages).toEqual([]);

    // request/response from the host's side: the peer answers
    peer.agent.onRequest((q) => q.content.toUpperCase());
    const res = await call<{ reply: { content: string } }>(bridge.client, 'send', {
      to: peer.agent.npub,
      text: 'shout this',
      wait_for_reply: true,
      timeout_s: 20,
    });
    expect(res.reply.content).toBe('SHOUT THIS');

    // the inbox resource is subscribable: mail arriving while the server runs is announced
    const updates: string[] = [];
    bridge.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
    await bridge.client.subscribeResource({ uri: 'roost://inbox' });
    await peer.agent.send(me.npub, 'ping');
    await waitFor(() => updates.includes('roost://inbox'), 'resources/updated for roost://inbox');
    const inboxRes = await bridge.client.readResource({ uri: 'roost://inbox' });
    expect(JSON.parse((inboxRes.contents[0] as { text: string }).text).messages.map((m: { preview: string }) => m.preview)).toEqual(['ping']);
    const card = await bridge.client.readResource({ uri: `roost://agents/${peer.agent.pubkey}` });
    expect(JSON.parse((card.contents[0] as { text: string }).text)).toMatchObject({ name: 'shouter', capabilities: ['shout'] });

    // shared documents as JSON, bounded
    await call(bridge.client, 'doc_update', {
      name: 'board',
      ops: [
        { op: 'set', map: 'tasks', key: 't1', value: { state: 'doing' } },
        { op: 'add', set: 'tags', value: 'urgent' },
      ],
    });
    const doc = await call<{ value: Record<string, unknown> }>(bridge.client, 'doc_get', { name: 'board' });
    expect(doc.value).toMatchObject({ maps: { tasks: { t1: { state: 'doing' } } }, sets: { tags: ['urgent'] } });
    const part = await call<{ value: unknown }>(bridge.client, 'doc_get', { name: 'board', part: 'maps.tasks' });
    expect(part.value).toEqual({ t1: { state: 'doing' } });
    const peerDoc = await peer.agent.doc('board', { owner: me.pubkey });
    await waitFor(() => JSON.stringify(peerDoc.toJSON()).includes('doing'), 'the peer replica converged');

    // stdout carried only the protocol: every log line is on stderr, as JSON
    for (const line of bridge.stderr().trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  });

  it("docs/mcp.md's worked example: a roost agent CLI asks, the LLM host answers; the CLI and the bridge on one home are one agent", async () => {
    const r = await relay();
    const llmHome = tempDir('roost-mcp-');
    cleanups.push(llmHome.cleanup);
    const alice = tempDir('roost-alice-');
    cleanups.push(alice.cleanup);
    const bridge = await startStdioBridge(llmHome.dir, [r.url]);
    cleanups.push(() => bridge.close());
    const cli = async (args: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await runAgentCli(args, {
        stdout: { write: (s: string) => (stdout += s) },
        stderr: { write: (s: string) => (stderr += s) },
        env: { ROOST_RELAYS: r.url },
      });
      return { code, stdout, stderr };
    };
    // same home, same identity
    const me = await call<{ npub: string }>(bridge.client, 'whoami');
    expect((await cli(['whoami', '--home', llmHome.dir, '--json'])).stdout).toContain(me.npub);

    await call(bridge.client, 'card', { name: 'summariser', description: 'summarises text', capabilities: ['summarise'] });
    expect((await cli(['keygen', '--home', alice.dir])).code).toBe(0);
    const found = await cli(['discover', '--home', alice.dir, '--capability', 'summarise']);
    expect(found.stdout).toMatch(/^online\s+summariser\s/);
    const asking = cli(['send', '--home', alice.dir, me.npub, 'Summarise: the relay stores events and forwards them.', '--request', '--timeout', '30']);
    let page!: InboxPage;
    await waitFor(async () => (page = await call<InboxPage>(bridge.client, 'inbox')).messages.length === 1, 'the request in the inbox', 20_000);
    expect(page.messages[0]).toMatchObject({ request: true, preview: 'Summarise: the relay stores events and forwards them.' });
    const sent = await call<{ answered_request: boolean }>(bridge.client, 'send', { reply_to: page.messages[0]!.seq, text: 'A store-and-forward relay.' });
    expect(sent.answered_request).toBe(true);
    expect(await call(bridge.client, 'ack', { up_to: page.next })).toEqual({ acked: page.next, remaining: 0 });
    const answered = await asking;
    expect(answered.code, answered.stderr).toBe(0);
    expect(answered.stdout).toMatch(/: A store-and-forward relay\.\n$/);
  });

  it('bad input gets an MCP error that says what to fix, never a stack trace', async () => {
    const r = await relay();
    const home = tempDir('roost-mcp-');
    cleanups.push(home.cleanup);
    const bridge = await startStdioBridge(home.dir, [r.url]);
    cleanups.push(() => bridge.close());
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['send', { to: 'npub1xyz' }, /text/],
      ['send', { to: 'nobody-by-that-name', text: 'hi' }, /neither an npub\/hex key nor the name of an agent card/],
      ['send', { text: 'hi' }, /"to".*"reply_to"/],
      ['send', { reply_to: 99, text: 'hi' }, /no message with seq 99/],
      ['inbox', { limit: 500 }, /limit/],
      ['ack', { up_to: 5 }, /beyond the newest message/],
      ['ack', { up_to: 'all' }, /up_to/],
      ['fetch', {}, /seq.*or its id/],
      ['fetch', { id: 'abcd%' }, /8 to 64 hex characters/],
      ['doc_update', { name: 'a b', ops: [] }, /document name is letters/],
      ['doc_update', { name: 'board', ops: [{ op: 'rename' }] }, /op/],
      ['nope', {}, /Tool nope not found/],
    ];
    for (const [tool, args, want] of cases) {
      const msg = await callError(bridge.client, tool, args);
      expect(msg, `${tool} ${JSON.stringify(args)}`).toMatch(want);
      expect(msg).not.toMatch(/\n\s+at /);
    }
    // the bridge still serves
    expect((await call(bridge.client, 'whoami')).npub).toMatch(/^npub1/);
  });

  it('SIGKILLed between inbox and ack: the restarted bridge returns the same messages, plus what came while it was down', async () => {
    const r = await relay();
    const home = tempDir('roost-mcp-');
    cleanups.push(home.cleanup);
    const peerHome = tempDir('roost-peer-');
    cleanups.push(peerHome.cleanup);
    let bridge = await startStdioBridge(home.dir, [r.url]);
    const me = await call<{ npub: string }>(bridge.client, 'whoami');
    const peer = await startRecordingAgent(peerHome.dir, [r.url]);
    cleanups.push(() => peer.agent.close());
    for (const t of ['one', 'two', 'three']) await peer.agent.send(me.npub, t);
    let first!: InboxPage;
    await waitFor(async () => (first = await call<InboxPage>(bridge.client, 'inbox')).messages.length === 3, 'three messages');
    await call(bridge.client, 'ack', { up_to: first.messages[0]!.seq }); // 'one' handled, the others not yet

    process.kill(bridge.pid, 'SIGKILL');
    await exited(bridge.pid);
    await bridge.close();
    await peer.agent.send(me.npub, 'four'); // arrives while the bridge is down

    bridge = await startStdioBridge(home.dir, [r.url]);
    cleanups.push(() => bridge.close());
    const again = await call<InboxPage>(bridge.client, 'inbox');
    expect(again.messages.map((m) => m.preview)).toEqual(['two', 'three', 'four']);
    expect(again.messages.slice(0, 2).map((m) => m.seq)).toEqual(first.messages.slice(1).map((m) => m.seq));
    await call(bridge.client, 'ack', { up_to: again.next });
    expect((await call<InboxPage>(bridge.client, 'inbox')).messages).toEqual([]);
  });

  it('two relays carrying the same events: each message once, also after a restart that replays everything', async () => {
    const r1 = await relay();
    const r2 = await relay();
    const home = tempDir('roost-mcp-');
    cleanups.push(home.cleanup);
    const peerHome = tempDir('roost-peer-');
    cleanups.push(peerHome.cleanup);
    let bridge = await startStdioBridge(home.dir, [r1.url, r2.url]);
    const me = await call<{ npub: string }>(bridge.client, 'whoami');
    const peer = await startRecordingAgent(peerHome.dir, [r1.url, r2.url]);
    cleanups.push(() => peer.agent.close());
    for (let i = 0; i < 5; i++) {
      const { result } = await peer.agent.send(me.npub, `m${i}`);
      expect(result!.relays.filter((x) => x.accepted)).toHaveLength(2); // the same wrap stored on both relays
    }
    let page!: InboxPage;
    await waitFor(async () => (page = await call<InboxPage>(bridge.client, 'inbox')).messages.length >= 5, 'five messages');
    await bridge.client.close();
    await exited(bridge.pid);
    // The window where a message is in mcp.db but the agent's cursor and seen-id did not commit yet
    // (a SIGKILL in between), taken to the extreme: agent.db forgets every cursor and seen id, so
    // both relays replay everything; the mailbox's rumor-id key keeps each message once.
    for (const f of ['agent.db', 'agent.db-wal', 'agent.db-shm']) rmSync(join(home.dir, f), { force: true });
    bridge = await startStdioBridge(home.dir, [r1.url, r2.url]);
    cleanups.push(() => bridge.close());
    await peer.agent.send(me.npub, 'm5');
    await waitFor(async () => (page = await call<InboxPage>(bridge.client, 'inbox')).messages.length >= 6, 'six messages');
    await new Promise((res) => setTimeout(res, 300)); // time for any duplicate to show up
    page = await call<InboxPage>(bridge.client, 'inbox');
    expect(page.messages.map((m) => m.preview)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
  });
});
