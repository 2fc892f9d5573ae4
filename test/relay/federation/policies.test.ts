import { npubEncode } from 'nostr-tools/nip19';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../relay/config.js';
import { rejectOutsideReplicateFilter } from '../../../relay/policies/replication.js';
import { createVerifier, type Verifier } from '../../../relay/verify/index.js';
import { makeKey, nowSeconds, signEvent } from '../../helpers/events.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';
import { makeBallot, makeProposal } from '../../../shared/decisions.js';
import { fast, makeEvents, seed, statsOf, storedIds, tempDirs } from './helpers.js';

const tempDir = tempDirs('roost-fedpol-');
const cursorOf = (t: TestRelay) => {
  const r = t.relay.replication.replicators[0]!;
  return t.relay.ctx.store.provides.replication!.getReplicationCursor(r.key);
};
async function metric(t: TestRelay, line: string): Promise<number> {
  const text = await (await fetch(`${t.httpUrl}/metrics`)).text();
  const m = text.split('\n').find((l) => l.startsWith(line + ' '));
  return m === undefined ? 0 : Number(m.slice(line.length + 1));
}

describe("replicated events go through the replica's own write policies", () => {
  it('bans, kind rules, tag/content limits, NIP-40, NIP-70, NIP-09 and supersession refuse; rate limits and the created_at window do not; the cursor moves past every refusal', async () => {
    const now = nowSeconds();
    const [alice, banned, bob] = [makeKey(), makeKey(), makeKey()];
    // A's clock is 1000 s behind, so it still serves an event that has expired by B's clock.
    const a = await startRelay({}, { now: () => nowSeconds() - 1000 }, tempDir());
    const dirB = tempDir();

    // B's operator moderates before replication starts; B also holds Bob's newer profile and a deletion by Alice.
    const bannedId = signEvent(alice, { content: 'banned id' });
    const deletedOnB = signEvent(alice, { content: 'deleted on B' });
    const newProfile = signEvent(bob, { kind: 0, content: '{"name":"new"}', created_at: now - 10 });
    const oldProfile = signEvent(bob, { kind: 0, content: '{"name":"old"}', created_at: now - 20 });
    const pre = await startRelay({}, {}, dirB);
    pre.relay.operator.admin.banPubkey(banned.pk);
    pre.relay.operator.admin.banEvent(bannedId.id);
    pre.relay.operator.admin.disallowKind(7);
    await seed(pre, [newProfile, signEvent(alice, { kind: 5, tags: [['e', deletedOnB.id]] })]);
    await pre.close({ keep: true });

    const keep = [
      ...makeEvents([alice], 60, 'many by one author'), // over B's per-author rate
      signEvent(alice, { content: 'ten days old', created_at: now - 10 * 86_400 }), // past B's created_at window
    ];
    const refuse = [
      signEvent(banned, { content: 'by a banned author' }),
      bannedId,
      signEvent(alice, { kind: 7, content: '+' }),
      signEvent(alice, { tags: Array.from({ length: 20 }, (_, i) => ['t', `t${i}`]) }),
      signEvent(alice, { content: 'x'.repeat(300) }),
      signEvent(alice, { content: 'expired', tags: [['expiration', String(now - 100)]] }),
      signEvent(alice, { content: 'protected', tags: [['-']] }),
      deletedOnB,
      oldProfile,
    ];
    await seed(a, [...keep, ...refuse]);
    const b = await startRelay(
      {
        replicateFrom: a.url,
        rateLimit: true,
        rateEventsPerPubkey: 5,
        rateEventsPerIp: 5,
        createdAtPastLimit: 3600,
        maxEventTags: 10,
        maxContentLength: 200,
      },
      fast,
      dirB,
    );
    await waitFor(() => statsOf(b).live && statsOf(b).pulled === keep.length + refuse.length, 'backlog read');
    await waitFor(() => statsOf(b).stored + statsOf(b).rejected === keep.length + refuse.length, 'every event stored or refused');
    const ids = storedIds(b);
    for (const e of keep) expect(ids).toContain(e.id);
    for (const e of refuse) expect(ids).not.toContain(e.id);
    expect(ids).toContain(newProfile.id);
    expect(statsOf(b)).toMatchObject({ stored: keep.length, rejected: refuse.length, duplicates: 0 });
    expect(await metric(b, 'roost_replication_refused_total{reason="blocked"}')).toBe(4); // pubkey, id, kind, deleted
    expect(await metric(b, 'roost_replication_refused_total{reason="invalid"}')).toBe(3); // tags, content, expired
    expect(await metric(b, 'roost_replication_refused_total{reason="restricted"}')).toBe(1); // NIP-70
    expect(await metric(b, 'roost_replication_refused_total{reason="duplicate"}')).toBe(1); // superseded profile
    for (const e of refuse) expect(b.relay.ctx.store.provides.replication!.isReplicationRefused(e.id)).toBe(true);

    // Live: a refused event is the newest the upstream has, and no EOSE follows; the cursor still moves past it.
    await waitFor(() => cursorOf(b) === a.relay.ctx.store.lastSeq(), 'cursor at the upstream head');
    const client = await RawClient.connect(a.url);
    const live = signEvent(banned, { content: 'live, banned on B', created_at: now - 1000 });
    expect((await client.publish(live))[2]).toBe(true);
    client.close();
    await waitFor(() => statsOf(b).rejected === refuse.length + 1, 'live refusal');
    await waitFor(() => cursorOf(b) === a.relay.ctx.store.lastSeq(), 'cursor past the live refusal');
    expect(storedIds(b)).not.toContain(live.id);
    await b.close();
    await a.close();
  }, 60_000);

  it('rules that read stored state see the events ahead in the stream (a ballot right behind its proposal), and a closed vote is history', async () => {
    const now = nowSeconds();
    const [alice, bob] = [makeKey(), makeKey()];
    const electorate = { type: 'pubkeys' as const, pubkeys: [alice.pk, bob.pk] };
    const events = [];
    for (let i = 0; i < 20; i++) {
      // The last proposal closed two hours ago; its ballot was cast before the deadline.
      const closed = i === 19;
      const created = closed ? now - 10_000 : now - 100 + i;
      const deadline = closed ? now - 7200 : now + 3600;
      const proposal = signEvent(alice, makeProposal({ question: `q${i}`, options: ['yes', 'no'], electorate, rule: { type: 'majority' }, deadline }, created));
      events.push(proposal, signEvent(bob, makeBallot({ id: proposal.id, proposer: alice.pk }, 'yes', created + 1)));
    }
    const a = await startRelay({}, {}, tempDir());
    await seed(a, events);
    const b = await startRelay({ replicateFrom: a.url }, fast, tempDir());
    await waitFor(() => statsOf(b).live && statsOf(b).pulled === 40, 'backlog read');
    await waitFor(() => statsOf(b).stored + statsOf(b).rejected === 40, 'all written or refused');
    expect(statsOf(b)).toMatchObject({ stored: 40, rejected: 0 });
    expect(storedIds(b)).toEqual(events.map((e) => e.id).sort());
    await b.close();
    await a.close();
  }, 30_000);

  it('a NIP-77 first sync does not fetch again what this relay refused before', async () => {
    const banned = makeKey();
    const a = await startRelay({}, {}, tempDir());
    const good = makeEvents([makeKey()], 30, 'good');
    const bad = makeEvents([banned], 20, 'bad');
    await seed(a, [...good, ...bad]);
    const dirB = tempDir();
    const pre = await startRelay({}, {}, dirB);
    pre.relay.operator.admin.banPubkey(banned.pk);
    await pre.close({ keep: true });
    const opts = { replicateFrom: a.url, replicateFirstSync: 'negentropy' };
    let b = await startRelay(opts, fast, dirB);
    await waitFor(() => statsOf(b).live && statsOf(b).cursor === a.relay.ctx.store.lastSeq(), 'first sync');
    expect(statsOf(b)).toMatchObject({ pulled: 50, stored: 30, rejected: 20 });
    // The upstream's history is "reset" (here: the cursor forgotten): the next first sync reconciles again.
    b.relay.ctx.store.provides.replication!.setReplicationCursor(b.relay.replication.replicators[0]!.key, 0, true);
    await b.close({ keep: true });
    b = await startRelay(opts, fast, dirB);
    await waitFor(() => statsOf(b).live && statsOf(b).cursor === a.relay.ctx.store.lastSeq(), 'second first sync');
    expect(statsOf(b)).toMatchObject({ pulled: 0, stored: 0, rejected: 0 });
    expect(storedIds(b)).toEqual(good.map((e) => e.id).sort());
    await b.close();
    await a.close();
  }, 60_000);

  it('an event already here costs one lookup: no verification, no store write; counted, and the cursor still moves', async () => {
    const a = await startRelay({}, {}, tempDir());
    const events = makeEvents([makeKey()], 200, 'dup');
    await seed(a, events);
    const dirB = tempDir();
    const pre = await startRelay({}, {}, dirB);
    await seed(pre, events);
    await pre.close({ keep: true });
    const real = await createVerifier({ workers: 0 });
    let verified = 0;
    const verify: Verifier['verify'] = (e) => {
      verified++;
      return real.verify(e);
    };
    const verifier: Verifier = { backend: real.backend, close: () => real.close(), verify };
    const b = await startRelay({ replicateFrom: a.url }, { ...fast, verifier }, dirB);
    await waitFor(() => statsOf(b).live && cursorOf(b) === a.relay.ctx.store.lastSeq(), 'read to the head');
    const before = b.relay.ctx.store.lastSeq();
    expect(statsOf(b)).toMatchObject({ pulled: 200, stored: 0, duplicates: 200, rejected: 0 });
    expect(verified).toBe(0);
    expect(b.relay.ctx.stats.eventsStored).toBe(0);
    expect(await metric(b, 'roost_replication_duplicates_total')).toBe(200);
    expect(b.relay.ctx.store.lastSeq()).toBe(before);
    await b.close();
    await a.close();
  }, 30_000);

  it('the replicate filter is enforced on what an upstream sends (a policy that only judges replicated events)', () => {
    const policy = rejectOutsideReplicateFilter({ kinds: [1] })!;
    const k = makeKey();
    const ctx = { authed: new Set<string>(), ip: '', now: nowSeconds() };
    expect(policy(signEvent(k, { kind: 1 }), { ...ctx, replicated: true })).toBeUndefined();
    expect(policy(signEvent(k, { kind: 7 }), { ...ctx, replicated: true })).toMatch(/^blocked: /);
    expect(policy(signEvent(k, { kind: 7 }), ctx)).toBeUndefined();
    expect(rejectOutsideReplicateFilter({})).toBeUndefined();
  });
});

