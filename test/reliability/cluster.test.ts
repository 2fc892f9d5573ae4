import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../shared/event.js';
import { makeKey, nowSeconds, signEvent, type Key } from '../helpers/events.js';
import { authenticate, seqEvents } from '../helpers/mailbox.js';
import { postgresSkipReason, startPostgres, type PgServer } from '../helpers/postgres.js';
import { createRng } from '../helpers/prng.js';
import { spawnRelay, type RelayProcess } from '../helpers/process.js';
import { RawClient } from '../helpers/raw-client.js';
import { waitFor } from '../helpers/wait.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeSelfSignedCert } from '../helpers/fake-apns.js';
import { makeServiceAccount, startFakeFcm } from '../helpers/fake-fcm.js';
import { makeAgent, makeFcmToken, makeRegistrationEvent, makeTempDir } from '../relay/push/support.js';
import { signFast } from '../relay/operator/support.js';

// Three relay processes (dist/, as users run them) on one PostgreSQL database: the guarantees of
// one relay, across instances.
const skip = postgresSkipReason();
if (skip) console.warn(skip);

describe.skipIf(skip !== undefined)('cluster of 3 relay processes on one PostgreSQL', () => {
  let server: PgServer;
  const running: RelayProcess[] = [];
  const start = async (db: string) => {
    const r = await spawnRelay({ ROOST_DB: db, ROOST_MAX_LIMIT: '1000000', ROOST_LOG_LEVEL: 'info' });
    running.push(r);
    return r;
  };
  beforeAll(async () => {
    server = await startPostgres({ fast: true });
  }, 60_000);
  afterAll(async () => {
    for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await Promise.all(running.map((r) => r.exited));
    await server?.stop();
  });

  it('agents on different instances exchange DMs once and in order; one moves instance mid-stream and resumes from its cursor', async () => {
    const db = await server.createDatabase();
    const relays = [await start(db), await start(db), await start(db)];
    const agents = [makeKey(), makeKey(), makeKey()];
    // Each agent reads its inbox (DMs p-tagged to it) in sequence mode on its own instance.
    const inboxes: RawClient[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await RawClient.connect(relays[i]!.url);
      await authenticate(c, agents[i]!, relays[i]!.url);
      c.send(['REQ', 'inbox', { kinds: [4], '#p': [agents[i]!.pk], seq_after: 0 }]);
      await c.eose('inbox');
      inboxes.push(c);
    }
    // Senders write through their own instance, waiting for each OK (so their order is defined).
    const PER_PAIR = 30;
    const send = async (from: number) => {
      const c = await RawClient.connect(relays[from]!.url);
      for (let n = 0; n < PER_PAIR; n++) {
        for (let to = 0; to < 3; to++) {
          if (to === from) continue;
          const ev = signEvent(agents[from]!, { kind: 4, tags: [['p', agents[to]!.pk]], content: `${from}>${to}#${n}` });
          expect((await c.publish(ev))[2]).toBe(true);
        }
      }
      c.close();
    };
    // Agent 1 moves from instance 1 to instance 2 halfway, resuming from the last seq it saw.
    const moving = (async () => {
      await waitFor(() => seqEvents(inboxes[1]!, 'inbox').length >= PER_PAIR / 2, 'agent 1 half-way');
      const seen = seqEvents(inboxes[1]!, 'inbox');
      inboxes[1]!.close();
      const c = await RawClient.connect(relays[2]!.url);
      await authenticate(c, agents[1]!, relays[2]!.url);
      c.send(['REQ', 'inbox', { kinds: [4], '#p': [agents[1]!.pk], seq_after: seen[seen.length - 1]!.seq }]);
      return { before: seen, after: c };
    })();
    await Promise.all([0, 1, 2].map(send));
    const moved = await moving;
    const total = 2 * PER_PAIR;
    await waitFor(() => seqEvents(inboxes[0]!, 'inbox').length >= total && seqEvents(inboxes[2]!, 'inbox').length >= total, 'inboxes 0 and 2 complete', 20_000);
    await waitFor(() => moved.before.length + seqEvents(moved.after, 'inbox').length >= total, 'moved inbox complete', 20_000);
    await new Promise((r) => setTimeout(r, 200));
    const inboxOf = [seqEvents(inboxes[0]!, 'inbox'), [...moved.before, ...seqEvents(moved.after, 'inbox')], seqEvents(inboxes[2]!, 'inbox')];
    for (let to = 0; to < 3; to++) {
      const got = inboxOf[to]!;
      expect(new Set(got.map((e) => e.id)).size, `agent ${to}: no duplicates`).toBe(got.length);
      expect(got.length, `agent ${to}: every DM`).toBe(total);
      expect(
        got.map((e) => e.seq),
        `agent ${to}: in sequence order`,
      ).toEqual([...got].map((e) => e.seq).sort((a, b) => a - b));
      for (let from = 0; from < 3; from++) {
        if (from === to) continue;
        const order = got.filter((e) => e.content.startsWith(`${from}>`)).map((e) => e.content);
        expect(order, `agent ${to}: DMs from ${from} in the order sent`).toEqual(Array.from({ length: PER_PAIR }, (_, n) => `${from}>${to}#${n}`));
      }
    }
    for (const c of [inboxes[0]!, inboxes[2]!, moved.after]) c.close();
    for (const r of relays) r.child.kill('SIGTERM');
    await Promise.all(relays.map((r) => r.exited));
  }, 90_000);

  it('loses no acknowledged event when one instance is SIGKILLed under full ingest', async () => {
    const db = await server.createDatabase();
    const relays = [await start(db), await start(db), await start(db)];
    const rng = createRng(7);
    const author = makeKey();
    const acked = new Set<string>();
    let sent = 0;
    let stopping = false;
    const IN_FLIGHT = 32;
    const pump = async (c: RawClient, key: Key) => {
      const pending = new Set<string>();
      c.ws.on('message', (data) => {
        const f = JSON.parse(data.toString()) as unknown[];
        if (f[0] === 'OK' && pending.has(f[1] as string)) {
          if (f[2] === true) acked.add(f[1] as string);
          pending.delete(f[1] as string);
        }
      });
      // Publishers on every instance keep IN_FLIGHT events outstanding: those on the killed one
      // until it dies under them, the others until a while after, then they drain.
      while (!c.closed && !(stopping && pending.size === 0)) {
        while (pending.size < IN_FLIGHT && !stopping) {
          const e: NostrEvent = signFast(key, { content: `n${sent++}`, created_at: nowSeconds() });
          pending.add(e.id);
          c.send(['EVENT', e]);
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const clients = await Promise.all(relays.flatMap((r) => [RawClient.connect(r.url), RawClient.connect(r.url)]));
    const pumps = clients.map((c) => pump(c, author));
    await new Promise((r) => setTimeout(r, rng.int(400, 900)));
    const ackedBeforeKill = acked.size;
    relays[0]!.child.kill('SIGKILL');
    await relays[0]!.exited;
    await new Promise((r) => setTimeout(r, 500));
    stopping = true;
    await Promise.race([Promise.all(pumps), new Promise((r) => setTimeout(r, 15_000))]);
    // The survivors kept ingesting after the kill.
    expect(acked.size).toBeGreaterThan(ackedBeforeKill + 50);
    expect(acked.size).toBeGreaterThan(100);
    // Every acknowledged event, whichever instance took it, is on the survivors.
    for (const r of relays.slice(1)) {
      const c = await RawClient.connect(r.url);
      const stored = new Set((await c.req('all', { authors: [author.pk], limit: 1_000_000 })).map((e) => e.id));
      const lost = [...acked].filter((id) => !stored.has(id));
      console.log(`cluster crash: ${sent} sent, ${acked.size} acknowledged, ${stored.size} stored on ${r.url}, ${lost.length} lost`);
      expect(lost).toEqual([]);
      c.close();
    }
    for (const c of clients) c.close();
    for (const r of relays.slice(1)) r.child.kill('SIGTERM');
    await Promise.all(relays.map((r) => r.exited));
  }, 90_000);

  it('delivers a wake for a sleeping agent once, though all 3 instances see the event', async () => {
    const db = await server.createDatabase();
    const tmp = makeTempDir();
    const tls = makeSelfSignedCert();
    const account = makeServiceAccount('roost-cluster', 'http://127.0.0.1:1/token');
    const fcm = await startFakeFcm({ serviceAccount: { publicKey: account.publicKey, clientEmail: account.json.client_email! }, tls });
    try {
      writeFileSync(join(tmp.dir, 'ca.pem'), tls.cert);
      writeFileSync(join(tmp.dir, 'firebase.json'), JSON.stringify({ ...account.json, token_uri: `${fcm.url}/token` }));
      const env = {
        ROOST_DB: db,
        ROOST_LOG_LEVEL: 'info',
        ROOST_PUSH_FCM_SERVICE_ACCOUNT_FILE: join(tmp.dir, 'firebase.json'),
        ROOST_PUSH_FCM_ENDPOINT: fcm.url,
        ROOST_PUSH_FCM_CA_FILE: join(tmp.dir, 'ca.pem'),
      };
      const relays: RelayProcess[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await spawnRelay(env);
        running.push(r);
        relays.push(r);
      }
      const infos = await Promise.all(
        relays.map(
          async (r) => (await (await fetch(r.url.replace('ws', 'http'), { headers: { accept: 'application/nostr+json' } })).json()) as { pubkey: string },
        ),
      );
      expect(new Set(infos.map((i) => i.pubkey)).size).toBe(1);
      const agent = makeAgent();
      const token = makeFcmToken();
      const c1 = await RawClient.connect(relays[1]!.url);
      expect((await c1.publish(makeRegistrationEvent(agent, infos[0]!.pubkey, { channels: [{ platform: 'fcm', token, mode: 'background' }] })))[2]).toBe(true);
      // Every instance holds a live subscription that matches the event: all three see it.
      const watchers = await Promise.all(relays.map((r) => RawClient.connect(r.url)));
      for (const w of watchers) {
        w.send(['REQ', 'w', { '#p': [agent.pubkey], kinds: [1] }]);
        await w.eose('w');
      }
      const c0 = await RawClient.connect(relays[0]!.url);
      const ev = signEvent(makeKey(), { content: 'wake up', tags: [['p', agent.pubkey]] });
      expect((await c0.publish(ev))[2]).toBe(true);
      for (const w of watchers) await w.next((f) => f[0] === 'EVENT' && (f[2] as NostrEvent).id === ev.id, 'event on every instance');
      await waitFor(() => fcm.requests.length >= 1, 'wake pushed', 15_000);
      // Several pump periods of every instance later, still one.
      await new Promise((r) => setTimeout(r, 2000));
      expect(fcm.requests.length).toBe(1);
      expect(fcm.requests[0]!.message.token).toBe(token);
      for (const c of [c0, c1, ...watchers]) c.close();
      for (const r of relays) r.child.kill('SIGTERM');
      await Promise.all(relays.map((r) => r.exited));
    } finally {
      await fcm.close();
      tmp.remove();
    }
  }, 90_000);
});
