import { afterAll, describe, expect, it } from 'vitest';
import type { SendResult } from '../../client/node/index.js';
import { getReadRelays, RELAY_LIST_KIND } from '../../shared/nip65.js';
import { freePort } from '../helpers/process.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { dmTexts, startRecordingAgent, tempDir } from './helpers.js';
import type { SqliteStore } from '../../relay/store/sqlite.js';

/** Gift-wrap ids stored on a relay. */
const wrapsOn = (t: TestRelay) =>
  (t.relay.ctx.store as SqliteStore).querySeq([{ kinds: [1059] }], 0, undefined, 10_000).events.map((e) => (JSON.parse(e.raw) as { id: string }).id);

describe('outbox routing (NIP-65)', () => {
  const cleanups: Array<() => void | Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('an agent on relay A and one on relay B exchange DMs, the sender never having connected to B before', async () => {
    // The two relays share relay lists and cards only (replication filtered to kinds 10002 and 31340), not mail.
    const [portA, portB] = [await freePort(), await freePort()];
    const filter = JSON.stringify({ kinds: [10002, 31340] });
    const fast = { replication: { backoffMs: () => 50 } };
    const a = await startRelay({ port: portA, replicateFrom: `ws://127.0.0.1:${portB}`, replicateFilter: filter }, fast);
    const b = await startRelay({ port: portB, replicateFrom: `ws://127.0.0.1:${portA}`, replicateFilter: filter }, fast);
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const homes = [tempDir(), tempDir()];
    for (const h of homes) cleanups.push(h.cleanup);
    const alice = await startRecordingAgent(homes[0]!.dir, [a.url]);
    const bob = await startRecordingAgent(homes[1]!.dir, [b.url]);
    cleanups.push(
      () => alice.agent.close(),
      () => bob.agent.close(),
    );
    // Each publishes its card, and with it its relay list (kind 10002) naming the relay it reads.
    await alice.agent.publishCard({ name: 'alice', description: '', capabilities: [], version: '1' });
    await bob.agent.publishCard({ name: 'bob', description: '', capabilities: ['echo'], version: '1' });
    const bobList = () => a.relay.ctx.store.provides.syncReads!.query([{ kinds: [RELAY_LIST_KIND], authors: [bob.agent.pubkey] }]);
    await waitFor(() => bobList().length === 1, "Bob's relay list reaches A");
    await waitFor(() => a.relay.ctx.store.provides.syncReads!.query([{ kinds: [31340], authors: [bob.agent.pubkey] }]).length === 1, "Bob's card reaches A");
    expect(getReadRelays(JSON.parse(bobList()[0]!.raw))).toEqual([b.url]);
    await waitFor(
      () => b.relay.ctx.store.provides.syncReads!.query([{ kinds: [RELAY_LIST_KIND], authors: [alice.agent.pubkey] }]).length === 1,
      "Alice's list reaches B",
    );

    // Discovery from A alone finds Bob, whose card came from B.
    const found = await alice.agent.discover({ capabilities: ['echo'], timeoutMs: 2000 });
    expect(found.map((x) => x.pubkey)).toEqual([bob.agent.pubkey]);

    expect(alice.agent.relays).toEqual([a.url]);
    const sent: SendResult = await alice.agent.send(bob.agent.pubkey, 'hello from A');
    expect(sent.result?.relays.map((r) => r.relay)).toEqual([b.url]);
    await waitFor(() => dmTexts(bob.got).includes('hello from A'), 'Bob got it on B');
    // The wrap went to B only: A never stored it (and does not replicate mail).
    expect(wrapsOn(b)).toContain(sent.wrapId);
    expect(wrapsOn(a)).not.toContain(sent.wrapId);

    const msg = bob.got.find((m) => m.type === 'dm' && m.content === 'hello from A')!;
    if (msg.type !== 'dm') throw new Error('not a dm');
    const replied = await bob.agent.reply(msg, 'hello back from B');
    expect(replied.result?.relays.map((r) => r.relay)).toEqual([a.url]);
    await waitFor(() => dmTexts(alice.got).includes('hello back from B'), 'Alice got the reply on A');
    expect(wrapsOn(a)).toContain(replied.wrapId);
    expect(wrapsOn(b)).not.toContain(replied.wrapId);
  }, 60_000);
});
