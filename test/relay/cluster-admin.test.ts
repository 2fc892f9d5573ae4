import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { finalizeEvent } from 'nostr-tools/pure';
import { callRelay } from '../../cli/admin.js';
import type { NostrEvent } from '../../shared/event.js';
import { makeAuthorizationHeader, makeHttpAuthTemplate } from '../../shared/nip98.js';
import { createPgDatabase } from '../helpers/backends.js';
import { AGENT_CARD_D, AGENT_CARD_KIND, PRESENCE_PATH } from '../../shared/agent-card.js';
import { makeKey, signEvent } from '../helpers/events.js';
import { authenticate } from '../helpers/mailbox.js';
import { postgresSkipReason } from '../helpers/postgres.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';

// NIP-86 across a cluster: a change made through one instance is in force on every instance (and
// on one started later), and NIP-11 says the same everywhere.
const skip = postgresSkipReason();
if (skip) console.warn(skip);

describe.skipIf(skip !== undefined)('cluster: NIP-86, NIP-11 and presence on every instance', () => {
  const admin = makeKey();
  let db: string;
  const relays: TestRelay[] = [];
  beforeAll(async () => {
    db = await createPgDatabase();
    for (let i = 0; i < 2; i++) relays.push(await startRelay({ db, adminPubkeys: admin.pk }));
  }, 60_000);
  afterAll(async () => {
    for (const r of relays) await r.close();
  });

  const info = async (t: TestRelay) => (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as Record<string, unknown>;

  it('a ban made on A refuses the pubkey on B; a banned event leaves every instance', async () => {
    const [a, b] = relays as [TestRelay, TestRelay];
    const spammer = makeKey();
    const other = makeKey();
    const cb = await RawClient.connect(b.url);
    const kept = signEvent(other, { content: 'to be banned' });
    expect((await cb.publish(kept))[2]).toBe(true);
    expect((await callRelay(a.url, admin.sk, 'banpubkey', [spammer.pk, 'spam'])).body.result).toBe(true);
    expect((await callRelay(a.url, admin.sk, 'banevent', [kept.id, 'bad'])).body.result).toBe(true);
    // Applied on B from the shared log (NOTIFY roost_admin), without a call to B.
    await waitFor(() => b.relay.operator.admin.isBannedPubkey(spammer.pk), 'ban applied on B');
    const refused = await cb.publish(signEvent(spammer, { content: 'spam' }));
    expect(refused[2]).toBe(false);
    expect(String(refused[3])).toMatch(/^blocked:/);
    expect(await cb.req('gone', { ids: [kept.id] })).toEqual([]);
    const list = await callRelay(b.url, admin.sk, 'listbannedpubkeys', []);
    expect(list.body.result).toEqual([{ pubkey: spammer.pk, reason: 'spam' }]);
    cb.close();
  });

  it('NIP-11 is the same on every instance, and an instance started later has the changes', async () => {
    const [a, b] = relays as [TestRelay, TestRelay];
    expect((await callRelay(b.url, admin.sk, 'changerelayname', ['one roost'])).body.result).toBe(true);
    await waitFor(async () => (await info(a)).name === 'one roost', 'name on A');
    const late = await startRelay({ db, adminPubkeys: admin.pk });
    relays.push(late);
    const [ia, ib, ic] = [await info(a), await info(b), await info(late)];
    expect(ib).toEqual(ia);
    expect(ic).toEqual(ia);
    expect(ia.name).toBe('one roost');
    const banned = (await callRelay(late.url, admin.sk, 'listbannedpubkeys', [])).body.result as unknown[];
    expect(banned.length).toBe(1);
  });

  it('an agent online on A is online on B, and offline on both once it leaves A', async () => {
    const [a, b] = relays as [TestRelay, TestRelay];
    const agent = makeKey();
    const ca = await RawClient.connect(a.url);
    await ca.publish(signEvent(agent, { kind: AGENT_CARD_KIND, tags: [['d', AGENT_CARD_D]], content: '{"name":"roaming"}' }));
    const presence = async (t: TestRelay) =>
      ((await (await fetch(`${t.httpUrl}/${PRESENCE_PATH}?p=${agent.pk}`)).json()) as { online: Record<string, boolean> }).online[agent.pk];
    expect(await presence(b)).toBe(false);
    await authenticate(ca, agent, a.url);
    await waitFor(async () => (await presence(b)) === true, 'online on B');
    expect(await presence(a)).toBe(true);
    ca.close();
    await waitFor(async () => (await presence(b)) === false, 'offline on B');
    expect(await presence(a)).toBe(false);
  });

  it('a NIP-98 authorisation used on one instance is refused when replayed to another', async () => {
    // Instances of a cluster share one public URL, which is what NIP-98's u tag names.
    const pair = [
      await startRelay({ db, adminPubkeys: admin.pk, publicUrl: 'wss://cluster.example' }),
      await startRelay({ db, adminPubkeys: admin.pk, publicUrl: 'wss://cluster.example' }),
    ];
    relays.push(...pair);
    const body = JSON.stringify({ method: 'changerelayname', params: ['replayed'] });
    const payload = createHash('sha256').update(body).digest('hex');
    const auth = finalizeEvent(
      makeHttpAuthTemplate({ url: 'https://cluster.example/', method: 'POST', payload, created_at: Math.floor(Date.now() / 1000) }),
      admin.sk,
    );
    const post = (t: TestRelay) =>
      fetch(t.httpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/nostr+json+rpc', authorization: makeAuthorizationHeader(auth as NostrEvent) },
        body,
      });
    expect((await post(pair[0]!)).status).toBe(200);
    const replay = await post(pair[1]!);
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { error: string }).error).toMatch(/already used/);
  });
});