describe('replication keys and identity', () => {
  it('replicaReaders takes npub or hex, normalized to hex; a bad entry is named', () => {
    const k1 = makeKey().pk;
    const k2 = makeKey().pk;
    expect(loadConfig({ replicaReaders: ` ${npubEncode(k1)} , ${k2}` }).replicaReaders).toBe(`${k1},${k2}`);
    expect(loadConfig({}).replicaReaders).toBe('');
    let err: { code?: string; message?: string } = {};
    try {
      loadConfig({ replicaReaders: `${k1},npub1notakey` });
    } catch (e) {
      err = e as typeof err;
    }
    expect(err.code).toBe('ROOST_ERR_CONFIG');
    expect(err.message).toContain('ROOST_REPLICA_READERS');
    expect(err.message).toContain('"npub1notakey" is not a pubkey');
  });

  it('an npub in replicaReaders lets that replica read private kinds', async () => {
    const dirB = tempDir();
    const pre = await startRelay({}, {}, dirB);
    const bKey = ((await (await fetch(pre.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { pubkey: string }).pubkey;
    await pre.close({ keep: true });
    const a = await startRelay({ replicaReaders: npubEncode(bKey) }, {}, tempDir());
    const dm = signEvent(makeKey(), { kind: 1059, tags: [['p', makeKey().pk]], content: 'wrap' });
    await seed(a, [dm]);
    const b = await startRelay({ replicateFrom: a.url }, fast, dirB);
    await waitFor(() => storedIds(b).includes(dm.id), 'private kind replicated to the npub-listed replica');
    await b.close();
    await a.close();
  }, 30_000);

  it('with an in-memory database the NIP-11 pubkey is the key the replica authenticates with', async () => {
    const a = await startRelay({}, {}, tempDir());
    const b = await startRelay({ db: ':memory:', replicateFrom: a.url }, fast, tempDir());
    const info = (await (await fetch(b.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { pubkey: string };
    await waitFor(() => [...a.relay.ctx.connections].some((c) => c.authed.size > 0), 'replica authenticated');
    const authed = [...a.relay.ctx.connections].flatMap((c) => [...c.authed]);
    expect(authed).toEqual([info.pubkey]);
    await b.close();
    await a.close();
  }, 30_000);
});
