import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../shared/event.js';
import { getKeyEvent, IdentityKind, type KeyEvent, makeInception, makeRotation } from '../../shared/identity-log.js';
import { getTaskRequest, makeTaskOffer, makeTaskRequest, makeTaskStep, TaskKind, type TaskRequest } from '../../shared/tasks.js';
import { PostgresStore } from '../../relay/store/postgres.js';
import { makeKey, nowSeconds, signEvent } from '../helpers/events.js';
import { postgresSkipReason, startPostgres, type PgServer } from '../helpers/postgres.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';

// Two relay instances on one PostgreSQL database, and two events competing for one state (two rotations
// of one key event log, two acceptances of one task, the last place in a mailbox) sent at once, one to each instance. Every write
// transaction waits 150 ms before it commits, so both events have passed their policy's store reads
// before either is committed: only the database (a claim in policy_claims, a place in mailbox_admissions
// taken under a per-recipient lock) can keep one of them out.
const skip = postgresSkipReason();
if (skip) console.warn(skip);

type Ok = [string, string, boolean, string];

describe.skipIf(skip !== undefined)('cluster: competing events on two instances', () => {
  const relays: TestRelay[] = [];
  let a: RawClient;
  let b: RawClient;
  let server: PgServer | undefined;
  beforeAll(async () => {
    server = await startPostgres({ fast: true });
    const db = await server.createDatabase();
    for (let i = 0; i < 2; i++) {
      const store = await PostgresStore.open({ url: db, beforeCommit: () => new Promise((r) => setTimeout(r, 150)) });
      relays.push(await startRelay({ db, mailboxQuota: 5 }, { store }));
    }
    a = await RawClient.connect(relays[0]!.url);
    b = await RawClient.connect(relays[1]!.url);
  }, 60_000);
  afterAll(async () => {
    a?.close();
    b?.close();
    for (const r of relays) await r.close();
    await server?.stop();
  });

  const publish = async (client: RawClient, ev: NostrEvent) => (await client.publish(ev)) as Ok;
  let t = nowSeconds() - 500;

  it('two rotations of one log, one per instance: exactly one is accepted and stored', async () => {
    for (let round = 0; round < 3; round++) {
      const keys = Array.from({ length: 4 }, () => makeKey());
      const inception = signEvent(keys[0]!, makeInception({ nextKey: keys[1]!.pk }, ++t));
      expect((await publish(a, inception))[2]).toBe(true);
      const head = getKeyEvent(inception) as KeyEvent;
      const rot1 = signEvent(keys[1]!, makeRotation({ head, currentSecretKey: keys[0]!.sk, newKey: keys[1]!.pk, nextKey: keys[2]!.pk }, ++t));
      const rot2 = signEvent(keys[1]!, makeRotation({ head, currentSecretKey: keys[0]!.sk, newKey: keys[1]!.pk, nextKey: keys[3]!.pk }, ++t));
      const answers = await Promise.all([publish(a, rot1), publish(b, rot2)]);
      expect(answers.map((x) => x[2]).sort(), `round ${round}: ${answers.map((x) => x[3]).join(' | ')}`).toEqual([false, true]);
      expect(answers.find((x) => !x[2])![3]).toMatch(/^invalid: (key .* was already revealed|key event .* already has a successor)/);
      const stored = await b.req(`rot${round}`, { kinds: [IdentityKind.Rotation], '#e': [inception.id] });
      expect(stored).toHaveLength(1);
    }
  });

  it('two acceptances of one task, one per instance: exactly one is accepted and stored', async () => {
    const workers = [makeKey(), makeKey()];
    for (let round = 0; round < 3; round++) {
      // A requester per round: its mailbox takes the offers (the quota here is 5).
      const requester = makeKey();
      const req = signEvent(requester, makeTaskRequest({ capabilities: ['race'], input: `r${round}` }, ++t));
      expect((await publish(a, req))[2]).toBe(true);
      const request = getTaskRequest(req) as TaskRequest;
      const offers = workers.map((w) => signEvent(w, makeTaskOffer(request, {}, ++t)));
      for (const o of offers) expect((await publish(b, o))[2]).toBe(true);
      const accepts = workers.map((w, i) =>
        signEvent(requester, makeTaskStep({ root: request.id, prev: request.id, state: 'working', worker: w.pk, offer: offers[i]!.id, to: w.pk }, ++t)),
      );
      const answers = await Promise.all([publish(a, accepts[0]!), publish(b, accepts[1]!)]);
      expect(answers.map((x) => x[2]).sort(), `round ${round}: ${answers.map((x) => x[3]).join(' | ')}`).toEqual([false, true]);
      expect(answers.find((x) => !x[2])![3]).toMatch(/^invalid: step .* already has a successor/);
      const stored = await a.req(`task${round}`, { kinds: [TaskKind.Step], '#e': [request.id] });
      expect(stored).toHaveLength(1);
    }
  });

  it("a mailbox's last place, taken from two instances at once: exactly one is accepted", async () => {
    for (let round = 0; round < 3; round++) {
      const recipient = makeKey();
      const sender = makeKey();
      const mail = (i: number) => signEvent(sender, { kind: 1, content: `m${i}`, tags: [['p', recipient.pk]], created_at: ++t });
      for (let i = 0; i < 4; i++) expect((await publish(i % 2 ? a : b, mail(i)))[2]).toBe(true);
      const answers = await Promise.all([publish(a, mail(4)), publish(b, mail(5))]);
      expect(answers.map((x) => x[2]).sort(), `round ${round}: ${answers.map((x) => x[3]).join(' | ')}`).toEqual([false, true]);
      expect(answers.find((x) => !x[2])![3]).toMatch(/^rate-limited: mailbox of npub1\w+ is full/);
      const stored = await b.req(`mail${round}`, { kinds: [1], '#p': [recipient.pk] });
      expect(stored).toHaveLength(5);
    }
  });
});
