import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadOrCreateRelayIdentity } from '../../../relay/identity.js';
import { makeKey, signEvent } from '../../helpers/events.js';
import { freePort } from '../../helpers/process.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';
import { fast, makeEvents, seed, statsOf, storedIds, tempDirs } from './helpers.js';

const tempDir = tempDirs('roost-fed-');

describe('replication by sequence cursor', () => {
  it('B replicating A ends with exactly A’s events, goes live, and resumes from its cursor after either side restarts, fetching nothing twice', async () => {
    const keys = [makeKey(), makeKey()];
    const portA = await freePort();
    const dirA = tempDir();
    const dirB = tempDir();
    let a = await startRelay({ port: portA }, {}, dirA);
    await seed(a, makeEvents(keys, 500, 'backlog'));
    let b = await startRelay({ replicateFrom: a.url }, fast, dirB);
    await waitFor(() => storedIds(b).length === 500, 'backlog replicated');
    expect(storedIds(b)).toEqual(storedIds(a));
    expect(statsOf(b)).toMatchObject({ pulled: 500, stored: 500, duplicates: 0, rejected: 0 });
    await waitFor(() => statsOf(b).live, 'live');

    // Live: published to A, stored on B.
    const client = await RawClient.connect(a.url);
    const live = signEvent(keys[0]!, { content: 'live' });
    expect((await client.publish(live))[2]).toBe(true);
    client.close();
    await waitFor(() => storedIds(b).includes(live.id), 'live event replicated');

    // B stops; A takes more; B comes back and pulls exactly the new events.
    await b.close({ keep: true });
    await seed(a, makeEvents(keys, 100, 'while-b-down'));
    b = await startRelay({ replicateFrom: a.url }, fast, dirB);
    await waitFor(() => storedIds(b).length === 601, 'caught up after B restart');
    expect(storedIds(b)).toEqual(storedIds(a));
    expect(statsOf(b)).toMatchObject({ pulled: 100, stored: 100, duplicates: 0 });

    // A restarts on the same port; B reconnects and resumes after A's newest event.
    await a.close({ keep: true });
    a = await startRelay({ port: portA }, {}, dirA);
    await seed(a, makeEvents(keys, 50, 'after-a-restart'));
    await waitFor(() => storedIds(b).length === 651, 'caught up after A restart');
    expect(storedIds(b)).toEqual(storedIds(a));
    expect(statsOf(b)).toMatchObject({ pulled: 150, stored: 150, duplicates: 0 });
    expect(statsOf(b).connects).toBeGreaterThanOrEqual(2);
    await b.close();
    await a.close();
  }, 60_000);

  it('A ⇄ B converge and no event comes back to where it came from', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const a = await startRelay({ port: portA, replicateFrom: `ws://127.0.0.1:${portB}` }, fast, tempDir());
    const b = await startRelay({ port: portB, replicateFrom: `ws://127.0.0.1:${portA}` }, fast, tempDir());
    const keys = [makeKey()];
    const ca = await RawClient.connect(a.url);
    const cb = await RawClient.connect(b.url);
    const onA = makeEvents(keys, 100, 'a');
    const onB = makeEvents(keys, 100, 'b');
    await Promise.all([...onA.map((e) => ca.publish(e)), ...onB.map((e) => cb.publish(e))]);
    await waitFor(() => storedIds(a).length === 200 && storedIds(b).length === 200, 'both have everything');
    expect(storedIds(a)).toEqual(storedIds(b));
    // Give an echo time to happen, then count: each side pulled exactly the other's events.
    await new Promise((r) => setTimeout(r, 500));
    expect(statsOf(a)).toMatchObject({ pulled: 100, stored: 100, duplicates: 0 });
    expect(statsOf(b)).toMatchObject({ pulled: 100, stored: 100, duplicates: 0 });
    ca.close();
    cb.close();
    await a.close();
    await b.close();
  }, 60_000);

  it('three relays in a chain (A → B → C) end with the same events; private kinds only to an allow-listed replica', async () => {
    const dirB = tempDir();
    const dirC = tempDir();
    // B's and C's keys exist before they start, so A can allow-list B and B can allow-list C; `direct` is not allow-listed.
    const bKey = loadOrCreateRelayIdentity(join(dirB, 'roost.db')).pubkey;
    const cKey = loadOrCreateRelayIdentity(join(dirC, 'roost.db')).pubkey;
    const a = await startRelay({ replicaReaders: bKey }, {}, tempDir());
    const alice = makeKey();
    const bob = makeKey();
    const dm = signEvent(alice, { kind: 4, tags: [['p', bob.pk]], content: 'ciphertext' });
    await seed(a, [...makeEvents([alice], 200, 'chain'), dm]);
    const b = await startRelay({ replicateFrom: a.url, replicaReaders: cKey }, fast, dirB);
    const c = await startRelay({ replicateFrom: b.url }, fast, dirC);
    const direct = await startRelay({ replicateFrom: a.url }, fast, tempDir());
    await waitFor(() => storedIds(c).length === 201 && storedIds(direct).length === 200, 'chain caught up', 20_000).catch((err) => {
      throw new Error(
        `${(err as Error).message}: a ${storedIds(a).length}, b ${storedIds(b).length}, c ${storedIds(c).length}, direct ${storedIds(direct).length}`,
      );
    });
    expect(storedIds(b)).toEqual(storedIds(a));
    expect(storedIds(c)).toEqual(storedIds(a));
    expect(storedIds(direct)).not.toContain(dm.id);
    // Live along the chain.
    const client = await RawClient.connect(a.url);
    const late = signEvent(alice, { content: 'late' });
    await client.publish(late);
    client.close();
    await waitFor(() => storedIds(c).includes(late.id), 'live through the chain');
    for (const t of [direct, c, b, a]) await t.close();
  }, 60_000);

  it('a first sync by NIP-77 fetches only what the replica lacks, then tails from the upstream head', async () => {
    const keys = [makeKey(), makeKey()];
    const a = await startRelay({}, {}, tempDir());
    const events = makeEvents(keys, 2000, 'neg');
    await seed(a, events);
    const dirB = tempDir();
    // B starts as a copy of 90 % of A (a restored backup), plus 20 events of its own.
    const seeded = await startRelay({}, {}, dirB);
    const own = makeEvents(keys, 20, 'own');
    await seed(seeded, [...events.slice(0, 1800), ...own]);
    await seeded.close({ keep: true });
    const b = await startRelay({ replicateFrom: a.url, replicateFirstSync: 'negentropy' }, fast, dirB);
    await waitFor(() => statsOf(b).live, 'first sync done and live', 30_000);
    expect(statsOf(b)).toMatchObject({ pulled: 200, stored: 200, duplicates: 0 });
    expect(statsOf(b).cursor).toBe(a.relay.ctx.store.lastSeq());
    expect(storedIds(b)).toEqual([...storedIds(a), ...own.map((e) => e.id)].sort());
    const client = await RawClient.connect(a.url);
    const live = signEvent(keys[0]!, { content: 'after first sync' });
    await client.publish(live);
    client.close();
    await waitFor(() => storedIds(b).includes(live.id), 'tailing after the first sync');
    await b.close();
    await a.close();
  }, 60_000);
});
